"""Jobs: status progression, cancellation of running and pending jobs in both flavors, unknown ids."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from dagster_iwatch.local import LocalServer

from .helpers import Api

CANCELLED = "Query cancelled by user."


def _start_slow(api: Api, seconds: float) -> str:
    r = api.post("/api/queries/11/results", json={"parameters": {"seconds": seconds}, "max_age": 0})
    assert r.status_code == 200
    job_id: str = r.json()["job"]["id"]
    return job_id


@pytest.mark.parametrize(("flavor", "final_status"), [("inverse-watch", 5), ("redash", 4)])
def test_cancel_running_job(server: LocalServer, redash_server: LocalServer, flavor: str, final_status: int) -> None:
    srv = server if flavor == "inverse-watch" else redash_server
    api = Api(srv)
    job_id = _start_slow(api, 2.5)
    srv.wait_for_job(job_id, (2,))
    started = api.get(f"/api/jobs/{job_id}").json()["job"]
    assert started["status"] == 2
    assert started["updated_at"] != 0
    r = api.delete(f"/api/jobs/{job_id}")
    assert (r.status_code, r.text) == (200, "null")
    job = api.get(f"/api/jobs/{job_id}").json()["job"]
    assert (job["status"], job["error"], job["query_result_id"]) == (final_status, CANCELLED, None)
    assert srv.job_status(job_id) == final_status
    # Cancelling again changes nothing.
    assert api.delete(f"/api/jobs/{job_id}").status_code == 200
    assert api.wait_job(job_id)["status"] == final_status


def test_cancelled_statement_frees_its_worker(tmp_path: Path) -> None:
    with LocalServer(tmp_path / "d", workers=1) as srv:
        api = Api(srv)
        job_id = _start_slow(api, 30)
        srv.wait_for_job(job_id, (2,))
        api.delete(f"/api/jobs/{job_id}")
        # With one worker, this only finishes if the 30 s sleep was really interrupted.
        assert api.execute(12)["status"] == 3


def test_cancel_pending_job_never_starts(tmp_path: Path) -> None:
    with LocalServer(tmp_path / "d", workers=1) as srv:
        api = Api(srv)
        running = _start_slow(api, 30)
        srv.wait_for_job(running, (2,))
        pending = _start_slow(api, 31)
        assert srv.job_status(pending) == 1
        assert api.delete(f"/api/jobs/{pending}").status_code == 200
        assert srv.job_status(pending) == 5
        api.delete(f"/api/jobs/{running}")
        assert api.execute(12)["status"] == 3
        assert api.get(f"/api/jobs/{pending}").json()["job"]["status"] == 5


def test_query_scoped_cancel_is_a_500_and_the_job_runs_on(server: LocalServer, api: Api) -> None:
    # Upstream routes DELETE /api/queries/<qid>/jobs/<id> to a handler without the query id: 500, job untouched.
    job_id = _start_slow(api, 2.2)
    q11 = Api(server, key=server.query_api_key(11))
    for caller in (api, q11):
        r = caller.delete(f"/api/queries/11/jobs/{job_id}")
        assert (r.status_code, r.json()) == (500, {"message": "Internal Server Error"})
    assert server.job_status(job_id) in (1, 2)
    assert api.delete(f"/api/jobs/{job_id}").status_code == 200
    assert api.get(f"/api/queries/11/jobs/{job_id}").json()["job"]["status"] == 5


def test_job_goes_pending_started_success(api: Api) -> None:
    job_id = _start_slow(api, 0.3)
    seen = set()
    job = api.get(f"/api/jobs/{job_id}").json()["job"]
    seen.add(job["status"])
    job = api.wait_job(job_id)
    seen.add(job["status"])
    assert seen <= {1, 2, 3}
    assert job["status"] == 3
    assert api.result(job["query_result_id"])["data"]["rows"] == [{"slept": 0.3}]


def test_unknown_job(api: Api) -> None:
    for method in ("GET", "DELETE"):
        r = api.request(method, "/api/jobs/00000000-0000-0000-0000-000000000000")
        assert (r.status_code, r.json()) == (500, {"message": "Internal Server Error"})
    with pytest.raises(KeyError):
        api.srv.job_status("nope")


def test_stop_cancels_running_jobs(tmp_path: Path) -> None:
    before = set(threading.enumerate())
    srv = LocalServer(tmp_path / "d", workers=1).start()
    workers = [t for t in set(threading.enumerate()) - before if t.name.startswith("iwatch-local-worker")]
    api = Api(srv)
    job_id = _start_slow(api, 30)
    srv.wait_for_job(job_id, (2,))
    srv.stop()
    # stop() gives up joining after 10 s: a worker still alive would still be in the 30 s statement.
    assert workers
    assert not any(t.is_alive() for t in workers)
    srv.stop()
    with pytest.raises(RuntimeError):
        srv.job_status(job_id)


def test_finished_jobs_expire(tmp_path: Path) -> None:
    with LocalServer(tmp_path / "d", job_ttl=0.2) as srv:
        api = Api(srv)
        old = api.execute(12)
        assert old["status"] == 3
        # Expired jobs are forgotten when the next job is submitted.
        deadline = time.monotonic() + 5
        while api.get(f"/api/jobs/{old['id']}").status_code == 200:
            assert time.monotonic() < deadline, "a finished job never expired"
            api.post("/api/query_results", json={"query": "select 1", "data_source_id": 1, "max_age": 0})
            time.sleep(0.05)
        r = api.get(f"/api/jobs/{old['id']}")
        assert (r.status_code, r.json()) == (500, {"message": "Internal Server Error"})
        assert api.execute(12)["status"] == 3


def test_worker_survives_a_cancelled_job_expiring_in_the_queue(tmp_path: Path) -> None:
    with LocalServer(tmp_path / "d", workers=1, job_ttl=0.1) as srv:
        api = Api(srv)
        running = _start_slow(api, 30)
        srv.wait_for_job(running, (2,))
        pending = _start_slow(api, 31)
        api.delete(f"/api/jobs/{pending}")
        deadline = time.monotonic() + 5
        while api.get(f"/api/jobs/{pending}").status_code == 200:
            assert time.monotonic() < deadline, "the cancelled job never expired"
            api.post("/api/query_results", json={"query": "select 2", "data_source_id": 1, "max_age": 0})
            time.sleep(0.05)
        api.delete(f"/api/jobs/{running}")
        assert api.execute(12)["status"] == 3
