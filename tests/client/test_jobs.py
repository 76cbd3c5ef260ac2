"""execute(): cache vs run, job failure, cancellation, timeout and interrupted waits, on both flavors."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import pytest
import requests

from dagster_iwatch.client import IWatchClient
from dagster_iwatch.errors import JobCancelledError, JobTimeoutError, ProtocolError, QueryExecutionError
from dagster_iwatch.local import LocalServer
from dagster_iwatch.run_handler import RunProgress
from dagster_iwatch.types import JobStatus

CANCELLED = (JobStatus.CANCELLED, JobStatus.FAILURE)


def flavored(flavor: str, server: LocalServer, redash_server: LocalServer) -> LocalServer:
    return server if flavor == "inverse-watch" else redash_server


def polled_job_id(srv: LocalServer, query_id: int, deadline: float = 10.0) -> str:
    """The id of the first job the client polls for, read from the server's request log."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        for _, path in list(srv.requests_seen):
            for prefix in ("/api/jobs/", f"/api/queries/{query_id}/jobs/"):
                if path.startswith(prefix):
                    return path[len(prefix) :]
        threading.Event().wait(0.01)
    raise AssertionError("the client never polled a job")


def test_max_age_picks_cache_or_run(server: LocalServer) -> None:
    with IWatchClient(server.url, server.user_api_key, poll_interval=0.02) as client:
        ran = client.execute(15, max_age=0)
        assert ran.job_id is not None
        assert not ran.from_cache
        cached = client.execute(15, max_age=3600)
        assert cached.from_cache
        assert cached.job_id is None
        assert cached.id == ran.id
        assert cached.row_count == ran.row_count
        again = client.execute(15)
        assert again.job_id is not None
        assert again.id != ran.id


def test_execute_sends_max_age_and_parameters(server: LocalServer) -> None:
    with IWatchClient(server.url, server.user_api_key, poll_interval=0.02) as client:
        first = client.execute(5, {"period": ("2024-02-01", "2024-02-03")}, max_age=0)
        assert first.parameters == {"period": {"start": "2024-02-01", "end": "2024-02-03"}}
        assert {r["block_date"] for r in first.rows} == {"2024-02-01", "2024-02-02", "2024-02-03"}
        same = client.execute(5, {"period": {"start": "2024-02-01", "end": "2024-02-03"}}, max_age=600)
        other = client.execute(5, {"period": ("2024-02-01", "2024-02-04")}, max_age=600)
    assert same.from_cache
    assert same.id == first.id
    assert not other.from_cache


def test_failed_query_raises_with_the_server_error(server: LocalServer) -> None:
    with (
        IWatchClient(server.url, server.user_api_key, poll_interval=0.02) as client,
        pytest.raises(QueryExecutionError) as caught,
    ):
        client.execute(10)
    assert caught.value.query_id == 10
    assert caught.value.job_id
    assert "syntax error" in caught.value.server_error


@pytest.mark.parametrize("flavor", ["inverse-watch", "redash"])
def test_job_cancelled_on_the_server(flavor: str, server: LocalServer, redash_server: LocalServer) -> None:
    srv = flavored(flavor, server, redash_server)
    srv.clear_requests_seen()
    outcome: list[BaseException] = []

    def run() -> None:
        with IWatchClient(srv.url, srv.user_api_key, poll_interval=0.02, max_poll_interval=0.05) as client:
            try:
                client.execute(11, {"seconds": 3})
            except BaseException as error:
                outcome.append(error)

    worker = threading.Thread(target=run)
    worker.start()
    job_id = polled_job_id(srv, 11)
    with IWatchClient(srv.url, srv.user_api_key) as admin:
        admin.cancel_job(job_id)
    worker.join(timeout=10)
    assert not worker.is_alive()
    assert len(outcome) == 1
    error = outcome[0]
    assert isinstance(error, JobCancelledError)
    assert error.job_id == job_id
    assert srv.job_status(job_id) == (JobStatus.FAILURE if flavor == "redash" else JobStatus.CANCELLED)


@pytest.mark.parametrize("flavor", ["inverse-watch", "redash"])
def test_timeout_cancels_the_remote_job(flavor: str, server: LocalServer, redash_server: LocalServer) -> None:
    srv = flavored(flavor, server, redash_server)
    srv.clear_requests_seen()
    with (
        IWatchClient(srv.url, srv.user_api_key, poll_interval=0.02, max_poll_interval=0.05) as client,
        pytest.raises(JobTimeoutError) as caught,
    ):
        client.execute(11, {"seconds": 4}, timeout=0.3)
    job_id = caught.value.job_id
    assert caught.value.timeout == 0.3
    assert ("DELETE", f"/api/jobs/{job_id}") in srv.requests_seen
    assert srv.wait_for_job(job_id, CANCELLED, timeout=5) in CANCELLED


@pytest.mark.parametrize("flavor", ["inverse-watch", "redash"])
@pytest.mark.parametrize("as_api_key", [True, False])
def test_with_only_a_query_key_a_timeout_says_the_job_may_still_run(
    flavor: str, as_api_key: bool, server: LocalServer, redash_server: LocalServer
) -> None:
    srv = server if flavor == "inverse-watch" else redash_server
    key = srv.query_api_key(11)
    keys = {"query_api_keys": {11: key}} if not as_api_key else {"api_key": key}
    srv.clear_requests_seen()
    with (
        IWatchClient(srv.url, poll_interval=0.02, max_poll_interval=0.05, **keys) as client,  # type: ignore[arg-type]
        pytest.raises(JobTimeoutError) as caught,
    ):
        client.execute(11, {"seconds": 8}, timeout=0.3)
    job_id = caught.value.job_id
    assert job_id is not None
    # Upstream refuses a query key the cancel on both routes: the error must not claim it happened.
    assert not caught.value.cancel_confirmed
    assert "may still be running" in str(caught.value)
    assert ("DELETE", f"/api/jobs/{job_id}") in srv.requests_seen
    assert srv.job_status(job_id) in (1, 2)
    with IWatchClient(srv.url, srv.user_api_key) as admin:
        admin.cancel_job(job_id)
    assert srv.wait_for_job(job_id, CANCELLED, timeout=5) in CANCELLED


class Terminated(BaseException):
    """Stands for Dagster's run termination, which reaches the step as a BaseException."""


class RaiseOnStatus(logging.Handler):
    """Raises an exception from inside the client's wait loop when a job reaches a status."""

    def __init__(self, word: str, make: Callable[[], BaseException]) -> None:
        super().__init__()
        self.word = word
        self.make = make

    def emit(self, record: logging.LogRecord) -> None:
        if self.word in record.getMessage():
            raise self.make()


@pytest.mark.parametrize("word", ["queued", "STARTED"])
@pytest.mark.parametrize("make", [Terminated, KeyboardInterrupt])
def test_interrupted_wait_cancels_the_remote_job(server: LocalServer, make: type[BaseException], word: str) -> None:
    logger = logging.getLogger(f"tests.client.interrupt.{make.__name__}.{word}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(RaiseOnStatus(word, make))
    server.clear_requests_seen()
    with (
        IWatchClient(server.url, server.user_api_key, poll_interval=0.02, logger=logger) as client,
        pytest.raises(make),
    ):
        client.execute(11, {"seconds": 4})
    (job_id,) = [p.removeprefix("/api/jobs/") for m, p in server.requests_seen if m == "DELETE"]
    assert server.wait_for_job(job_id, CANCELLED, timeout=5) in CANCELLED


def test_polling_survives_retried_errors_and_backs_off(server: LocalServer) -> None:
    server.clear_requests_seen()
    server.inject_fault(status=503, method="GET", path_prefix="/api/queries/11/jobs/", times=2)
    started = time.monotonic()
    with IWatchClient(
        server.url, server.user_api_key, poll_interval=0.05, max_poll_interval=0.2, backoff_factor=0.01
    ) as client:
        result = client.execute(11, {"seconds": 1})
    elapsed = time.monotonic() - started
    assert result.rows == [{"slept": 1}]
    polls = sum(1 for m, p in server.requests_seen if m == "GET" and p.startswith("/api/queries/11/jobs/"))
    # Two answers were retried 503s; the interval grows from 0.05 s to 0.2 s, so far fewer polls than a
    # fixed 0.05 s interval would make.
    assert 3 <= polls <= 2 + 4 + elapsed / 0.2 + 1
    assert polls < elapsed / 0.05


def test_progress_is_logged_without_keys(server: LocalServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="dagster_iwatch.client")
    with IWatchClient(server.url, server.user_api_key, poll_interval=0.02) as client:
        result = client.execute(12)
    assert result.job_id is not None
    assert result.job_id in caplog.text
    assert "SUCCESS" in caplog.text
    assert server.user_api_key not in caplog.text


@pytest.mark.parametrize(("status", "error"), [(5, JobCancelledError), (4, QueryExecutionError)])
def test_job_error_text_never_shows_the_key(
    server: LocalServer, status: int, error: type[JobCancelledError | QueryExecutionError]
) -> None:
    text = f"cancelled: Key {server.user_api_key}" if status == 5 else f"auth failed for {server.user_api_key}"
    body = {"job": {"id": "x", "status": status, "error": text, "result": None, "query_result_id": None}}
    server.inject_fault(status=200, method="GET", path_prefix="/api/queries/12/jobs/", times=1, body=body)
    with IWatchClient(server.url, server.user_api_key, poll_interval=0.02) as client, pytest.raises(error) as caught:
        client.execute(12)
    value = caught.value
    assert isinstance(value, JobCancelledError | QueryExecutionError)
    shown = f"{value} {value!r} {value.args} {value.server_error}"
    assert server.user_api_key not in shown
    assert "***" in shown


def test_deferred_and_scheduled_statuses_count_as_running(server: LocalServer) -> None:
    for status in (6, 7):
        body = {"job": {"id": "other", "status": status, "error": "", "result": None, "query_result_id": None}}
        server.inject_fault(status=200, method="GET", path_prefix="/api/queries/12/jobs/", times=2, body=body)
        with IWatchClient(server.url, server.user_api_key, poll_interval=0.02) as client:
            result = client.execute(12)
        assert result.row_count == 5
        assert result.job_id != "other"


def test_unknown_job_status_is_a_protocol_error_and_the_job_is_cancelled(server: LocalServer) -> None:
    body = {"job": {"id": "x", "status": 42, "error": "", "result": None, "query_result_id": None}}
    server.clear_requests_seen()
    server.inject_fault(status=200, method="GET", path_prefix="/api/queries/11/jobs/", times=1, body=body)
    with IWatchClient(server.url, server.user_api_key, poll_interval=0.02) as client, pytest.raises(ProtocolError):
        client.execute(11, {"seconds": 2})
    job_id = polled_job_id(server, 11)
    assert ("DELETE", f"/api/jobs/{job_id}") in server.requests_seen
    assert server.wait_for_job(job_id, CANCELLED, timeout=5) in CANCELLED


def test_get_job_and_cancel_job(server: LocalServer) -> None:
    with IWatchClient(server.url, server.user_api_key, poll_interval=0.02) as client:
        result = client.execute(12)
        assert result.job_id is not None
        job = client.get_job(result.job_id)
        assert job.status == JobStatus.SUCCESS
        assert job.query_result_id == result.id
        assert not job.is_cancelled
    keys = {11: server.query_api_key(11)}
    with IWatchClient(server.url, server.user_api_key, query_api_keys=keys) as client:
        started = requests.post(
            f"{server.url}/api/queries/11/results",
            json={"parameters": {"seconds": 3}, "max_age": 0},
            headers={"Authorization": f"Key {server.user_api_key}"},
            timeout=10,
        ).json()
        job_id = started["job"]["id"]
        assert client.get_job(job_id, query_id=11).status in (JobStatus.PENDING, JobStatus.STARTED)
        client.cancel_job(job_id, query_id=11)
        assert server.wait_for_job(job_id, CANCELLED, timeout=5) in CANCELLED
        assert client.get_job(job_id).is_cancelled


def test_progress_reports_each_step_of_a_run(server: LocalServer) -> None:
    events: list[RunProgress] = []
    with IWatchClient(server.url, server.user_api_key, poll_interval=0.05) as client:
        result = client.execute(11, {"seconds": 1}, progress=events.append)
        cached = client.execute(11, {"seconds": 1}, max_age=3600, progress=events.append)
    stages = [e.stage for e in events]
    assert stages[0] == "waiting"
    assert "reading" in stages
    run, hit = events[stages.index("done")], events[-1]
    assert (run.rows, run.job_id, run.from_cache) == (result.row_count, result.job_id, False)
    assert (hit.stage, hit.rows, hit.from_cache) == ("done", cached.row_count, True)
    assert {e.job_status for e in events if e.stage == "waiting"} >= {JobStatus.STARTED}
    reads = [e.bytes_read for e in events if e.stage == "reading"]
    assert reads == sorted(reads)
    assert reads[-1] > 0
    assert [e.elapsed for e in events[: stages.index("done") + 1]] == sorted(
        e.elapsed for e in events[: stages.index("done") + 1]
    )
