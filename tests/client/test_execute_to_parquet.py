"""``IWatchClient.execute_to_parquet``: the rows streamed from the HTTP answer to row groups, over real HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from dagster_iwatch.client import IWatchClient
from dagster_iwatch.errors import IWatchError, JobTimeoutError, ResultTooLargeError, TransportError
from dagster_iwatch.local import LocalServer
from dagster_iwatch.metadata import BatchFingerprint, data_version
from dagster_iwatch.run_handler import RunProgress
from tests.client.proxy import Proxy
from tests.ingest.helpers import assert_same_table


@pytest.fixture
def proxy(server: LocalServer) -> Iterator[Proxy]:
    with Proxy(server.url) as p:
        yield p


def client_for(url: str, server: LocalServer) -> IWatchClient:
    return IWatchClient(url, server.user_api_key, poll_interval=0.02, backoff_factor=0.01)


@pytest.mark.parametrize("query_id", [1, 2, 13, 14])
def test_the_file_holds_the_table_execute_gives(server: LocalServer, tmp_path: Path, query_id: int) -> None:
    path = tmp_path / "result.parquet"
    fingerprint = BatchFingerprint()
    with client_for(server.url, server) as client:
        expected = client.execute(query_id).to_arrow()
        result = client.execute_to_parquet(query_id, path, row_group_size=2, observer=fingerprint)
    written = pq.read_table(path)
    assert_same_table(expected, written)
    assert result.row_count == expected.num_rows
    assert result.job_id is not None
    assert pq.ParquetFile(path).metadata.num_row_groups == max(1, -(-expected.num_rows // 2))
    # The batches seen while streaming version the data as the table in memory does.
    assert fingerprint.data_version(written.schema) == data_version(expected)
    if expected.num_rows:
        with pytest.raises(IWatchError, match="written to"):
            result.to_arrow()
    assert [p.name for p in tmp_path.iterdir()] == ["result.parquet"]


def test_a_large_streamed_result_equals_the_one_read_in_memory(server: LocalServer, tmp_path: Path) -> None:
    server.inject_fault(kind="large", rows=60_000, method="GET", path_prefix="/api/queries/1/results/", times=2)
    path = tmp_path / "large.parquet"
    with client_for(server.url, server) as client:
        result = client.execute_to_parquet(1, path, row_group_size=25_000)
        expected = client.execute(1).to_arrow()
    assert result.row_count == 60_000
    assert_same_table(expected, pq.read_table(path))
    # Row groups gathered from the pieces as they arrived.
    assert [pq.ParquetFile(path).metadata.row_group(i).num_rows for i in range(3)] == [25_000, 25_000, 10_000]


def test_file_metadata_reaches_the_footer(server: LocalServer, tmp_path: Path) -> None:
    path = tmp_path / "provenance.parquet"
    with client_for(server.url, server) as client:
        result = client.execute_to_parquet(
            2, path, {"min_amount": 2700}, file_metadata=lambda r: {"result_id": str(r.id), "job": str(r.job_id)}
        )
    metadata = pq.read_schema(path).metadata
    assert metadata[b"result_id"] == str(result.id).encode()
    assert metadata[b"job"] == str(result.job_id).encode()


def test_a_body_cut_off_mid_way_is_read_again_from_its_start(server: LocalServer, proxy: Proxy, tmp_path: Path) -> None:
    proxy.plan("GET", "/api/queries/12/results/", "reset", times=1)
    path = tmp_path / "again.parquet"
    with client_for(proxy.url, server) as client:
        result = client.execute_to_parquet(12, path)
        expected = client.execute(12).to_arrow()
    assert result.row_count == 5
    assert_same_table(expected, pq.read_table(path))
    assert proxy.count("GET", "/api/queries/12/results/") == 3


def test_a_body_that_never_arrives_whole_leaves_the_previous_file(
    server: LocalServer, proxy: Proxy, tmp_path: Path
) -> None:
    path = tmp_path / "kept.parquet"
    with client_for(server.url, server) as client:
        client.execute_to_parquet(12, path)
    before = path.read_bytes()
    proxy.plan("GET", "/api/queries/12/results/", "reset", times=100)
    with client_for(proxy.url, server) as client, pytest.raises(TransportError):
        client.execute_to_parquet(12, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["kept.parquet"]


def test_a_query_key_refused_the_result_route_reads_it_from_the_cache(server: LocalServer, tmp_path: Path) -> None:
    # Upstream Redash refuses a query key a result whose parameters differ from the query's saved values.
    refusal = {"message": "No cached result found for this query."}
    path = tmp_path / "cached.parquet"
    with IWatchClient(server.url, query_api_keys={2: server.query_api_key(2)}, poll_interval=0.02) as client:
        server.inject_fault(status=404, method="GET", path_prefix="/api/queries/2/results/", times=1, body=refusal)
        result = client.execute_to_parquet(2, path, {"min_amount": 2700})
    amounts = pq.read_table(path).column("amount").to_pylist()
    assert result.row_count == len(amounts) > 0
    assert all(a >= 2700 for a in amounts)
    assert result.job_id is not None


def test_the_deadline_and_the_progress_reach_the_thread_that_reads_the_body(
    server: LocalServer, proxy: Proxy, tmp_path: Path
) -> None:
    updates: list[RunProgress] = []
    with client_for(proxy.url, server) as client:
        client.execute_to_parquet(12, tmp_path / "seen.parquet", progress=updates.append)
        assert any(u.stage == "reading" and u.bytes_read > 0 for u in updates)
        assert updates[-1].stage == "done"
        assert updates[-1].rows == 5
        proxy.plan("GET", "/api/queries/12/results/", "hang", times=100)
        started = time.monotonic()
        with pytest.raises(JobTimeoutError):
            client.execute_to_parquet(12, tmp_path / "late.parquet", timeout=1.5)
    # The result's read is cut at the run's deadline, not at the 60 s read timeout.
    assert time.monotonic() - started < 10
    assert not (tmp_path / "late.parquet").exists()


def test_a_result_over_max_result_bytes_is_refused_and_nothing_written(server: LocalServer, tmp_path: Path) -> None:
    server.inject_fault(kind="large", rows=20_000, method="GET", path_prefix="/api/queries/1/results/", times=1)
    path = tmp_path / "large.parquet"
    client = IWatchClient(server.url, server.user_api_key, poll_interval=0.02, max_result_bytes=100_000)
    with client, pytest.raises(ResultTooLargeError):
        client.execute_to_parquet(1, path)
    assert list(tmp_path.iterdir()) == []
