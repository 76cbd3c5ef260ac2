"""One query run, from request to result: submit, wait, read back, cancel, all within one deadline.

:meth:`IWatchClient.execute <dagster_iwatch.client.IWatchClient.execute>` hands each run to a
:class:`RunHandler`. The run polls and reads back through the query's own routes
(``/api/queries/<id>/jobs/<job>`` and ``/api/queries/<id>/results/<result>.json``), which accept a user key
and a query key alike, so either kind of key works as ``api_key``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal

from dagster_iwatch import _wire
from dagster_iwatch._args import check_id
from dagster_iwatch._config import is_int, positive_seconds
from dagster_iwatch._transport import deadline_scope, read_progress_scope
from dagster_iwatch.errors import (
    ConfigError,
    IWatchError,
    JobCancelledError,
    JobTimeoutError,
    NotFoundError,
    ProtocolError,
    QueryExecutionError,
    TransportError,
)
from dagster_iwatch.parameters import serialize_parameters
from dagster_iwatch.poll import poll_times
from dagster_iwatch.types import Job, JobStatus, Query, QueryResult

if TYPE_CHECKING:
    from dagster_iwatch.client import IWatchClient
    from dagster_iwatch.result_parquet import ParquetTarget

__all__ = ["CANCEL_BUDGET_SECONDS", "READ_BACK_MARGIN_SECONDS", "RunHandler", "RunProgress"]

#: Seconds a cancel may take once the run is given up, on top of the run's own deadline.
CANCEL_BUDGET_SECONDS = 10.0
#: Extra age accepted when reading a finished run's result back from the server's cache (see
#: :meth:`RunHandler.read_back_from_cache`): covers clock skew between us and the server.
READ_BACK_MARGIN_SECONDS = 60


@dataclasses.dataclass(frozen=True)
class RunProgress:
    """Where a run stands, as passed to ``execute(progress=...)``.

    Attributes:
        query_id: The saved query's id.
        stage: ``"waiting"`` for the job, ``"reading"`` its result, or ``"done"``.
        elapsed: Seconds since the run began.
        job_id: The job, once the server started one.
        job_status: The job's latest status.
        bytes_read: Bytes of the result body read so far.
        rows: The result's row count, once ``done``.
        from_cache: Whether the server answered from its cache.
    """

    query_id: int
    stage: Literal["waiting", "reading", "done"]
    elapsed: float
    job_id: str | None = None
    job_status: JobStatus | None = None
    bytes_read: int = 0
    rows: int | None = None
    from_cache: bool = False


class RunHandler:
    """Runs one saved query to its result within a deadline, and cancels the job if the run is given up.

    Args:
        client: The client whose endpoints it calls.
        query_id: The saved query's id.
        parameters: Parameter values as Python values.
        max_age: Accept a cached result at most this many seconds old; 0 always runs the query.
        timeout: Deadline in seconds for the whole run; the client's ``job_timeout`` by default.
        query: The query definition if already fetched.
        progress: Called with a :class:`RunProgress` at each step (on the calling thread).
    """

    def __init__(
        self,
        client: IWatchClient,
        query_id: int,
        parameters: Mapping[str, Any] | None = None,
        *,
        max_age: int = 0,
        timeout: float | None = None,
        query: Query | None = None,
        progress: Callable[[RunProgress], None] | None = None,
    ) -> None:
        self._client = client
        self._progress = progress
        self._started = time.monotonic()
        self._logger = client.logger
        self.query_id = check_id(query_id, "query_id")
        if not is_int(max_age) or max_age < 0:
            raise ConfigError(f"max_age must be an integer number of seconds >= 0, got {max_age!r}")
        if query is not None and query.id != self.query_id:
            raise ConfigError(f"execute: query {query.id} was given for query_id {self.query_id}")
        self.max_age = max_age
        self.timeout = client.settings.job_timeout if timeout is None else positive_seconds("timeout", timeout)
        self._parameters = parameters
        self._query = query

    def run(self) -> QueryResult:
        """Submit the run, wait for its job and read its result.

        Raises:
            JobTimeoutError: The deadline passed; the job was cancelled, or the error says it may still run.
            (and every error of :meth:`IWatchClient.execute <dagster_iwatch.client.IWatchClient.execute>`)
        """
        return self._run(None)

    def run_to_parquet(self, target: ParquetTarget) -> QueryResult:
        """Submit the run, wait for its job and write its rows to ``target`` as the result arrives.

        Returns:
            The result; its rows are counted, not kept (:class:`~dagster_iwatch.types.WrittenRows`).

        Raises:
            As :meth:`run`.
        """
        return self._run(target)

    def _run(self, target: ParquetTarget | None) -> QueryResult:
        self._started = time.monotonic()
        deadline = self._started + self.timeout
        with deadline_scope(deadline):
            with self._timed(deadline):
                query = self._query or self._client.get_query(self.query_id)
            values = serialize_parameters(query, self._parameters)
            if not query.is_safe:
                # A query key may not run text parameters: the whole run (polls, result, cancel) uses api_key.
                self._client.use_user_key_for(self.query_id)
            with self._timed(deadline):
                answer = self._client.run_query(self.query_id, values, max_age=self.max_age)
            if isinstance(answer, QueryResult):
                self._logger.info("Query %s: served from cache (max_age=%ss)", self.query_id, self.max_age)
                self._report("done", rows=answer.row_count, from_cache=True)
                cached = dataclasses.replace(self._provenance(answer, query, None), parameters=values)
                return cached if target is None else target.write_result(cached)
            job = self._wait(answer, deadline, query.runtime)
            with (
                self._timed(deadline, job.id),
                read_progress_scope(lambda size: self._report("reading", job, bytes_read=size)),
            ):
                if target is None:
                    result = dataclasses.replace(self._read(job, query, values), job_id=job.id, parameters=values)
                else:
                    result = self._write(job, query, values, target)
        self._report("done", job, rows=result.row_count)
        return result

    @contextlib.contextmanager
    def _timed(self, deadline: float, finished_job: str | None = None) -> Iterator[None]:
        """Turn an error raised after the deadline into :class:`JobTimeoutError` (nothing left to cancel)."""
        try:
            yield
        except IWatchError:
            self._raise_if_expired(deadline, finished_job, cancel=False)
            raise

    def _report(self, stage: Literal["waiting", "reading", "done"], job: Job | None = None, **fields: Any) -> None:
        if self._progress is not None:
            elapsed = time.monotonic() - self._started
            job_id, status = (job.id, job.status) if job is not None else (None, None)
            self._progress(RunProgress(self.query_id, stage, elapsed, job_id, status, **fields))

    def _wait(self, job: Job, deadline: float, expected_runtime: float | None) -> Job:
        """Poll a job until it finishes (on :func:`~dagster_iwatch.poll.poll_times`); cancel it otherwise."""
        job_id = job.id
        started = time.monotonic()
        settings = self._client.settings
        times = poll_times(expected_runtime, first=settings.poll_interval, cap=settings.max_poll_interval)
        try:
            self._logger.info("Query %s: job %s queued (status %s)", self.query_id, job_id, job.status.name)
            self._report("waiting", job)
            while not job.is_finished:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._raise_if_expired(deadline, job_id, cancel=True)
                # Times from the start, not waits after each answer: slow answers do not push the schedule back.
                time.sleep(max(0.0, min(started + next(times) - time.monotonic(), remaining)))
                previous = job.status
                try:
                    job = self._client.get_job(job_id, query_id=self.query_id)
                except IWatchError:
                    self._raise_if_expired(deadline, job_id, cancel=True)
                    raise
                self._report("waiting", job)
                if job.status != previous:
                    elapsed = time.monotonic() - started
                    self._logger.info(
                        "Query %s: job %s %s after %.1fs", self.query_id, job_id, job.status.name, elapsed
                    )
        except JobTimeoutError:
            raise
        except BaseException as interruption:
            # Ctrl-C, a run's termination or a failed poll: whoever catches it learns what became of the job.
            fate = "was cancelled" if self.cancel(job_id) else "could not be cancelled and may still be running"
            interruption.add_note(f"Query {self.query_id}: job {job_id} {fate} on the server")
            raise
        if job.is_cancelled:
            raise JobCancelledError(self.query_id, job_id, self._client.redact(job.error))
        if job.status == JobStatus.FAILURE:
            raise QueryExecutionError(self.query_id, job_id, self._client.redact(job.error))
        if job.query_result_id is None:
            raise ProtocolError(f"Query {self.query_id}: job {job_id} succeeded without a query_result_id")
        return dataclasses.replace(job, id=job_id)

    def _read(self, job: Job, query: Query, values: Mapping[str, Any]) -> QueryResult:
        result_id = job.query_result_id
        assert result_id is not None
        try:
            result = self._client.get_query_result(result_id, query_id=self.query_id)
        except NotFoundError:
            # Upstream Redash gives a query key only results of the query run with its saved values.
            result = self.read_back_from_cache(values, self._started)
        return self._provenance(result, query, result_id)

    def _write(self, job: Job, query: Query, values: Mapping[str, Any], target: ParquetTarget) -> QueryResult:
        result_id = job.query_result_id
        assert result_id is not None
        call = f"GET /api/queries/{self.query_id}/results/{result_id}.json"

        def body() -> Iterator[bytes]:
            return self._client.stream_query_result(result_id, query_id=self.query_id)

        def finish(envelope: Any, rows: int) -> QueryResult:
            result = _wire.written_result(envelope, call, rows, target.where)
            return dataclasses.replace(self._provenance(result, query, result_id), job_id=job.id, parameters=values)

        origin = target.sink.tell()
        retries = self._client.settings.max_retries
        while True:
            try:
                return target.write_body(body(), body, finish)
            except NotFoundError:
                break
            except TransportError:
                # A body cut off mid-way: a result is immutable, so it is read again from its start.
                if retries <= 0:
                    raise
                retries -= 1
                self._logger.info("Query %s: the result's body was cut off; reading it again", self.query_id)
            target.restart(origin)
        # Upstream Redash gives a query key only results of the query run with its saved values; the
        # refusal comes before any row, so nothing was written.
        target.restart(origin)
        result = self._provenance(self.read_back_from_cache(values, self._started), query, result_id)
        return target.write_result(dataclasses.replace(result, job_id=job.id, parameters=values))

    def read_back_from_cache(self, values: Mapping[str, Any], started: float) -> QueryResult:
        """Read a finished run's result through the run request, from the cache that run just filled.

        Upstream Redash refuses a query key the result of a run with values other than the query's saved
        defaults, but answers the same run request from its cache when ``max_age`` covers the run: this asks
        for a result no older than the run plus :data:`READ_BACK_MARGIN_SECONDS`. It is a cache read, not a
        second run; should the server start a job anyway, that job is cancelled and an error raised.

        Args:
            values: The parameter values the run was made with, as sent.
            started: ``time.monotonic()`` when the run began.

        Raises:
            NotFoundError: The server holds no such result in its cache any more.
        """
        max_age = math.ceil(time.monotonic() - started) + READ_BACK_MARGIN_SECONDS
        answer = self._client.run_query(self.query_id, values, max_age=max_age)
        if isinstance(answer, QueryResult):
            return answer
        confirmed = self.cancel(answer.id)
        raise NotFoundError(
            404,
            "POST",
            f"/api/queries/{self.query_id}/results",
            "The finished run's result is neither readable by id with this key nor in the server's cache; "
            f"a new job started and {'was cancelled' if confirmed else 'could not be cancelled'}",
        )

    def _provenance(self, result: QueryResult, query: Query, result_id: int | None) -> QueryResult:
        """Fill what a query key's answer leaves out (result id, hash) from what the run knows."""
        if result.id is None and result_id is not None:
            result = dataclasses.replace(result, id=result_id)
        if result.query_hash is None and not query.parameters and query.query_hash:
            # Without parameters the run's text is the saved text, so its hash is the query's own.
            result = dataclasses.replace(result, query_hash=query.query_hash)
        return result

    def _raise_if_expired(self, deadline: float, job_id: str | None, *, cancel: bool) -> None:
        """Raise :class:`JobTimeoutError` (after cancelling the job) if the deadline has passed."""
        if time.monotonic() < deadline:
            return
        confirmed = False
        if cancel and job_id is not None:
            self._logger.warning(
                "Query %s: job %s still running after %.1fs; cancelling it", self.query_id, job_id, self.timeout
            )
            confirmed = self.cancel(job_id)
        raise JobTimeoutError(self.query_id, job_id, self.timeout, cancel_confirmed=confirmed, finished=not cancel)

    def cancel(self, job_id: str) -> bool:
        """Ask the server to cancel the job, within its own short budget; never raises.

        Returns:
            Whether the server acknowledged the cancel. When not, the job may still be running.
        """
        try:
            with deadline_scope(time.monotonic() + CANCEL_BUDGET_SECONDS, override=True):
                self._client.cancel_job(job_id, query_id=self.query_id)
        except Exception as error:
            self._logger.warning(
                "Query %s: could not cancel job %s; it may still be running on the server: %s",
                self.query_id,
                job_id,
                self._client.redact(str(error)),
            )
            return False
        self._logger.info("Query %s: job %s cancelled", self.query_id, job_id)
        return True
