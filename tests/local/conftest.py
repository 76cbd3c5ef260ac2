"""Fixtures for the local server's tests: API wrappers and private servers for tests that mutate."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dagster_iwatch.local import LocalServer

from .helpers import Api


@pytest.fixture
def api(server: LocalServer) -> Iterator[Api]:
    with Api(server) as client:
        yield client


@pytest.fixture
def redash_api(redash_server: LocalServer) -> Iterator[Api]:
    redash_server.clear_faults()
    with Api(redash_server) as client:
        yield client


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[LocalServer]:
    """A private server for tests that change stored state or need a single worker."""
    with LocalServer(tmp_path / "data", workers=1) as srv:
        yield srv


@pytest.fixture
def fresh_api(fresh_server: LocalServer) -> Iterator[Api]:
    with Api(fresh_server) as client:
        yield client
