"""Query jobs: a queue, worker threads that run SQL on the data source, and cancellation."""

from __future__ import annotations

import json
import queue
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dagster_iwatch.local import datasource
from dagster_iwatch.local.store import Store

PENDING, STARTED, SUCCESS, FAILURE, CANCELLED = 1, 2, 3, 4, 5
CANCEL_MESSAGE = "Query cancelled by user."
INJECTED_FAILURE = "Injected fault: the query failed on the server."
JOB_FAULTS = ("hang", "fail")


def iso_now() -> str:
    """Return the current UTC time as ISO-8601 with milliseconds and ``Z``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class JobState:
    """One execution of one SQL text, as the server tracks it."""

    id: str
    query_text: str
    query_hash: str
    data_source_id: int
    query_id: int | None
    status: int = PENDING
    error: str = ""
    result_id: int | None = None
    started_at: str | None = None
    finished_at: float | None = None
    fault: str | None = None
    cancel: threading.Event = field(default_factory=threading.Event)

    def to_json(self) -> dict[str, Any]:
        """Return the job as Redash serializes it (``updated_at`` is 0 except while started)."""
        # Read without the executor's lock: the status is read once and written last, so a finished status
        # always comes with its result id and error.
        status = self.status
        return {
            "id": self.id,
            "updated_at": self.started_at if status == STARTED and self.started_at else 0,
            "status": status,
            "error": self.error,
            "result": self.result_id,
            "query_result_id": self.result_id,
        }


class Executor:
    """Runs jobs on `workers` threads, each with its own connection to the data source.

    Finished jobs are forgotten `job_ttl` seconds after they end, as Redash's expire after about 10 minutes.
    """

    def __init__(
        self, data_path: Path, store: Store, *, workers: int, cancelled_status: int, job_ttl: float = 600.0
    ) -> None:
        self._data_path = data_path
        self._store = store
        self._cancelled_status = cancelled_status
        self._job_ttl = job_ttl
        self._lock = threading.Lock()
        self._jobs: dict[str, JobState] = {}
        self._running: dict[tuple[int, str], str] = {}
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._stopping = threading.Event()
        self._conns: dict[str, sqlite3.Connection] = {}
        self._threads = [
            threading.Thread(target=self._work, name=f"iwatch-local-worker-{i}", daemon=True)
            for i in range(max(1, workers))
        ]
        for t in self._threads:
            t.start()

    def submit(
        self, query_text: str, query_hash: str, data_source_id: int, query_id: int | None, fault: str | None = None
    ) -> dict[str, Any]:
        """Queue a job for this SQL, or take the one already pending or running for it; return it as JSON.

        A new job is serialized before a worker can see it, so that its creator sees it pending, as on Redash.
        An injected `fault` makes a new job ``"hang"`` (started, never finishing until cancelled) or ``"fail"``.
        """
        with self._lock:
            self._forget_expired_locked()
            key = (data_source_id, query_hash)
            existing = self._running.get(key)
            if existing is not None:
                return self._jobs[existing].to_json()
            job = JobState(str(uuid.uuid4()), query_text, query_hash, data_source_id, query_id, fault=fault)
            self._jobs[job.id] = job
            self._running[key] = job.id
            answer = job.to_json()
            if fault == "hang":
                # Never queued: it holds no worker, and only a cancel (or stop) ends it.
                job.status = STARTED
                job.started_at = iso_now()[:-1]
                return answer
        self._queue.put(job.id)
        return answer

    def get(self, job_id: str) -> JobState | None:
        """Return a job by id, or None."""
        with self._lock:
            return self._jobs.get(job_id)

    def cancel(self, job_id: str) -> bool:
        """Cancel a pending or running job; return False when the job is unknown."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return False
            if job.status in (PENDING, STARTED):
                self._finish_locked(job, self._cancelled_status, CANCEL_MESSAGE)
            job.cancel.set()
            conn = self._conns.get(job_id)
            if conn is not None:
                # Under the lock: the worker drops the connection from the map before its next job.
                conn.interrupt()
        return True

    def stop(self) -> None:
        """Cancel every unfinished job and join the worker threads."""
        self._stopping.set()
        with self._lock:
            unfinished = [j.id for j in self._jobs.values() if j.status in (PENDING, STARTED)]
        for job_id in unfinished:
            self.cancel(job_id)
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            t.join(timeout=10)

    def _forget_expired_locked(self) -> None:
        horizon = time.monotonic() - self._job_ttl
        expired = [j.id for j in self._jobs.values() if j.finished_at is not None and j.finished_at < horizon]
        for job_id in expired:
            del self._jobs[job_id]

    def _finish_locked(self, job: JobState, status: int, error: str = "", result_id: int | None = None) -> None:
        job.error = error
        job.result_id = result_id
        job.status = status
        job.finished_at = time.monotonic()
        key = (job.data_source_id, job.query_hash)
        if self._running.get(key) == job.id:
            del self._running[key]

    def _work(self) -> None:
        local = threading.local()
        local.event = None
        conn = datasource.connect(self._data_path, lambda: local.event)
        try:
            while True:
                job_id = self._queue.get()
                if job_id is None or self._stopping.is_set():
                    return
                with self._lock:
                    job = self._jobs.get(job_id)
                    # A job cancelled while pending may even have expired by now.
                    if job is None or job.status != PENDING:
                        continue
                    job.status = STARTED
                    job.started_at = iso_now()[:-1]
                    self._conns[job_id] = conn
                local.event = job.cancel
                try:
                    self._run(conn, job)
                finally:
                    local.event = None
                    with self._lock:
                        self._conns.pop(job_id, None)
        finally:
            conn.close()

    def _run(self, conn: sqlite3.Connection, job: JobState) -> None:
        started = time.perf_counter()
        if job.fault == "fail":
            with self._lock:
                if job.status == STARTED:
                    self._finish_locked(job, FAILURE, INJECTED_FAILURE)
            return
        try:
            decl = datasource.declared_types(conn)
            data = datasource.run_sql(conn, job.query_text, decl)
        except Exception as exc:  # every database error becomes the job's error text
            with self._lock:
                if job.status == STARTED:
                    self._finish_locked(job, FAILURE, str(exc))
            return
        runtime = time.perf_counter() - started
        if job.cancel.is_set():
            return
        result_id = self._store.add_result(
            query_id=job.query_id,
            data_source_id=job.data_source_id,
            query_hash=job.query_hash,
            query=job.query_text,
            data_json=json.dumps(data, separators=(",", ":")),
            runtime=runtime,
            retrieved_at=iso_now(),
            retrieved_ts=time.time(),
        )
        with self._lock:
            if job.status == STARTED:
                self._finish_locked(job, SUCCESS, result_id=result_id)
