"""A base_path that cannot be written fails when the IO manager is set up, before the step sends its query."""

import http.server
import os
import pickle
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pytest

from dagster_iwatch import IWatchResource, build_iwatch_query_asset
from dagster_iwatch.errors import BasePathError, ConfigError
from dagster_iwatch.io_manager import IWatchParquetIOManager


class RecordingServer:
    """An HTTP server on loopback that records every request and answers 500: the query must never reach it."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        recorded = self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def _record(self) -> None:
                recorded.append(f"{self.command} {self.path}")
                self.send_error(500)

            do_GET = do_POST = do_DELETE = _record

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


@pytest.fixture
def recording_server() -> Iterator[RecordingServer]:
    server = RecordingServer()
    try:
        yield server
    finally:
        server.close()


def setup_errors(result: dg.ExecuteInProcessResult) -> list[Any]:
    """The errors of the run's failed resource set-ups, with their causes."""
    chain = []
    for event in result.all_events:
        if event.event_type == dg.DagsterEventType.RESOURCE_INIT_FAILURE:
            error = event.event_specific_data.error
            while error is not None:
                chain.append(error)
                error = error.cause
    return chain


def query_run(server: RecordingServer, base_path: str) -> dg.ExecuteInProcessResult:
    asset = build_iwatch_query_asset(7, key=["iwatch", "guarded"])
    return dg.materialize(
        [asset],
        resources={
            "iwatch": IWatchResource(base_url=server.url, api_key="base-path-test-key"),
            "io_manager": IWatchParquetIOManager(base_path=base_path),
        },
        raise_on_error=False,
    )


def test_folder_under_a_file_fails_before_the_query(tmp_path: Path, recording_server: RecordingServer) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    base = blocker / "parquet"

    result = query_run(recording_server, str(base))

    assert not result.success
    [ours] = [e for e in setup_errors(result) if e.cls_name == "BasePathError"]
    assert str(base) in ours.message
    assert "cannot be created (Not a directory)" in ours.message
    assert "base_path" in ours.message
    assert recording_server.requests == []


def test_with_a_usable_base_path_the_query_is_sent(tmp_path: Path, recording_server: RecordingServer) -> None:
    # The control for the tests above: the same run with a good folder reaches the server.
    result = query_run(recording_server, str(tmp_path / "parquet"))
    assert not result.success  # the recording server answers 500
    assert setup_errors(result) == []
    assert recording_server.requests != []


def test_existing_file_as_base_path_is_refused(tmp_path: Path, recording_server: RecordingServer) -> None:
    base = tmp_path / "file.parquet"
    base.write_text("a file, not a folder")

    result = query_run(recording_server, str(base))

    [ours] = [e for e in setup_errors(result) if e.cls_name == "BasePathError"]
    assert f"base_path {base} is not usable: it exists and is not a folder" in ours.message
    assert recording_server.requests == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes in read-only folders")
def test_read_only_folder_is_refused(tmp_path: Path) -> None:
    base = tmp_path / "ro"
    base.mkdir()
    base.chmod(0o500)
    try:
        with pytest.raises(BasePathError, match="files cannot be written in it"):
            IWatchParquetIOManager(base_path=str(base)).create_io_manager(dg.build_init_resource_context())
    finally:
        base.chmod(0o700)


def test_missing_folder_is_created_at_setup_and_left_clean(tmp_path: Path) -> None:
    base = tmp_path / "deep" / "er" / "parquet"

    @dg.asset
    def fails_before_writing() -> pa.Table:
        raise RuntimeError("the step body fails")

    result = dg.materialize(
        [fails_before_writing],
        resources={"io_manager": IWatchParquetIOManager(base_path=str(base))},
        raise_on_error=False,
    )
    assert not result.success
    assert base.is_dir()
    assert list(base.iterdir()) == []  # the write check leaves nothing behind


def test_build_alone_checks_nothing_on_disk(tmp_path: Path) -> None:
    base = tmp_path / "for-reading-only"
    IWatchParquetIOManager(base_path=str(base)).build()
    assert not base.exists()


def test_missing_bucket_fails_at_setup(moto_endpoint: str, s3_options: dict[str, Any]) -> None:
    manager = IWatchParquetIOManager(base_path="s3://no-such-bucket-iwatch/prefix", storage_options=s3_options)
    with pytest.raises(BasePathError) as caught:
        manager.create_io_manager(dg.build_init_resource_context())
    assert caught.value.base_path == "s3://no-such-bucket-iwatch/prefix"
    assert "objects cannot be written under it" in str(caught.value)
    assert s3_options["secret"] not in str(caught.value)


def test_writable_bucket_passes_and_keeps_no_probe(bucket: str, moto_endpoint: str, s3_options: dict[str, Any]) -> None:
    import boto3

    manager = IWatchParquetIOManager(base_path=f"s3://{bucket}/prefix", storage_options=s3_options)
    manager.create_io_manager(dg.build_init_resource_context())
    listing = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1").list_objects_v2(Bucket=bucket)
    assert listing.get("Contents", []) == []


def test_error_is_a_config_error_and_pickles() -> None:
    error = BasePathError("/x/y", "it exists and is not a folder")
    assert isinstance(error, ConfigError)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.base_path, copy.reason, str(copy)) == (error.base_path, error.reason, str(error))
