"""The server survives bad requests, keeps its state across restarts, and misbehaves on request."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from dagster_iwatch.local import LocalServer
from dagster_iwatch.local.seed import SEED_QUERIES

from .helpers import Api

BAD_REQUEST = {"message": "The browser (or proxy) sent a request that this server could not understand."}


def test_malformed_bodies_do_not_hurt(fresh_api: Api) -> None:
    api = fresh_api
    for path in ("/api/queries", "/api/queries/1", "/api/dashboards", "/api/dashboards/1", "/api/widgets"):
        for data in (b"{not json", b"[1, 2", b"\xff\xfe", b""):
            r = api.post(path, data=data, headers={"Content-Type": "application/json"})
            assert (r.status_code, r.json()) == (400, BAD_REQUEST), (path, data)
    for data in (b"[]", b'"x"', b"42", b"null"):
        r = api.post("/api/queries", data=data)
        assert r.status_code in (400, 500)
    for bad in ({"tags": 5}, {"options": []}, {"options": {"parameters": {"a": 1}}}, {"options": {"parameters": [1]}}):
        assert api.post("/api/queries/1", json=bad).json() == BAD_REQUEST
        assert api.post("/api/queries", json={"name": "x", "query": "select 1", "data_source_id": 1, **bad}).json() == (
            BAD_REQUEST
        )
    assert api.post("/api/dashboards/1", json={"tags": "x"}).json() == BAD_REQUEST
    chunks = (part for part in (b'{"max_age"', b": 3600}"))
    assert api.post("/api/queries/12/results", data=chunks).status_code == 200
    assert api.get("/api/queries/12").status_code == 200
    r = api.post("/api/queries/1/results", json={"parameters": [1, 2], "max_age": 0})
    assert r.status_code == 400
    assert api.get("/api/queries", params={"page_size": 250}).json()["count"] == len(SEED_QUERIES)
    assert api.get("/api/queries/1").json()["name"] == "All transfers"
    assert api.execute(12)["status"] == 3


def test_lone_surrogates_are_refused_not_stored(fresh_api: Api) -> None:
    api = fresh_api
    body = b'{"name": "bad \\ud800", "query": "select 1", "data_source_id": 1}'
    r = api.post("/api/queries", data=body, headers={"Content-Type": "application/json"})
    assert (r.status_code, r.json()) == (400, BAD_REQUEST)
    r = api.post("/api/dashboards/1", data=b'{"name": "\\udfff"}', headers={"Content-Type": "application/json"})
    assert (r.status_code, r.json()) == (400, BAD_REQUEST)
    assert api.get("/api/queries", params={"page_size": 250}).json()["count"] == len(SEED_QUERIES)
    assert api.get("/api/dashboards").status_code == 200


def test_unknown_routes_and_methods(api: Api) -> None:
    r = api.get("/api/nope")
    assert r.status_code == 404
    assert r.json()["message"].startswith("The requested URL was not found")
    assert api.request("PUT", "/api/queries/1", json={}).status_code == 405
    assert api.get("/").status_code == 404


def test_garbage_on_the_socket(api: Api) -> None:
    parts = urlsplit(api.srv.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(b"\x16\x03\x01 not http at all\r\n\r\n")
        sock.recv(1024)
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(b"POST /api/queries HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")
    assert api.get("/api/queries/1").status_code == 200


@pytest.mark.parametrize(
    "head",
    [
        b"POST /api/queries HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
        b"POST /api/queries HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"POST /api/queries HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n",
    ],
)
def test_broken_body_framing_gets_400(api: Api, head: bytes) -> None:
    parts = urlsplit(api.srv.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(head)
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    assert answer.partition(b"\r\n")[0] == b"HTTP/1.1 400 Bad Request"
    assert api.get("/api/queries/1").status_code == 200


def test_state_survives_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with LocalServer(data) as srv:
        api = Api(srv)
        port = srv.port
        created = api.post("/api/queries", json={"name": "Kept", "query": "select 7 as n", "data_source_id": 1})
        qid = created.json()["id"]
        job = api.execute(qid)
        rid = job["query_result_id"]
        api.post("/api/dashboards", json={"name": "Kept board"})
        key = srv.user_api_key
    with LocalServer(data, port=port) as srv:
        api = Api(srv)
        assert srv.user_api_key == key
        assert api.get(f"/api/queries/{qid}").json()["latest_query_data_id"] == rid
        assert api.result(rid)["data"]["rows"] == [{"n": 7}]
        assert api.post(f"/api/queries/{qid}/results", json={}).json()["query_result"]["id"] == rid
        assert api.get("/api/dashboards/kept-board").status_code == 200
        assert api.get("/api/queries", params={"page_size": 250}).json()["count"] == len(SEED_QUERIES) + 1
        assert api.get("/api/queries/1").json()["name"] == "All transfers"


def test_fault_injection_status_and_retry_after(server: LocalServer, api: Api) -> None:
    server.inject_fault(status=503, method="GET", path_prefix="/api/queries/1", times=2, retry_after=1)
    for _ in range(2):
        r = api.get("/api/queries/1")
        assert r.status_code == 503
        assert r.headers["Retry-After"] == "1"
    assert api.get("/api/queries/1").status_code == 200


def test_fault_injection_body_method_and_clear(server: LocalServer, api: Api) -> None:
    server.inject_fault(status=429, method="POST", path_prefix="/api/queries/", times=1, body={"message": "slow"})
    assert api.get("/api/queries/1").status_code == 200
    r = api.post("/api/queries/12/results", json={"max_age": 0})
    assert (r.status_code, r.json()) == (429, {"message": "slow"})
    server.inject_fault(status=500, method=None, path_prefix="/api/", times=5, body="<html>oops</html>")
    r = api.get("/api/queries/1")
    assert r.status_code == 500
    assert r.text == "<html>oops</html>"
    server.clear_faults()
    assert api.get("/api/queries/1").status_code == 200


def test_fault_injection_delay(server: LocalServer, api: Api) -> None:
    server.inject_fault(status=None, method="GET", path_prefix="/api/queries/12", times=1, delay=0.3)
    started = time.monotonic()
    r = api.get("/api/queries/12")
    assert r.status_code == 200
    assert time.monotonic() - started >= 0.3
    server.inject_fault(status=None, method="GET", path_prefix="/api/queries/12", times=1, delay=1.0)
    with pytest.raises(requests.exceptions.Timeout):
        api.get("/api/queries/12", timeout=0.2)


def test_requests_seen(server: LocalServer, api: Api) -> None:
    server.requests_seen.clear()
    api.get("/api/queries/1", params={"api_key": "x"})
    api.post("/api/queries/12/results", json={"max_age": 3600})
    assert server.requests_seen[-2:] == [("GET", "/api/queries/1"), ("POST", "/api/queries/12/results")]


def test_api_key_never_in_server_output(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    with LocalServer(tmp_path / "d") as srv:
        api = Api(srv)
        api.get("/api/queries/1", key="", params={"api_key": srv.user_api_key})
        api.get("/api/nope", key="", params={"api_key": srv.user_api_key})
        key = srv.user_api_key
        assert key not in repr(srv)
    out, err = capfd.readouterr()
    assert key not in out
    assert key not in err
    assert json.dumps(key) not in err


def test_results_landing_during_edits_stay_the_latest(fresh_server: LocalServer) -> None:
    stop = threading.Event()

    def edit() -> None:
        with Api(fresh_server) as editor:
            i = 0
            while not stop.is_set():
                assert editor.post("/api/queries/12", json={"description": f"edit {i}"}).status_code == 200
                i += 1

    editors = [threading.Thread(target=edit) for _ in range(2)]
    for t in editors:
        t.start()
    try:
        with Api(fresh_server) as api:
            for _ in range(20):
                rid = api.execute(12)["query_result_id"]
                assert api.get("/api/queries/12").json()["latest_query_data_id"] == rid
    finally:
        stop.set()
        for t in editors:
            t.join()


@pytest.mark.parametrize(
    ("sql", "error"),
    [
        ("drop table prices", "attempt to write a readonly database"),
        ("delete from prices", "attempt to write a readonly database"),
        ("attach database 'metadata.sqlite' as m", "too many attached databases - max 0"),
    ],
)
def test_queries_cannot_change_the_data_source(fresh_api: Api, sql: str, error: str) -> None:
    r = fresh_api.post("/api/query_results", json={"query": sql, "data_source_id": 1, "max_age": 0})
    job = fresh_api.wait_job(r.json()["job"]["id"])
    assert (job["status"], job["error"]) == (4, error)
    assert len(fresh_api.run_rows(15)["data"]["rows"]) == 91 * 5
