"""The HTTP client for Inverse Watch (and any Redash server): queries, jobs, results and dashboards.

This module never imports Dagster. One :class:`IWatchClient` holds one ``requests`` session; every error
it raises is an :class:`~dagster_iwatch.errors.IWatchError`.

Example:
    >>> import os
    >>> from dagster_iwatch.client import IWatchClient
    >>> with IWatchClient("https://app.inverse.watch", api_key=os.environ["IWATCH_API_KEY"]) as client:
    ...     result = client.execute(5, {"period": ("2024-01-01", "2024-01-31")}, max_age=3600)
    ...     table = result.to_arrow()
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import msgspec
import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from dagster_iwatch.errors import (
    APIError,
    AuthError,
    ConfigError,
    ConflictError,
    IWatchError,
    JobCancelledError,
    JobTimeoutError,
    NotFoundError,
    ProtocolError,
    QueryExecutionError,
    RateLimitError,
    ResultTooLargeError,
    TransportError,
)
from dagster_iwatch.parameters import serialize_parameters
from dagster_iwatch.types import (
    Column,
    Dashboard,
    Job,
    JobStatus,
    MultiValuesOptions,
    Parameter,
    Query,
    QueryResult,
    Widget,
)
from dagster_iwatch.version import __version__

__all__ = ["IWatchClient"]

_LOGGER = logging.getLogger("dagster_iwatch.client")

_LOGIN_MESSAGE = "couldn't find resource. please login and try again."
_RETRY_STATUSES = (429, 502, 503, 504)
_IDEMPOTENT_METHODS = frozenset({"GET", "DELETE", "HEAD"})
_ERROR_BODY_LIMIT = 1 << 20
_READ_CHUNK = 1 << 16
_CANCEL_TIMEOUT = (2.0, 5.0)
_POLL_GROWTH = 1.5
_MAX_PAGE_SIZE = 250
_DOWNLOAD_FORMATS = ("csv", "json", "tsv", "xlsx")
_QUERY_FIELDS = frozenset(
    {"name", "query", "description", "data_source_id", "options", "parameters", "tags", "schedule", "is_draft"}
)
_DASHBOARD_FIELDS = frozenset({"name", "tags", "is_draft", "layout", "dashboard_filters_enabled", "options"})

Timeout = float | tuple[float, float]


# msgspec keeps integers beyond 64 bits exact, like the stdlib, and parses about twice as fast.
_DECODER = msgspec.json.Decoder()


def _loads(body: bytes) -> Any:
    """Parse a JSON body with msgspec, or the stdlib for what msgspec refuses."""
    try:
        return _DECODER.decode(body)
    except msgspec.DecodeError:
        # Bare NaN tokens (Redash before v9) or numbers beyond float range: the stdlib accepts those.
        return json.loads(body)


class _Retry(Retry):
    """urllib3's Retry with a cap on waits the server asks for, so one header cannot stall a run for hours."""

    RETRY_AFTER_CAP = 60.0

    def get_retry_after(self, response: Any) -> float | None:
        """The server's Retry-After in seconds, capped."""
        seconds = super().get_retry_after(response)
        return None if seconds is None else min(seconds, self.RETRY_AFTER_CAP)


class _KeyAuth(requests.auth.AuthBase):
    """Sends ``Authorization: Key <key>``; given as ``auth``, it keeps a ``.netrc`` entry from replacing the key."""

    def __init__(self, key: str) -> None:
        self._key = key

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Key {self._key}"
        return request


@dataclasses.dataclass(frozen=True)
class _Credential:
    """The key for one call; ``query_id`` is set when it is that query's own key."""

    key: str = dataclasses.field(repr=False)
    query_id: int | None
    hint: str


class IWatchClient:
    """A client for the Inverse Watch (Redash) REST API.

    Args:
        base_url: The server's URL, e.g. ``https://app.inverse.watch`` (a path prefix is kept).
        api_key: A user API key; needed for everything but calls about a query with its own key.
        query_api_keys: Query API keys by query id (an int or a string of digits); used for that query's
            calls instead of the user key.
        timeout: Seconds to connect and to wait for each read, as one number or ``(connect, read)``.
        job_timeout: Default seconds :meth:`execute` waits for a job before cancelling it.
        poll_interval: First wait between job polls, in seconds; it grows by half up to ``max_poll_interval``.
        max_poll_interval: Longest wait between job polls, in seconds.
        max_retries: Retries of failed connections, and of GET/DELETE answered 429/502/503/504.
        backoff_factor: Base of the exponential backoff between retries, in seconds (jitter added).
        verify: Verify TLS certificates (or a CA bundle path).
        max_result_bytes: Refuse result bodies larger than this many bytes; ``None`` for no limit.
        logger: Where progress goes; ``dagster_iwatch.client`` by default. Keys are never logged.

    Raises:
        ConfigError: An argument is invalid.

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
        timeout: Timeout = (10.0, 60.0),
        job_timeout: float = 1800.0,
        poll_interval: float = 0.2,
        max_poll_interval: float = 5.0,
        max_retries: int = 3,
        backoff_factor: float = 0.5,
        verify: bool | str = True,
        max_result_bytes: int | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self._base_url = _validate_base_url(base_url)
        if api_key is not None and not isinstance(api_key, str):
            raise ConfigError("api_key must be a string")
        self._api_key = api_key or None
        self._query_keys = _validate_query_keys(query_api_keys)
        self._timeout = _validate_timeout(timeout)
        self._job_timeout = _positive("job_timeout", job_timeout)
        self._poll_interval = _positive("poll_interval", poll_interval)
        self._max_poll_interval = _positive("max_poll_interval", max_poll_interval)
        if self._max_poll_interval < self._poll_interval:
            raise ConfigError("max_poll_interval must not be smaller than poll_interval")
        if not _is_int(max_retries) or max_retries < 0:
            raise ConfigError("max_retries must be an integer >= 0")
        backoff = float(backoff_factor) if _is_number(backoff_factor) else -1.0
        if not math.isfinite(backoff) or backoff < 0:
            raise ConfigError("backoff_factor must be a number >= 0")
        if max_result_bytes is not None and (not _is_int(max_result_bytes) or max_result_bytes <= 0):
            raise ConfigError("max_result_bytes must be a positive integer or None")
        self._max_result_bytes = max_result_bytes
        self._logger = logger or _LOGGER
        self._secrets = tuple(
            sorted({k for k in (self._api_key, *self._query_keys.values()) if k}, key=len, reverse=True)
        )
        retry = _Retry(
            total=max_retries,
            connect=max_retries,
            read=max_retries,
            status=max_retries,
            other=0,
            redirect=5,
            allowed_methods=_IDEMPOTENT_METHODS,
            status_forcelist=_RETRY_STATUSES,
            backoff_factor=backoff,
            backoff_jitter=backoff,
            backoff_max=30.0,
            respect_retry_after_header=True,
            raise_on_status=False,
        )
        user_agent = f"dagster-iwatch/{__version__} python-requests/{requests.__version__}"
        self._session = _make_session(retry, verify, user_agent)
        # Cancelling happens while a run is being torn down: one quick try, no backoff.
        self._cancel_session = _make_session(Retry(0, read=False, redirect=0), verify, user_agent)

    @property
    def base_url(self) -> str:
        """The server's base URL, without a trailing slash."""
        return self._base_url

    def __repr__(self) -> str:
        return f"IWatchClient(base_url={self._base_url!r})"

    def close(self) -> None:
        """Close the HTTP sessions."""
        self._session.close()
        self._cancel_session.close()

    def __enter__(self) -> IWatchClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def query_url(self, query_id: int) -> str:
        """The query's page in the web app (for links in metadata).

        Args:
            query_id: The saved query's id.

        Returns:
            ``<base_url>/queries/<id>``.
        """
        return f"{self._base_url}/queries/{_check_id(query_id, 'query_id')}"

    # Queries

    def list_queries(
        self,
        *,
        q: str | None = None,
        tags: Sequence[str] | None = None,
        page_size: int = 100,
        order: str | None = None,
    ) -> Iterator[Query]:
        """Iterate over saved queries, fetching pages as needed.

        Args:
            q: Full-text search.
            tags: Only queries with all of these tags.
            page_size: Queries per request (1-250).
            order: Sort order, e.g. ``"name"`` or ``"-created_at"``.

        Returns:
            A lazy iterator over every matching query, across all pages.

        Raises:
            ConfigError: No user API key, or a bad page size (before any request).
        """
        credential = self._user()
        params = _list_params(q, tags, page_size)
        if order:
            params["order"] = order
        return (_parse_query(item) for item in self._pages("/api/queries", params, credential))

    def get_query(self, query_id: int) -> Query:
        """Fetch a saved query.

        Args:
            query_id: The query's id.

        Returns:
            The query, with its declared parameters.

        Raises:
            NotFoundError: No such query.
            AuthError: The key cannot read it.
        """
        qid = _check_id(query_id, "query_id")
        return _parse_query(self._json("GET", f"/api/queries/{qid}", self._for_query(qid)))

    def create_query(
        self,
        *,
        name: str,
        query: str,
        data_source_id: int,
        description: str | None = None,
        parameters: Sequence[Parameter | Mapping[str, Any]] | None = None,
        tags: Sequence[str] | None = None,
        schedule: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> Query:
        """Create a saved query (servers create it as a draft).

        Args:
            name: The query's name.
            query: Its SQL, with ``{{ name }}`` placeholders for parameters.
            data_source_id: The data source it runs on.
            description: Its description.
            parameters: Declared parameters, as :class:`Parameter` or Redash's JSON shape.
            tags: Its tags.
            schedule: Redash's schedule object.
            options: Other query options; ``parameters`` are stored in them as ``options.parameters``.

        Returns:
            The new query.
        """
        body: dict[str, Any] = {
            "name": name,
            "query": query,
            "data_source_id": _check_id(data_source_id, "data_source_id"),
            "description": description,
            "options": _options(options, parameters),
            "tags": list(tags or ()),
            "schedule": dict(schedule) if schedule is not None else None,
        }
        return _parse_query(self._json("POST", "/api/queries", self._user(), json_body=body))

    def update_query(self, query_id: int, **fields: Any) -> Query:
        """Edit a saved query.

        Pass ``version=query.version`` to make the edit fail with :class:`ConflictError` if someone changed
        the query since you read it. ``parameters`` replaces the declared parameters and keeps the query's
        other options.

        Args:
            query_id: The query's id.
            **fields: Any of name, query, description, data_source_id, options, parameters, tags, schedule,
                is_draft, version.

        Returns:
            The query as saved.

        Raises:
            ConfigError: An unknown field.
            ConflictError: ``version`` is stale.
        """
        qid = _check_id(query_id, "query_id")
        credential = self._user()
        version = fields.pop("version", None)
        unknown = set(fields) - _QUERY_FIELDS
        if unknown:
            raise ConfigError(f"update_query: unknown fields {sorted(unknown)}; allowed: {sorted(_QUERY_FIELDS)}")
        body = dict(fields)
        if "parameters" in body:
            parameters = body.pop("parameters")
            current = body.get("options")
            if current is None:
                saved = self._json("GET", f"/api/queries/{qid}", credential)
                current = saved.get("options") if isinstance(saved, Mapping) else None
            body["options"] = _options(current or {}, parameters)
        if version is not None:
            body["version"] = version
        return _parse_query(self._json("POST", f"/api/queries/{qid}", credential, json_body=body))

    def archive_query(self, query_id: int) -> None:
        """Archive a saved query (it can still be read).

        Args:
            query_id: The query's id.
        """
        qid = _check_id(query_id, "query_id")
        self._json("DELETE", f"/api/queries/{qid}", self._user())

    # Results and jobs

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
        qid = _check_id(query_id, "query_id")
        data = self._json("GET", f"/api/queries/{qid}/results", self._for_query(qid), limit=self._max_result_bytes)
        return _parse_result(data)

    def execute(
        self,
        query_id: int,
        parameters: Mapping[str, Any] | None = None,
        *,
        max_age: int = 0,
        timeout: float | None = None,
        query: Query | None = None,
    ) -> QueryResult:
        """Run a saved query (or take a cached result young enough) and return its result.

        Parameters are checked against the query's declaration before anything is sent. While waiting,
        the job is polled with a growing interval; if the wait is interrupted (timeout, Ctrl-C, run
        termination, a lost connection), the job is cancelled on the server before the error propagates.
        A query with text parameters runs with the user key even when it has a query key, which may not
        run it. With a query key, a result upstream Redash will not serve by id (one run with values other
        than the saved defaults) is read back from the cache that run just filled.

        Args:
            query_id: The saved query's id.
            parameters: Parameter values as Python values (see :mod:`dagster_iwatch.parameters`).
            max_age: Accept a cached result at most this many seconds old; 0 always runs the query.
            timeout: Seconds to wait for the job; the client's ``job_timeout`` by default.
            query: The query definition if already fetched (saves a request).

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
            JobTimeoutError: The job did not finish in time (it was cancelled).
            ResultTooLargeError: The result is over ``max_result_bytes``.
        """
        qid = _check_id(query_id, "query_id")
        if not _is_int(max_age) or max_age < 0:
            raise ConfigError("max_age must be an integer number of seconds >= 0")
        wait = self._job_timeout if timeout is None else _positive("timeout", timeout)
        credential = self._for_query(qid)
        if query is None:
            query = self.get_query(qid)
        elif query.id != qid:
            raise ConfigError(f"execute: query {query.id} was given for query_id {qid}")
        values = serialize_parameters(query, parameters)
        if credential.query_id is not None and not query.is_safe:
            # The server refuses a query key here, so the whole run (polls, result, cancel) uses the user key.
            if self._api_key is None:
                raise ConfigError(
                    f"Query {qid} has text parameters, which a query API key may not run; "
                    "use a user API key (api_key) for it"
                )
            credential = self._user()
        posted = time.monotonic()
        data = self._run(qid, values, max_age, credential)
        if isinstance(data, Mapping) and "query_result" in data:
            self._logger.info("Query %s: served from cache (max_age=%ss)", qid, max_age)
            return dataclasses.replace(_parse_result(data), parameters=values)
        job = _parse_job(data)
        route = qid if credential.query_id is not None else None
        finished = self._wait(qid, job, wait, route)
        result_id = finished.query_result_id
        if result_id is None:
            raise ProtocolError(f"Query {qid}: job {finished.id} succeeded without a query_result_id")
        try:
            result = self.get_query_result(result_id, query_id=route)
        except NotFoundError:
            if route is None:
                raise
            # Redash gives a query key only results whose hash matches the query run with its saved values;
            # a run with other values is read back from the cache it just filled.
            data = self._run(qid, values, math.ceil(time.monotonic() - posted) + 60, credential)
            if not (isinstance(data, Mapping) and "query_result" in data):
                self._cancel_quietly(qid, _parse_job(data).id, route)
                raise
            cached = _parse_result(data)
            result = cached if cached.id is not None else dataclasses.replace(cached, id=result_id)
        return dataclasses.replace(result, job_id=finished.id, parameters=values)

    def _run(self, query_id: int, values: Mapping[str, Any], max_age: int, credential: _Credential) -> Any:
        """POST the run request once: a result young enough, or a job."""
        body = {"parameters": values, "max_age": max_age}
        path = f"/api/queries/{query_id}/results"
        return self._json("POST", path, credential, json_body=body, limit=self._max_result_bytes)

    def get_job(self, job_id: str, *, query_id: int | None = None) -> Job:
        """Fetch a job's status.

        Args:
            job_id: The job's id.
            query_id: The query it runs; lets a query API key be used (through the query's job route).

        Returns:
            The job.
        """
        path, credential = self._job_route(job_id, query_id)
        return _parse_job(self._json("GET", path, credential))

    def cancel_job(self, job_id: str, *, query_id: int | None = None) -> None:
        """Ask the server to cancel a job (pending jobs never start; running ones are interrupted).

        Args:
            job_id: The job's id.
            query_id: The query it runs; lets a query API key be used.
        """
        path, credential = self._job_route(job_id, query_id)
        self._json("DELETE", path, credential)

    def get_query_result(self, result_id: int, *, query_id: int | None = None) -> QueryResult:
        """Fetch a result by id.

        Args:
            result_id: The result's id (a job's ``query_result_id``).
            query_id: The query it belongs to; lets a query API key be used.

        Returns:
            The result.

        Raises:
            ResultTooLargeError: The body is over ``max_result_bytes``.
        """
        path, credential = self._result_route(result_id, query_id, "json")
        return _parse_result(self._json("GET", path, credential, limit=self._max_result_bytes))

    def download_query_result(
        self, result_id: int, format: Literal["csv", "json", "tsv", "xlsx"] = "csv", *, query_id: int | None = None
    ) -> bytes:
        """Download a result as a file's bytes.

        Args:
            result_id: The result's id.
            format: ``csv``, ``json``, ``tsv`` or ``xlsx``.
            query_id: The query it belongs to; lets a query API key be used.

        Returns:
            The file's content.
        """
        if format not in _DOWNLOAD_FORMATS:
            raise ConfigError(f"format must be one of {', '.join(_DOWNLOAD_FORMATS)}")
        path, credential = self._result_route(result_id, query_id, format)
        return self._bytes("GET", path, credential, limit=self._max_result_bytes)

    # Dashboards

    def list_dashboards(
        self, *, q: str | None = None, tags: Sequence[str] | None = None, page_size: int = 100
    ) -> Iterator[Dashboard]:
        """Iterate over dashboards, fetching pages as needed (list entries carry no widgets).

        Args:
            q: Full-text search.
            tags: Only dashboards with all of these tags.
            page_size: Dashboards per request (1-250).

        Returns:
            A lazy iterator over every matching dashboard.
        """
        credential = self._user()
        params = _list_params(q, tags, page_size)
        return (_parse_dashboard(item) for item in self._pages("/api/dashboards", params, credential))

    def get_dashboard(self, slug_or_id: str | int) -> Dashboard:
        """Fetch a dashboard with its widgets, by slug or id, on either server flavor.

        Inverse Watch (like Redash up to v9) reads dashboards by slug; Redash v10+ by id, and by slug only
        with ``?legacy``. Both are tried as needed.

        Args:
            slug_or_id: The dashboard's slug (``str``) or id (``int``).

        Returns:
            The dashboard.

        Raises:
            NotFoundError: No such dashboard.
        """
        credential = self._user()
        if _is_int(slug_or_id):
            dashboard_id = _check_id(slug_or_id, "dashboard id")
            try:
                return _parse_dashboard(self._json("GET", f"/api/dashboards/{dashboard_id}", credential))
            except APIError as error:
                if not _flavor_miss(error):
                    raise
            slug = next((d.slug for d in self.list_dashboards(page_size=_MAX_PAGE_SIZE) if d.id == dashboard_id), None)
            if slug is None:
                raise NotFoundError(404, "GET", f"/api/dashboards/{dashboard_id}", "No dashboard with this id.")
            return self.get_dashboard(slug)
        path = f"/api/dashboards/{_slug(slug_or_id)}"
        try:
            return _parse_dashboard(self._json("GET", path, credential))
        except APIError as error:
            if not _flavor_miss(error):
                raise
        return _parse_dashboard(self._json("GET", path, credential, params={"legacy": ""}))

    def create_dashboard(self, name: str) -> Dashboard:
        """Create a dashboard (servers create it as a draft).

        Args:
            name: Its name; the server derives the slug.

        Returns:
            The new dashboard.
        """
        if not isinstance(name, str) or not name.strip():
            raise ConfigError("create_dashboard: name must be a non-empty string")
        return _parse_dashboard(self._json("POST", "/api/dashboards", self._user(), json_body={"name": name}))

    def update_dashboard(self, dashboard_id: int, **fields: Any) -> Dashboard:
        """Edit a dashboard.

        Args:
            dashboard_id: The dashboard's id.
            **fields: Any of name, tags, is_draft, layout, dashboard_filters_enabled, options, and
                ``version`` to fail with :class:`ConflictError` on a stale version.

        Returns:
            The dashboard as saved.
        """
        did = _check_id(dashboard_id, "dashboard_id")
        credential = self._user()
        version = fields.pop("version", None)
        unknown = set(fields) - _DASHBOARD_FIELDS
        if unknown:
            raise ConfigError(
                f"update_dashboard: unknown fields {sorted(unknown)}; allowed: {sorted(_DASHBOARD_FIELDS)}"
            )
        body = dict(fields)
        if "tags" in body:
            body["tags"] = list(body["tags"])
        if version is not None:
            body["version"] = version
        return _parse_dashboard(self._json("POST", f"/api/dashboards/{did}", credential, json_body=body))

    def archive_dashboard(self, slug_or_id: str | int) -> None:
        """Archive a dashboard, by slug or id, on either server flavor.

        Args:
            slug_or_id: The dashboard's slug (``str``) or id (``int``).
        """
        credential = self._user()
        first = str(_check_id(slug_or_id, "dashboard id")) if _is_int(slug_or_id) else _slug(slug_or_id)
        try:
            self._json("DELETE", f"/api/dashboards/{first}", credential)
            return
        except APIError as error:
            if not _flavor_miss(error):
                raise
        dashboard = self.get_dashboard(slug_or_id)
        other = _slug(dashboard.slug) if _is_int(slug_or_id) else str(dashboard.id)
        self._json("DELETE", f"/api/dashboards/{other}", credential)

    # Internals

    def _user(self) -> _Credential:
        if self._api_key is None:
            raise ConfigError("This call needs a user API key: pass api_key (e.g. from IWATCH_API_KEY)")
        return _Credential(self._api_key, None, "This call needs a user API key")

    def _for_query(self, query_id: int) -> _Credential:
        hint = f"This call needs the user key or query {query_id}'s API key"
        key = self._query_keys.get(query_id)
        if key:
            return _Credential(key, query_id, hint)
        if self._api_key is not None:
            return _Credential(self._api_key, None, hint)
        raise ConfigError(
            f"Query {query_id}: no API key for it: pass api_key (a user key) or query_api_keys[{query_id}]"
        )

    def _job_route(self, job_id: str, query_id: int | None) -> tuple[str, _Credential]:
        if not isinstance(job_id, str) or not job_id.strip():
            raise ConfigError("job_id must be a non-empty string")
        job = quote(job_id, safe="")
        if query_id is None:
            return f"/api/jobs/{job}", self._user()
        qid = _check_id(query_id, "query_id")
        credential = self._for_query(qid)
        if credential.query_id is not None:
            return f"/api/queries/{qid}/jobs/{job}", credential
        return f"/api/jobs/{job}", credential

    def _result_route(self, result_id: int, query_id: int | None, suffix: str) -> tuple[str, _Credential]:
        rid = _check_id(result_id, "result_id")
        credential = self._user() if query_id is None else self._for_query(_check_id(query_id, "query_id"))
        if credential.query_id is not None:
            return f"/api/queries/{credential.query_id}/results/{rid}.{suffix}", credential
        return f"/api/query_results/{rid}" + ("" if suffix == "json" else f".{suffix}"), credential

    def _wait(self, query_id: int, job: Job, timeout: float, route: int | None) -> Job:
        """Poll a job until it finishes; cancel it remotely if the wait ends any other way.

        ``route`` is the query id for the query-scoped job routes (a query key), ``None`` for the user key's.
        """
        job_id = job.id
        started = time.monotonic()
        deadline = started + timeout
        interval = self._poll_interval
        try:
            self._logger.info("Query %s: job %s queued (status %s)", query_id, job_id, job.status.name)
            while not job.is_finished:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._logger.warning(
                        "Query %s: job %s still %s after %.1fs; cancelling it",
                        query_id,
                        job_id,
                        job.status.name,
                        timeout,
                    )
                    self._cancel_quietly(query_id, job_id, route)
                    raise JobTimeoutError(query_id, job_id, timeout)
                time.sleep(min(interval, remaining))
                interval = min(interval * _POLL_GROWTH, self._max_poll_interval)
                previous = job.status
                job = self.get_job(job_id, query_id=route)
                if job.status != previous:
                    self._logger.info(
                        "Query %s: job %s %s after %.1fs", query_id, job_id, job.status.name, time.monotonic() - started
                    )
        except JobTimeoutError:
            raise
        except BaseException:
            self._cancel_quietly(query_id, job_id, route)
            raise
        if job.is_cancelled:
            raise JobCancelledError(query_id, job_id, self._redact(job.error))
        if job.status == JobStatus.FAILURE:
            raise QueryExecutionError(query_id, job_id, self._redact(job.error))
        return dataclasses.replace(job, id=job_id)

    def _cancel_quietly(self, query_id: int, job_id: str, route: int | None) -> None:
        """Best-effort cancel that never hides the error being raised."""
        try:
            path, credential = self._job_route(job_id, route)
            response = self._send("DELETE", path, credential, session=self._cancel_session, timeout=_CANCEL_TIMEOUT)
            self._read(response, "DELETE", path, limit=_ERROR_BODY_LIMIT)
            if response.status_code >= 400:
                self._logger.warning(
                    "Query %s: cancelling job %s returned HTTP %s", query_id, job_id, response.status_code
                )
            else:
                self._logger.info("Query %s: job %s cancelled", query_id, job_id)
        except Exception as error:
            self._logger.warning("Query %s: could not cancel job %s: %s", query_id, job_id, self._redact(str(error)))

    def _pages(self, path: str, params: dict[str, Any], credential: _Credential) -> Iterator[Mapping[str, Any]]:
        page = 1
        while True:
            data = self._json("GET", path, credential, params={**params, "page": page})
            if not isinstance(data, Mapping) or not isinstance(data.get("results"), list):
                raise ProtocolError(f"GET {path}: expected a page with 'results', got {type(data).__name__}")
            results = data["results"]
            yield from results
            count = data.get("count")
            size = data.get("page_size") or params["page_size"]
            if not results or not _is_int(count) or page * size >= count:
                return
            page += 1

    def _json(
        self,
        method: str,
        path: str,
        credential: _Credential,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        limit: int | None = None,
    ) -> Any:
        body = self._bytes(method, path, credential, params=params, json_body=json_body, limit=limit)
        try:
            return _loads(body) if body.strip() else None
        except ValueError:
            raise ProtocolError(f"{method} {path}: the answer is not JSON ({len(body)} bytes)") from None

    def _bytes(
        self,
        method: str,
        path: str,
        credential: _Credential,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        limit: int | None = None,
    ) -> bytes:
        response = self._send(method, path, credential, params=params, json_body=json_body)
        if response.status_code >= 400:
            self._raise_for_status(response, method, path, credential)
        return self._read(response, method, path, limit=limit)

    def _send(
        self,
        method: str,
        path: str,
        credential: _Credential,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        session: requests.Session | None = None,
        timeout: tuple[float, float] | None = None,
    ) -> requests.Response:
        try:
            return (session or self._session).request(
                method,
                self._base_url + path,
                params=params,
                json=json_body,
                auth=_KeyAuth(credential.key),
                timeout=timeout or self._timeout,
                stream=True,
            )
        except requests.RequestException as error:
            raise TransportError(
                f"{method} {path}: could not get an answer from {self._base_url}: "
                f"{type(error).__name__}: {self._redact(str(error))}"
            ) from None

    def _read(self, response: requests.Response, method: str, path: str, *, limit: int | None) -> bytes:
        """The body, read at once; stops at ``limit`` bytes without reading further."""
        try:
            declared = response.headers.get("Content-Length", "")
            encoded = response.headers.get("Content-Encoding", "identity") not in ("", "identity")
            if limit is not None and declared.isdigit() and not encoded and int(declared) > limit:
                raise ResultTooLargeError(limit, int(declared))
            chunks: list[bytes] = []
            size = 0
            while True:
                want = _READ_CHUNK if limit is None else min(_READ_CHUNK, limit + 1 - size)
                chunk = response.raw.read(want, decode_content=True)
                if not chunk:
                    break
                size += len(chunk)
                if limit is not None and size > limit:
                    raise ResultTooLargeError(limit)
                chunks.append(chunk)
            return b"".join(chunks)
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as error:
            raise TransportError(
                f"{method} {path}: the connection failed while reading the answer: {type(error).__name__}"
            ) from None
        finally:
            response.close()

    def _raise_for_status(self, response: requests.Response, method: str, path: str, credential: _Credential) -> None:
        status = response.status_code
        try:
            body = self._read(response, method, path, limit=_ERROR_BODY_LIMIT)
        except IWatchError:
            body = b""
        message = self._redact(_server_message(body))
        if (status == 404 and message.strip().lower() == _LOGIN_MESSAGE) or status in (401, 403):
            raise AuthError(status, method, path, message, hint=credential.hint)
        if status == 404:
            raise NotFoundError(status, method, path, message)
        if status == 409:
            raise ConflictError(status, method, path, message)
        if status == 429:
            raise RateLimitError(status, method, path, message, retry_after=_retry_after(response))
        raise APIError(status, method, path, message)

    def _redact(self, text: str | None) -> str:
        if not text:
            return ""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


# Validation


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _positive(name: str, value: Any) -> float:
    if not _is_number(value) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be a positive number of seconds")
    return float(value)


def _check_id(value: Any, name: str) -> int:
    if not _is_int(value) or value <= 0:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _slug(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"a dashboard slug must be a non-empty string, got {value!r}")
    return quote(value, safe="")


def _validate_base_url(base_url: Any) -> str:
    if not isinstance(base_url, str) or not base_url.strip():
        raise ConfigError("base_url must be a URL such as https://app.inverse.watch")
    parts = urlsplit(base_url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError("base_url must be an http:// or https:// URL with a host, such as https://app.inverse.watch")
    if parts.username or parts.password or parts.query or parts.fragment:
        # Never echo the URL here: what is wrong with it may be a credential.
        raise ConfigError("base_url must not carry credentials, a query string or a fragment; pass api_key instead")
    try:
        parts.port  # noqa: B018 - evaluating it validates the port
    except ValueError:
        raise ConfigError("base_url has an invalid port") from None
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def _validate_timeout(timeout: Any) -> tuple[float, float]:
    if _is_number(timeout):
        value = _positive("timeout", timeout)
        return (value, value)
    if isinstance(timeout, tuple | list) and len(timeout) == 2:
        return (_positive("connect timeout", timeout[0]), _positive("read timeout", timeout[1]))
    raise ConfigError("timeout must be a positive number or a (connect, read) pair of them")


def _validate_query_keys(keys: Mapping[Any, Any] | None) -> dict[int, str]:
    result: dict[int, str] = {}
    for raw_id, key in (keys or {}).items():
        if isinstance(raw_id, str) and raw_id.strip().isdigit():
            query_id = int(raw_id)
        elif _is_int(raw_id):
            query_id = raw_id
        else:
            # Never echo it: with the mapping written the wrong way round, it is a key.
            raise ConfigError("query_api_keys: one of its keys is not a query id; map query ids to API keys")
        if not isinstance(key, str) or not key:
            raise ConfigError(f"query_api_keys[{query_id}] must be a non-empty string")
        result[query_id] = key
    return result


def _make_session(retry: Retry, verify: bool | str, user_agent: str) -> requests.Session:
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.verify = verify
    session.headers["User-Agent"] = user_agent
    session.headers["Accept"] = "application/json"
    return session


def _list_params(q: str | None, tags: Sequence[str] | None, page_size: int) -> dict[str, Any]:
    if not _is_int(page_size) or not 1 <= page_size <= _MAX_PAGE_SIZE:
        raise ConfigError(f"page_size must be an integer from 1 to {_MAX_PAGE_SIZE}")
    if isinstance(tags, str):
        raise ConfigError("tags must be a list of strings, not one string")
    params: dict[str, Any] = {"page_size": page_size}
    if q:
        params["q"] = q
    if tags:
        params["tags"] = list(tags)
    return params


def _flavor_miss(error: APIError) -> bool:
    """Whether a dashboard lookup failed the way the other server flavor's route fails."""
    return not isinstance(error, AuthError) and (isinstance(error, NotFoundError) or error.status >= 500)


def _options(options: Mapping[str, Any] | None, parameters: Sequence[Any] | None) -> dict[str, Any]:
    merged = dict(options or {})
    if parameters is not None:
        merged["parameters"] = [_parameter_json(p) for p in parameters]
    merged.setdefault("parameters", [])
    return merged


def _parameter_json(parameter: Parameter | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(parameter, Mapping):
        return dict(parameter)
    if not isinstance(parameter, Parameter):
        raise ConfigError(f"parameters must be Parameter objects or mappings, got {type(parameter).__name__}")
    data: dict[str, Any] = {
        "name": parameter.name,
        "title": parameter.title or parameter.name,
        "type": parameter.type,
        "value": parameter.value,
    }
    if parameter.enum_options is not None:
        data["enumOptions"] = "\n".join(parameter.enum_options)
    if parameter.query_id is not None:
        data["queryId"] = parameter.query_id
    if parameter.multi_values is not None:
        data["multiValuesOptions"] = dataclasses.asdict(parameter.multi_values)
    return data


# Parsing


def _server_message(body: bytes) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return body[:200].decode("utf-8", "replace").strip()
    if isinstance(data, Mapping):
        message = data.get("message")
        if isinstance(message, str) and message:
            return message
        job = data.get("job")
        if isinstance(job, Mapping) and isinstance(job.get("error"), str):
            return str(job["error"])
    return ""


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return float(Retry().parse_retry_after(value))
    except (ValueError, urllib3.exceptions.HTTPError):
        return None


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _optional_int(value: Any) -> int | None:
    return value if _is_int(value) else None


def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _protocol(what: str, data: Any) -> ProtocolError:
    return ProtocolError(f"Unexpected {what} from the server: {type(data).__name__}")


def _parse_parameter(data: Any) -> Parameter:
    if not isinstance(data, Mapping) or not isinstance(data.get("name"), str):
        raise _protocol("parameter", data)
    kind = str(data.get("type") or "text")
    raw_options = data.get("enumOptions")
    enum_options: tuple[str, ...] | None = None
    if isinstance(raw_options, str):
        enum_options = tuple(line.strip() for line in raw_options.splitlines() if line.strip())
    elif isinstance(raw_options, list):
        enum_options = tuple(str(option) for option in raw_options)
    if kind != "enum" and not enum_options:
        enum_options = None
    multi = data.get("multiValuesOptions")
    multi_values = None
    if isinstance(multi, Mapping):
        multi_values = MultiValuesOptions(
            prefix=str(multi.get("prefix") or ""),
            suffix=str(multi.get("suffix") or ""),
            separator=str(multi.get("separator") or ","),
        )
    return Parameter(
        name=data["name"],
        type=kind,
        title=str(data.get("title") or ""),
        value=data.get("value"),
        enum_options=enum_options if kind == "enum" else None,
        query_id=_optional_int(data.get("queryId")),
        multi_values=multi_values,
    )


def _parse_query(data: Any) -> Query:
    if not isinstance(data, Mapping) or not _is_int(data.get("id")):
        raise _protocol("query", data)
    options = data.get("options")
    parameters = (options.get("parameters") if isinstance(options, Mapping) else None) or ()
    schedule = data.get("schedule")
    return Query(
        id=data["id"],
        name=str(data.get("name") or ""),
        query=str(data.get("query") or ""),
        description=data.get("description"),
        query_hash=data.get("query_hash"),
        data_source_id=_optional_int(data.get("data_source_id")),
        parameters=tuple(_parse_parameter(p) for p in parameters),
        tags=tuple(str(t) for t in data.get("tags") or ()),
        is_archived=bool(data.get("is_archived", False)),
        is_draft=bool(data.get("is_draft", False)),
        is_safe=bool(data.get("is_safe", True)),
        version=_optional_int(data.get("version")),
        latest_query_data_id=_optional_int(data.get("latest_query_data_id")),
        schedule=schedule if isinstance(schedule, Mapping) else None,
        created_at=_parse_time(data.get("created_at")),
        updated_at=_parse_time(data.get("updated_at")),
        api_key=data.get("api_key") if isinstance(data.get("api_key"), str) else None,
        raw=data,
    )


def _parse_job(data: Any) -> Job:
    job = data.get("job") if isinstance(data, Mapping) else None
    if not isinstance(job, Mapping) or not isinstance(job.get("id"), str) or not _is_int(job.get("status")):
        raise _protocol("job", data)
    try:
        status = JobStatus(job["status"])
    except ValueError:
        raise ProtocolError(f"Job {job['id']}: unknown status {job['status']!r}") from None
    return Job(
        id=job["id"],
        status=status,
        error=str(job.get("error") or ""),
        query_result_id=_optional_int(job.get("query_result_id")),
    )


def _parse_result(data: Any) -> QueryResult:
    result = data.get("query_result") if isinstance(data, Mapping) else None
    payload = result.get("data") if isinstance(result, Mapping) else None
    if not isinstance(result, Mapping) or not isinstance(payload, Mapping):
        raise _protocol("query result", data)
    columns = payload.get("columns")
    rows = payload.get("rows")
    if not isinstance(columns, list) or not isinstance(rows, list):
        raise _protocol("query result data", payload)
    if not all(isinstance(column, Mapping) and isinstance(column.get("name"), str) for column in columns):
        raise ProtocolError("Unexpected result columns from the server: each needs a name")
    if not all(isinstance(row, dict) for row in rows):
        raise ProtocolError("Unexpected result rows from the server: each row must be an object")
    runtime: Any = result.get("runtime")
    return QueryResult(
        id=_optional_int(result.get("id")),
        query_hash=result.get("query_hash"),
        query=result.get("query"),
        data_source_id=_optional_int(result.get("data_source_id")),
        runtime=float(runtime) if _is_number(runtime) else None,
        retrieved_at=_parse_time(result.get("retrieved_at")),
        columns=tuple(
            Column(name=c["name"], friendly_name=c.get("friendly_name"), type=c.get("type")) for c in columns
        ),
        rows=rows,
    )


def _parse_widget(data: Any) -> Widget:
    if not isinstance(data, Mapping) or not _is_int(data.get("id")):
        raise _protocol("widget", data)
    visualization = data.get("visualization")
    visualization_id = query_id = None
    visualization_name = visualization_type = query_name = None
    if isinstance(visualization, Mapping):
        visualization_id = _optional_int(visualization.get("id"))
        visualization_name = _optional_str(visualization.get("name"))
        visualization_type = _optional_str(visualization.get("type"))
        query = visualization.get("query")
        if isinstance(query, Mapping):
            query_id = _optional_int(query.get("id"))
            query_name = _optional_str(query.get("name"))
    options = data.get("options")
    return Widget(
        id=data["id"],
        visualization_id=visualization_id,
        query_id=query_id,
        text=str(data.get("text") or ""),
        options=options if isinstance(options, Mapping) else {},
        visualization_name=visualization_name,
        visualization_type=visualization_type,
        query_name=query_name,
    )


def _parse_dashboard(data: Any) -> Dashboard:
    if not isinstance(data, Mapping) or not _is_int(data.get("id")):
        raise _protocol("dashboard", data)
    return Dashboard(
        id=data["id"],
        slug=str(data.get("slug") or ""),
        name=str(data.get("name") or ""),
        tags=tuple(str(t) for t in data.get("tags") or ()),
        is_archived=bool(data.get("is_archived", False)),
        is_draft=bool(data.get("is_draft", False)),
        version=_optional_int(data.get("version")),
        widgets=tuple(_parse_widget(w) for w in data.get("widgets") or ()),
        created_at=_parse_time(data.get("created_at")),
        updated_at=_parse_time(data.get("updated_at")),
        raw=data,
    )
