"""Instance snapshots fetched over HTTP from the local server, stored and read back."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import msgspec
import pytest

from dagster_iwatch import IWatchClient, IWatchResource, build_iwatch_workspace_definitions, load_iwatch_asset_specs
from dagster_iwatch.errors import SnapshotError
from dagster_iwatch.local import LocalServer
from dagster_iwatch.local.seed import SEED_QUERIES
from dagster_iwatch.state import (
    SNAPSHOT_VERSION,
    InstanceSnapshot,
    fetch_snapshot,
    read_snapshot,
    write_snapshot,
)


@pytest.fixture(scope="module")
def own_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """A server of this module's own: its queries are as seeded, and the tests that edit one restore it."""
    with LocalServer(tmp_path_factory.mktemp("state-local"), workers=1) as srv:
        yield srv


@pytest.fixture
def server(own_server: LocalServer) -> Iterator[LocalServer]:
    """This module's server, its faults and request log cleared."""
    own_server.clear_faults()
    own_server.clear_requests_seen()
    yield own_server
    own_server.clear_faults()


def client_of(srv: LocalServer) -> IWatchClient:
    return IWatchClient(srv.url, srv.user_api_key)


def test_snapshot_reads_queries_in_pages_and_each_dashboard_once(server: LocalServer, tmp_path: Path) -> None:
    with client_of(server) as client:
        snapshot = write_snapshot(client, tmp_path / "state" / "snapshot.json")
    assert server.requests_seen == [
        ("GET", "/api/queries"),
        ("GET", "/api/dashboards"),
        ("GET", "/api/dashboards/chain-overview"),
    ]
    assert [q.id for q in snapshot.queries] == list(range(1, len(SEED_QUERIES) + 1))
    assert snapshot.broken == ()
    assert snapshot.base_url == server.url
    volume = snapshot.query(5)
    assert volume is not None
    assert volume.name == "Daily volume in period"
    assert volume.owner_email == "admin@localhost"
    assert [(p.name, p.type) for p in volume.parameters] == [("period", "date-range")]
    assert set(volume.tags) == {"param", "transfers", "daily"}
    listed = snapshot.query(9)
    assert listed is not None
    assert listed.upstream_query_ids == (12,)
    (board,) = snapshot.dashboards
    assert board.slug == "chain-overview"
    assert board.query_ids == (15, 5)
    assert read_snapshot(tmp_path / "state" / "snapshot.json") == snapshot


def test_definitions_from_a_snapshot_make_no_request(tmp_path: Path) -> None:
    path = tmp_path / "snapshot.json"
    with LocalServer(tmp_path / "data", workers=1) as srv:
        with client_of(srv) as client:
            write_snapshot(client, path)
        resources = {"iwatch": IWatchResource(base_url=srv.url, api_key=srv.user_api_key)}
        srv.clear_requests_seen()
        defs = dg.Definitions.merge(build_iwatch_workspace_definitions(path), dg.Definitions(resources=resources))
        defs.resolve_all_job_defs()
        assert srv.requests_seen == []
    # The server is gone: any request would fail; loading still works.
    defs = dg.Definitions.merge(
        build_iwatch_workspace_definitions(path, polling_sensor=True), dg.Definitions(resources=resources)
    )
    defs.resolve_all_job_defs()
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"iwatch/daily_volume_in_period", "iwatch/dashboard_chain_overview"} <= keys
    assert len(keys) == len(SEED_QUERIES) + 1


def test_code_version_changes_when_the_sql_is_edited_and_the_snapshot_refreshed(own_server: LocalServer) -> None:
    with client_of(own_server) as client:
        before = {s.key: s.code_version for s in load_iwatch_asset_specs(fetch_snapshot(client))}
        original = client.get_query(14).query
        client.update_query(14, query=original + " -- edited")
        try:
            after = {s.key: s.code_version for s in load_iwatch_asset_specs(fetch_snapshot(client))}
        finally:
            client.update_query(14, query=original)
    changed = [k.to_user_string() for k in before if before[k] != after[k]]
    assert changed == ["iwatch/empty_result"]
    query_versions = [v for k, v in before.items() if not k.path[-1].startswith("dashboard_")]
    assert len(query_versions) == len(SEED_QUERIES)
    assert None not in query_versions


def test_a_query_that_cannot_be_read_is_recorded_and_skipped(
    own_server: LocalServer, caplog: pytest.LogCaptureFixture
) -> None:
    with client_of(own_server) as client:
        client.update_query(13, schedule={"interval": "weekly-ish", "time": None})
        try:
            with caplog.at_level(logging.WARNING, logger="dagster_iwatch.state"):
                snapshot = fetch_snapshot(client)
        finally:
            client.update_query(13, schedule=None)
    assert 13 not in {q.id for q in snapshot.queries}
    assert len(snapshot.queries) == len(SEED_QUERIES) - 1
    (broken,) = snapshot.broken
    assert (broken.kind, broken.ref) == ("query", "13")
    assert "interval 'weekly-ish'" in broken.error
    assert "skipped query 13" in caplog.text
    # The rest still builds.
    assert len(load_iwatch_asset_specs(snapshot)) == len(SEED_QUERIES)


def test_a_dashboard_that_fails_is_recorded_and_skipped(server: LocalServer) -> None:
    server.inject_fault(500, "GET", "/api/dashboards/chain-overview", times=10)
    with client_of(server) as client:
        snapshot = fetch_snapshot(client)
    assert snapshot.dashboards == ()
    (broken,) = snapshot.broken
    assert (broken.kind, broken.ref) == ("dashboard", "chain-overview")
    assert "500" in broken.error
    assert len(snapshot.queries) == len(SEED_QUERIES)


def test_a_snapshot_of_another_version_or_no_snapshot_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "snapshot.json"
    path.write_bytes(msgspec.json.encode({"version": SNAPSHOT_VERSION + 1, "base_url": "x", "fetched_at": "y"}))
    with pytest.raises(SnapshotError, match=r"format version 2.*refresh it"):
        read_snapshot(path)
    path.write_text("not json")
    with pytest.raises(SnapshotError, match="not an Inverse Watch snapshot"):
        read_snapshot(path)
    with pytest.raises(SnapshotError, match="cannot read"):
        read_snapshot(tmp_path / "missing.json")


def test_the_snapshot_file_never_holds_the_api_key(server: LocalServer, tmp_path: Path) -> None:
    with client_of(server) as client:
        write_snapshot(client, tmp_path / "s.json")
    text = (tmp_path / "s.json").read_text()
    assert server.user_api_key not in text
    assert all(key not in text for _, _, key in server.query_keys())
    assert isinstance(read_snapshot(tmp_path / "s.json"), InstanceSnapshot)


def test_snapshot_of_an_upstream_redash_server_reads_its_dashboards(redash_server: LocalServer) -> None:
    with client_of(redash_server) as client:
        snapshot = fetch_snapshot(client)
    board = next(d for d in snapshot.dashboards if d.slug == "chain-overview")
    assert board.query_ids == (15, 5)
    assert not [b for b in snapshot.broken if b.ref == "chain-overview"]
