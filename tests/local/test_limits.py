"""Limits and bad input: bounded bodies, clear startup errors, and a server that answers after each."""

from __future__ import annotations

import json
import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from click.testing import CliRunner

from dagster_iwatch.cli import main
from dagster_iwatch.errors import IWatchError
from dagster_iwatch.local import LocalServer, LocalServerError

from .helpers import Api

TOO_LARGE = {"message": "The data value transmitted exceeds the capacity limit."}


@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    with LocalServer(tmp_path_factory.mktemp("small"), max_body=1000) as srv:
        yield srv


def _raw(srv: LocalServer, data: bytes) -> bytes:
    parts = urlsplit(srv.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(data)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    return answer


def _status_and_json(answer: bytes) -> tuple[bytes, object]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0], json.loads(body)


@pytest.mark.parametrize("length", [10**12, 200 * 1024 * 1024, 1001])
def test_declared_length_over_the_limit_is_413(small_server: LocalServer, length: int) -> None:
    key = small_server.user_api_key
    head = f"POST /api/queries HTTP/1.1\r\nHost: x\r\nAuthorization: Key {key}\r\nContent-Length: {length}\r\n\r\n"
    status, body = _status_and_json(_raw(small_server, head.encode() + b"{"))
    assert (status.split(b" ")[:2], body) == ([b"HTTP/1.1", b"413"], TOO_LARGE)
    assert Api(small_server).get("/api/queries/1").status_code == 200


def test_default_limit_refuses_a_200_mb_declaration(server: LocalServer) -> None:
    head = (
        f"POST /api/queries/1/results HTTP/1.1\r\nHost: x\r\nAuthorization: Key {server.user_api_key}\r\n"
        f"Content-Length: {200 * 1024 * 1024}\r\n\r\n"
    )
    status, body = _status_and_json(_raw(server, head.encode()))
    assert (status.split(b" ")[:2], body) == ([b"HTTP/1.1", b"413"], TOO_LARGE)


def test_chunked_body_is_counted_whatever_the_chunk_sizes_say(small_server: LocalServer) -> None:
    key = small_server.user_api_key
    head = f"POST /api/queries HTTP/1.1\r\nHost: x\r\nAuthorization: Key {key}\r\nTransfer-Encoding: chunked\r\n\r\n"
    # One chunk announced as 2^64 - 1 bytes, of which 2000 are sent: the server stops reading at its limit.
    status, body = _status_and_json(_raw(small_server, head.encode() + b"ffffffffffffffff\r\n" + b"x" * 2000))
    assert (status.split(b" ")[:2], body) == ([b"HTTP/1.1", b"413"], TOO_LARGE)
    api = Api(small_server)
    r = api.post("/api/queries", data=(b"x" * 600 for _ in range(2)))
    assert (r.status_code, r.json()) == (413, TOO_LARGE)
    small = {"name": "fits", "query": "select 1 as one", "data_source_id": 1}
    assert api.post("/api/queries", data=(json.dumps(small).encode() for _ in range(1))).status_code == 200


def test_requests_under_the_limit_and_bad_json_still_work(small_server: LocalServer) -> None:
    api = Api(small_server)
    r = api.post("/api/queries/12/results", data=b'{"max_age": 0', headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert api.post("/api/queries/12/results", json={"max_age": 0}).status_code == 200


def test_data_folder_that_is_a_file(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(LocalServerError, match=r"exists and is not a folder: pass another --data path"):
        LocalServer(path).start()
    with pytest.raises(LocalServerError, match=r"cannot create data folder .*: Not a directory"):
        LocalServer(path / "below").start()
    assert issubclass(LocalServerError, IWatchError)


def test_corrupt_metadata_file(tmp_path: Path) -> None:
    data = tmp_path / "d"
    with LocalServer(data):
        pass
    (data / "metadata.sqlite").write_bytes(b"this is not a database" * 100)
    for suffix in ("-wal", "-shm"):
        (data / f"metadata.sqlite{suffix}").unlink(missing_ok=True)
    with pytest.raises(LocalServerError, match=r"metadata file .* is not a readable SQLite database"):
        LocalServer(data).start()
    result = CliRunner().invoke(main, ["local", "serve", "--port", "0", "--data", str(data)])
    assert result.exit_code == 1
    assert "is not a readable SQLite database" in result.output
    assert "cannot listen" not in result.output


def test_corrupt_data_source(tmp_path: Path) -> None:
    data = tmp_path / "d"
    data.mkdir()
    (data / "datasource.sqlite").write_bytes(b"garbage" * 1000)
    with pytest.raises(LocalServerError, match=r"data source .* delete it to have it rebuilt"):
        LocalServer(data).start()


def test_cli_unusable_data_folder_is_named(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("x")
    result = CliRunner().invoke(main, ["local", "serve", "--port", "0", "--data", str(path / "sub")])
    assert result.exit_code == 1
    assert f"cannot create data folder {path / 'sub'}" in result.output


def test_a_500_is_logged_with_its_traceback(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with LocalServer(tmp_path / "d") as srv, Api(srv) as api:
        # A stored document broken behind the server's back: the handler fails, the server answers 500 and goes on.
        with sqlite3.connect(tmp_path / "d" / "metadata.sqlite") as conn:
            conn.execute("""update queries set doc = '{"id": 1, "api_key": "k"}' where id = 1""")
        with caplog.at_level("ERROR", logger="dagster_iwatch.local"):
            r = api.get("/api/queries/1")
        assert (r.status_code, r.json()) == (500, {"message": "Internal Server Error"})
        errors = [rec for rec in caplog.records if rec.name == "dagster_iwatch.local"]
        assert errors[0].getMessage() == "500 on GET /api/queries/1"
        assert errors[0].exc_info is not None
        assert errors[0].exc_info[0] is KeyError
        assert api.get("/api/queries/2").status_code == 200


def _access_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "dagster_iwatch.local.access"]


def test_access_log_masks_keys(server: LocalServer, caplog: pytest.LogCaptureFixture) -> None:
    key = server.user_api_key
    with caplog.at_level("INFO", logger="dagster_iwatch.local.access"):
        requests.get(f"{server.url}/api/queries/1?page=1&api_key={key}", timeout=5)
        requests.get(f"{server.url}/api/nope", headers={"Authorization": f"Key {key}"}, timeout=5)
        # The server logs a request once its answer is sent, so the last line may come after the answer.
        deadline = time.monotonic() + 5
        while len(_access_lines(caplog)) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    lines = _access_lines(caplog)
    assert len(lines) == 2
    assert '"GET /api/queries/1?page=1&api_key=***" 200 ' in lines[0]
    assert '"GET /api/nope" 404 ' in lines[1]
    assert lines[0].startswith("127.0.0.1 ")
    assert lines[0].endswith("ms")
    assert key not in "".join(lines)
