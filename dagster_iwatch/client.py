"""The HTTP client for Inverse Watch (and any Redash server): one method per endpoint.

This module never imports Dagster. Sending, retries and errors live in :mod:`dagster_iwatch._transport`, the
wire shapes in :mod:`dagster_iwatch._wire`, and running a query to its result in
:mod:`dagster_iwatch.run_handler`; every error raised is an :class:`~dagster_iwatch.errors.IWatchError`.

Example:
    >>> import os
    >>> from dagster_iwatch.client import IWatchClient
    >>> with IWatchClient("https://app.inverse.watch", api_key=os.environ["IWATCH_API_KEY"]) as client:
    ...     result = client.execute(5, {"period": ("2024-01-01", "2024-01-31")}, max_age=3600)
    ...     table = result.to_arrow()
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from dagster_iwatch import _wire
from dagster_iwatch._args import check_id, job_id_part, validate_base_url, validate_query_keys
from dagster_iwatch._config import ClientSettings, Timeout, TimeoutLike, is_int
from dagster_iwatch._dashboards import DashboardEndpoints
from dagster_iwatch._queries import QueryEndpoints
from dagster_iwatch._transport import Transport, check_key
from dagster_iwatch.errors import AuthError, ConfigError, NotFoundError
from dagster_iwatch.run_handler import RunHandler, RunProgress
from dagster_iwatch.types import Job, Query, QueryResult

if TYPE_CHECKING:
    from dagster_iwatch.ingest import BatchObserver

__all__ = ["IWatchClient"]

_LOGGER = logging.getLogger("dagster_iwatch.client")

_DOWNLOAD_FORMATS = ("csv", "json", "tsv", "xlsx")


class IWatchClient(QueryEndpoints, DashboardEndpoints):
    """A client for the Inverse Watch (Redash) REST API.

    Either kind of key works as ``api_key``: a user key can make every call its user may; a query key can read
    and run its own query (runs poll and read back through the query's own routes, which accept both kinds).

    Args:
        base_url: The server's URL, e.g. ``https://app.inverse.watch`` (a path prefix is kept).
        api_key: A user API key, or a query API key; surrounding whitespace (a file's newline) is stripped.
        query_api_keys: Query API keys by query id (an int or a string of digits); used for that query's
            calls instead of ``api_key``.
        timeout: Seconds to connect and to wait for each read, as one number, ``(connect, read)`` or a
            :class:`~dagster_iwatch._config.Timeout`.
        job_timeout: Default deadline, in seconds, of a whole :meth:`execute` (submit, polls, read-back).
        poll_interval: When to poll a job first, in seconds after it started; the waits then double up to
            ``max_poll_interval`` and polls fall on its multiples, denser around the query's last known runtime
            (see :mod:`dagster_iwatch.poll`).
        max_poll_interval: Longest wait between job polls, in seconds.
        max_retries: Retries of reads (GET, DELETE) after connection errors, cut-off bodies and HTTP
            429/500/502/503/504; a query run (POST) is retried only when it never reached the server.
        backoff_factor: Base of the exponential backoff between retries, in seconds (jitter added).
        verify: Verify TLS certificates (``True``), not at all (``False``, warned once), or against this CA
            bundle path. It applies whatever ``REQUESTS_CA_BUNDLE`` says.
        max_result_bytes: Refuse result bodies larger than this many bytes; ``None`` for no limit.
        pool_size: Connections kept open to the server; at least the number of threads sharing the client.
        public_url: The instance's address for people (links in metadata and messages) when it differs from
            ``base_url``, e.g. behind an internal proxy; ``base_url`` by default.
        logger: Where progress goes; ``dagster_iwatch.client`` by default. Keys are never logged.

    Raises:
        ConfigError: An argument is invalid (a key is never echoed).

    Example:
        >>> client = IWatchClient("http://127.0.0.1:5055", api_key="...")
        >>> [q.name for q in client.list_queries(tags=["prices"])]
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        query_api_keys: Mapping[int, str] | Mapping[str, str] | None = None,
        timeout: TimeoutLike = (10.0, 60.0),
        job_timeout: float = 1800.0,
        poll_interval: float = 0.005,
        max_poll_interval: float = 1.0,
        max_retries: int = 3,
        backoff_factor: float = 0.5,
        verify: bool | str = True,
        max_result_bytes: int | None = None,
        pool_size: int = 32,
        public_url: str | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self._base_url = validate_base_url(base_url)
        self._public_url = self._base_url if public_url is None else validate_base_url(public_url, "public_url")
        self._api_key = check_key("api_key", api_key)
        self._query_keys = validate_query_keys(query_api_keys)
        self._user_key_queries: set[int] = set()
        self.settings = ClientSettings(
            timeout=Timeout.parse(timeout),
            job_timeout=job_timeout,
            poll_interval=poll_interval,
            max_poll_interval=max_poll_interval,
            max_retries=max_retries,
            backoff_factor=backoff_factor,
            max_result_bytes=max_result_bytes,
            pool_size=pool_size,
        )
        self.logger = logger or _LOGGER
        secrets = tuple(k for k in (self._api_key, *self._query_keys.values()) if k)
        self._transport = Transport(self._base_url, secrets, self.settings, verify, self.logger)

    @property
    def base_url(self) -> str:
        """The server's base URL, without a trailing slash."""
        return self._base_url

    def __repr__(self) -> str:
        return f"IWatchClient(base_url={self._base_url!r})"

    def close(self) -> None:
        """Close the connection pool."""
        self._transport.close()

    def __enter__(self) -> IWatchClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def redact(self, text: str | None) -> str:
        """``text`` with every key this client holds (and anything shaped like a key) replaced by ``***``."""
        return self._transport.redact(text)

    def query_url(self, query_id: int) -> str:
        """The query's page in the web app (for links in metadata).

        Args:
            query_id: The saved query's id.

        Returns:
            ``<public_url>/queries/<id>`` (``public_url`` is ``base_url`` unless set).
        """
        return f"{self._public_url}/queries/{check_id(query_id, 'query_id')}"

    def get_cached_result(self, query_id: int) -> QueryResult:
        """Fetch a query's latest cached result without running it.

        Args:
            query_id: The query's id.

        Returns:
            The latest result.

        Raises:
            NotFoundError: No cached result (always so for parameterized queries on some servers).
            ResultTooLargeError: The body is over ``max_result_bytes``.
        """
        qid = check_id(query_id, "query_id")
        path = f"/api/queries/{qid}/results"
        body = self._transport.request("GET", path, self._for_query(qid), limit=self.settings.max_result_bytes)
        return _wire.parse_result(body, f"GET {path}")

    def execute(
        self,
        query_id: int,
        parameters: Mapping[str, Any] | None = None,
        *,
        max_age: int = 0,
        timeout: float | None = None,
        query: Query | None = None,
        progress: Callable[[RunProgress], None] | None = None,
    ) -> QueryResult:
        """Run a saved query (or take a cached result young enough) and return its result.

        Parameters are checked against the query's declaration before anything is sent. ``timeout`` is a
        deadline for the whole call: the query's definition, the run request, every poll and the read-back.
        If the wait ends any other way than with the job's end (deadline, Ctrl-C, run termination, a lost
        connection), the job is cancelled on the server before the error propagates, and the error says
        whether the server confirmed the cancel. See :mod:`dagster_iwatch.run_handler`.

        Args:
            query_id: The saved query's id.
            parameters: Parameter values as Python values (see :mod:`dagster_iwatch.parameters`).
            max_age: Accept a cached result at most this many seconds old; 0 always runs the query.
            timeout: Deadline in seconds for the whole call; the client's ``job_timeout`` by default.
            query: The query definition if already fetched (saves a request).
            progress: Called with a :class:`~dagster_iwatch.run_handler.RunProgress` at each poll and as the
                result arrives, e.g. to draw a progress line.

        Returns:
            The result; ``job_id`` is set when a job ran, ``None`` when it came from the cache.

        Raises:
            ConfigError: A bad argument, or no key that may run this query (nothing was sent).
            ParameterError: A parameter value is invalid (nothing was sent).
            AuthError: The key was refused.
            APIError: The server refused the run (e.g. HTTP 400 for values it finds incompatible).
            TransportError: The server could not be reached.
            QueryExecutionError: The query failed on the server.
            JobCancelledError: The job was cancelled on the server.
            JobTimeoutError: The deadline passed (the job was cancelled, or the error says it may still run).
            ResultTooLargeError: The result is over ``max_result_bytes``.
        """
        handler = RunHandler(
            self, query_id, parameters, max_age=max_age, timeout=timeout, query=query, progress=progress
        )
        return handler.run()

    def execute_to_parquet(
        self,
        query_id: int,
        path: str | os.PathLike[str],
        parameters: Mapping[str, Any] | None = None,
        *,
        max_age: int = 0,
        timeout: float | None = None,
        query: Query | None = None,
        progress: Callable[[RunProgress], None] | None = None,
        compression: str = "zstd",
        compression_level: int | None = None,
        row_group_size: int | None = None,
        file_metadata: Callable[[QueryResult], Mapping[str, str]] | None = None,
        observer: BatchObserver | None = None,
    ) -> QueryResult:
        """Run a saved query as :meth:`execute` does and write its rows to a Parquet file as they arrive.

        The rows go from the HTTP answer to row groups piece by piece, so memory stays bounded whatever the
        result's size, and parsing overlaps the download. The file equals ``pq.write_table`` of
        ``execute(...).to_arrow()``; it is written to a temporary file beside ``path`` and renamed over it
        once complete, so ``path`` holds the previous file or the new one, never a part.

        Args:
            query_id: The saved query's id.
            path: The Parquet file to write (its folder must exist).
            parameters: Parameter values, as for :meth:`execute`.
            max_age: As for :meth:`execute`.
            timeout: As for :meth:`execute`.
            query: As for :meth:`execute`.
            progress: As for :meth:`execute`; the ``reading`` updates come from the thread that reads the body.
            compression: Parquet codec (``zstd``, ``snappy``, ``gzip``, ``brotli``, ``lz4`` or ``none``).
            compression_level: Codec level, or ``None`` for the codec's default.
            row_group_size: Rows per row group; ``None``: 65,536 (a few MB of data at a time).
            file_metadata: Given the result, key-value metadata to store in the file (provenance, say).
            observer: Told of each record batch written (see :class:`~dagster_iwatch.ingest.BatchObserver`).

        Returns:
            The result; its ``rows`` are counted (``row_count``), not kept in memory.

        Raises:
            As :meth:`execute`; ``OSError`` if the file cannot be written (the previous file is kept).
        """
        from dagster_iwatch.parquet_files import atomic_local_file
        from dagster_iwatch.result_parquet import ParquetTarget

        handler = RunHandler(
            self, query_id, parameters, max_age=max_age, timeout=timeout, query=query, progress=progress
        )
        with atomic_local_file(Path(path)) as sink:
            target = ParquetTarget(
                sink,
                os.fspath(path),
                compression=compression,
                compression_level=compression_level,
                row_group_size=row_group_size,
                file_metadata=file_metadata,
                observer=observer,
            )
            return handler.run_to_parquet(target)

    def run_query(self, query_id: int, values: Mapping[str, Any], *, max_age: int) -> QueryResult | Job:
        """Ask the server to run a query once: ``POST /api/queries/<id>/results``.

        This is one request and is never re-sent once it may have reached the server; :meth:`execute` is the
        whole run (validation, waiting, read-back, cancel).

        Args:
            query_id: The query's id.
            values: Parameter values as the API takes them (see ``parameters.serialize_parameters``).
            max_age: Accept a cached result at most this many seconds old; 0 always starts a job.

        Returns:
            A cached result young enough, or the job that runs the query.
        """
        qid = check_id(query_id, "query_id")
        if not is_int(max_age) or max_age < 0:
            raise ConfigError(f"max_age must be an integer number of seconds >= 0, got {max_age!r}")
        path = f"/api/queries/{qid}/results"
        body = self._transport.request(
            "POST",
            path,
            self._for_query(qid),
            json_body={"parameters": dict(values), "max_age": max_age},
            limit=self.settings.max_result_bytes,
        )
        return _wire.parse_run(body, f"POST {path}")

    def get_job(self, job_id: str, *, query_id: int | None = None) -> Job:
        """Fetch a job's status.

        Args:
            job_id: The job's id.
            query_id: The query it runs: the query's own job route is used, which accepts either kind of key.

        Returns:
            The job.
        """
        job = job_id_part(job_id)
        if query_id is None:
            path, credential = f"/api/jobs/{job}", self._user()
        else:
            qid = check_id(query_id, "query_id")
            path, credential = f"/api/queries/{qid}/jobs/{job}", self._for_query(qid)
        return _wire.parse_job(self._json("GET", path, credential), f"GET {path}")

    def cancel_job(self, job_id: str, *, query_id: int | None = None) -> None:
        """Ask the server to cancel a job (pending jobs never start; running ones are interrupted).

        Upstream Redash cancels only through ``/api/jobs/<id>`` with a user key; with ``query_id`` and only a
        query key, the query's own job route is tried too (servers that support it).

        Args:
            job_id: The job's id.
            query_id: The query it runs.

        Raises:
            APIError: The server refused the cancel (the job may still be running).
        """
        job = job_id_part(job_id)
        qid = None if query_id is None else check_id(query_id, "query_id")
        credential = self._user() if self._api_key is not None or qid is None else self._for_query(qid)
        try:
            self._json("DELETE", f"/api/jobs/{job}", credential)
        except (AuthError, NotFoundError):
            if qid is None or (qid not in self._query_keys and self._api_key is not None):
                raise
            # Upstream answers this route 500 whatever happens: one try, no retries on its error statuses.
            self._json("DELETE", f"/api/queries/{qid}/jobs/{job}", self._for_query(qid), idempotent=False)

    def get_query_result(self, result_id: int, *, query_id: int | None = None) -> QueryResult:
        """Fetch a result by id.

        Args:
            result_id: The result's id (a job's ``query_result_id``).
            query_id: The query it belongs to: the query's own result route is used, which accepts either
                kind of key (a query key only for results of the query run with its saved values).

        Returns:
            The result.

        Raises:
            NotFoundError: No such result, or a query key may not read it.
            ResultTooLargeError: The body is over ``max_result_bytes``.
        """
        path, credential = self._result_route(result_id, query_id, "json")
        body = self._transport.request("GET", path, credential, limit=self.settings.max_result_bytes)
        return _wire.parse_result(body, f"GET {path}")

    def stream_query_result(self, result_id: int, *, query_id: int | None = None) -> Iterator[bytes]:
        """A result's JSON body, chunk by chunk as it arrives (the request is sent when iteration starts).

        Args:
            result_id: The result's id.
            query_id: The query it belongs to, as for :meth:`get_query_result`.

        Returns:
            The body's bytes, in order; :func:`dagster_iwatch.ingest.write_result_parquet` reads them.

        Raises:
            As :meth:`get_query_result`, while iterating; a connection lost mid-body is a ``TransportError``.
        """
        path, credential = self._result_route(result_id, query_id, "json")
        return self._transport.stream("GET", path, credential, limit=self.settings.max_result_bytes)

    def download_query_result(
        self, result_id: int, format: Literal["csv", "json", "tsv", "xlsx"] = "csv", *, query_id: int | None = None
    ) -> bytes:
        """Download a result as a file's bytes.

        Args:
            result_id: The result's id.
            format: ``csv``, ``json``, ``tsv`` or ``xlsx``.
            query_id: The query it belongs to: the query's own result route is used.

        Returns:
            The file's content.
        """
        if format not in _DOWNLOAD_FORMATS:
            raise ConfigError(f"format must be one of {', '.join(_DOWNLOAD_FORMATS)}, got {format!r}")
        path, credential = self._result_route(result_id, query_id, format)
        return self._transport.request("GET", path, credential, limit=self.settings.max_result_bytes)
