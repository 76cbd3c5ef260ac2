from __future__ import annotations

import pytest

from dagster_iwatch import IWatchClient
from dagster_iwatch.local import LocalServer
from dagster_iwatch.state import InstanceSnapshot, fetch_snapshot


@pytest.fixture(scope="session")
def snapshot(iwatch_server: LocalServer) -> InstanceSnapshot:
    """The seeded instance's snapshot, fetched once over HTTP."""
    with IWatchClient(iwatch_server.url, iwatch_server.user_api_key) as client:
        return fetch_snapshot(client)
