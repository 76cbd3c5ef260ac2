from __future__ import annotations

from collections.abc import Iterator

import pytest

from dagster_iwatch import IWatchClient
from dagster_iwatch.local import LocalServer
from dagster_iwatch.state import InstanceSnapshot, fetch_snapshot


@pytest.fixture(scope="session")
def seeded_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """A server whose saved queries and dashboards stay as seeded (17 queries, 1 dashboard): no test edits them."""
    with LocalServer(tmp_path_factory.mktemp("components-local"), workers=2) as srv:
        yield srv


@pytest.fixture
def seeded(seeded_server: LocalServer) -> Iterator[LocalServer]:
    """The seeded server, its faults and request log cleared."""
    seeded_server.clear_faults()
    seeded_server.clear_requests_seen()
    yield seeded_server
    seeded_server.clear_faults()


@pytest.fixture(scope="session")
def snapshot(seeded_server: LocalServer) -> InstanceSnapshot:
    """The seeded instance's snapshot, fetched once over HTTP."""
    with IWatchClient(seeded_server.url, seeded_server.user_api_key) as client:
        return fetch_snapshot(client)
