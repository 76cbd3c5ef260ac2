"""Shared fixtures: local Inverse Watch servers on free loopback ports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dagster_iwatch.local import LocalServer


def _serve(tmp_path_factory: pytest.TempPathFactory, flavor: str) -> Iterator[LocalServer]:
    data_dir: Path = tmp_path_factory.mktemp(f"{flavor}-local")
    with LocalServer(data_dir, flavor=flavor, workers=2) as srv:
        yield srv


@pytest.fixture(scope="session")
def iwatch_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """A seeded local server (flavor inverse-watch) shared by the whole session."""
    yield from _serve(tmp_path_factory, "inverse-watch")


@pytest.fixture
def server(iwatch_server: LocalServer) -> Iterator[LocalServer]:
    """The session's inverse-watch server; faults and the request log are cleared before the test."""
    iwatch_server.clear_faults()
    iwatch_server.clear_requests_seen()
    try:
        yield iwatch_server
    finally:
        iwatch_server.clear_faults()


@pytest.fixture(scope="session")
def redash_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """A seeded local server with the upstream Redash flavor (dashboards by id, cancel = status 4)."""
    yield from _serve(tmp_path_factory, "redash")
