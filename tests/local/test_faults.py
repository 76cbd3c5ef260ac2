"""Fault injection: every kind, a share of requests, the admin endpoint and faults planned at startup."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import requests

from dagster_iwatch.local import LocalServer, LocalServerError

from .helpers import Api

LOGIN = {"message": "Couldn't find resource. Please login and try again."}


def test_share_of_requests_is_repeatable_with_a_seed(server: LocalServer, api: Api) -> None:
    def run() -> list[int]:
        server.clear_faults()
        server.inject_fault(status=502, path_prefix="/api/queries/1", times=None, share=0.3, seed=7)
        return [api.get("/api/queries/1").status_code for _ in range(40)]

    first = run()
    assert set(first) == {200, 502}
    assert 4 <= first.count(502) <= 24
    assert run() == first


def test_times_caps_a_share(server: LocalServer, api: Api) -> None:
    server.inject_fault(status=500, path_prefix="/api/queries/1", times=3, share=0.5, seed=1)
    codes = [api.get("/api/queries/1").status_code for _ in range(30)]
    assert codes.count(500) == 3


def test_reset_mid_body(server: LocalServer, api: Api) -> None:
    server.inject_fault(kind="reset", path_prefix="/api/queries/13", times=1)
    with pytest.raises((requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        api.get("/api/queries/13")
    assert api.get("/api/queries/13").json()["id"] == 13


def test_truncated_body_is_framed_but_not_json(server: LocalServer, api: Api) -> None:
    whole = api.get("/api/queries/1").content
    server.inject_fault(kind="truncate", path_prefix="/api/queries/1", times=1)
    r = api.get("/api/queries/1")
    assert r.status_code == 200
    assert r.content == whole[: len(whole) // 2]
    assert int(r.headers["Content-Length"]) == len(r.content)
    with pytest.raises(ValueError, match=r"Unterminated|Expecting"):
        r.json()


def test_non_json_body(server: LocalServer, api: Api) -> None:
    server.inject_fault(kind="non-json", path_prefix="/api/jobs/", times=1)
    r = api.get("/api/jobs/whatever")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "text/html"
    assert r.text.startswith("<html>")


def test_job_that_never_finishes(fresh_server: LocalServer, fresh_api: Api) -> None:
    api = fresh_api
    fresh_server.inject_fault(kind="hang", method="POST", path_prefix="/api/queries/15/results", times=1)
    hung = api.post("/api/queries/15/results", json={"max_age": 0}).json()["job"]
    assert hung["status"] == 1
    # The single worker is free: other jobs finish while the hung one stays started.
    assert api.execute(12)["status"] == 3
    assert api.execute(14)["status"] == 3
    assert api.get(f"/api/jobs/{hung['id']}").json()["job"]["status"] == 2
    again = api.post("/api/queries/15/results", json={"max_age": 0}).json()["job"]
    assert again["id"] == hung["id"]
    assert api.delete(f"/api/jobs/{hung['id']}").status_code == 200
    assert fresh_server.wait_for_job(hung["id"], (5,)) == 5
    assert api.execute(15)["status"] == 3


def test_job_that_fails(server: LocalServer, api: Api) -> None:
    server.inject_fault(kind="fail", method="POST", path_prefix="/api/query_results", times=1)
    r = api.post("/api/query_results", json={"query": "select 4242 as n", "data_source_id": 1, "max_age": 0})
    job = api.wait_job(r.json()["job"]["id"])
    assert (job["status"], job["query_result_id"]) == (4, None)
    assert job["error"].startswith("Injected fault")
    r = api.post("/api/query_results", json={"query": "select 4242 as n", "data_source_id": 1, "max_age": 0})
    assert api.wait_job(r.json()["job"]["id"])["status"] == 3


def _large_row(i: int) -> dict[str, Any]:
    from datetime import date, timedelta

    day = (date(2024, 1, 1) + timedelta(days=i % 366)).isoformat()
    return {"id": i, "amount": i * 0.5, "token": ["ETH", "USDC", "WBTC", "DAI", "LINK"][i % 5], "block_date": day,
            "is_contract": i % 3 == 0}  # fmt: skip


def test_large_result_is_streamed(server: LocalServer, api: Api) -> None:
    server.inject_fault(kind="large", path_prefix="/api/queries/2/results/", rows=120_000, times=1)
    r = api.get("/api/queries/2/results/77.json", stream=True)
    assert r.status_code == 200
    assert r.headers["Transfer-Encoding"] == "chunked"
    assert "Content-Length" not in r.headers
    chunks = list(r.iter_content(chunk_size=None))
    assert len(chunks) > 10
    result = json.loads(b"".join(chunks))["query_result"]
    assert result["id"] == 77
    rows = result["data"]["rows"]
    assert len(rows) == 120_000
    assert [rows[0], rows[59_999], rows[-1]] == [_large_row(1), _large_row(60_000), _large_row(120_000)]
    assert [c["type"] for c in result["data"]["columns"]] == ["integer", "float", None, "date", "boolean"]


def test_admin_endpoint(server: LocalServer, api: Api) -> None:
    spec = {"status": 503, "path_prefix": "/api/queries/12", "times": 1, "retry_after": 2}
    r = api.post("/__local/faults", json=spec)
    assert r.status_code == 200
    assert r.json()["faults"][0]["retry_after"] == 2
    assert api.get("/__local/faults").json()["faults"][0]["path_prefix"] == "/api/queries/12"
    r = api.get("/api/queries/12")
    assert (r.status_code, r.headers["Retry-After"]) == (503, "2")
    assert api.get("/__local/faults").json() == {"faults": []}
    api.post("/__local/faults", json=[{"path_prefix": "/api/", "times": None, "method": None}])
    # Faults never touch the admin endpoint itself, so a test can always clear them.
    assert api.delete("/__local/faults").json() == {"faults": []}
    assert api.get("/api/queries/12").status_code == 200


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"kind": "explode"}, "fault kind must be one of"),
        ({"share": 0}, "fault share must be in (0, 1]"),
        ({"status": 99}, "fault status must be an HTTP status"),
        ({"bogus": 1}, "unknown fault options ['bogus']"),
        ({"path_prefix": "api"}, "fault path_prefix must start with '/'"),
        ({"times": -1}, "fault times must be a count"),
    ],
)
def test_admin_endpoint_refuses_bad_specs(api: Api, spec: dict[str, Any], message: str) -> None:
    r = api.post("/__local/faults", json=spec)
    assert r.status_code == 400
    assert r.json()["message"].startswith(message)
    if "bogus" not in spec:
        with pytest.raises(LocalServerError, match=re.escape(message)):
            api.srv.inject_fault(**spec)


def test_admin_endpoint_needs_the_user_key(server: LocalServer, api: Api) -> None:
    for key in ("", "wrong", server.query_api_key(1)):
        r = api.post("/__local/faults", json={"times": 1}, key=key, headers={} if key else {"Authorization": ""})
        assert (r.status_code, r.json()) == (404, LOGIN)
    assert api.get("/__local/faults").json() == {"faults": []}


def test_faults_planned_at_startup(tmp_path: Path) -> None:
    spec = {"status": 429, "retry_after": 1, "method": "GET", "path_prefix": "/api/queries", "times": 1}
    with LocalServer(tmp_path / "d", faults=[spec]) as srv, Api(srv) as api:
        r = api.get("/api/queries")
        assert (r.status_code, r.headers["Retry-After"]) == (429, "1")
        assert api.get("/api/queries").status_code == 200
