"""One exception tree for everything that can go wrong talking to Inverse Watch.

Every error raised by the library is an :class:`IWatchError`. Messages never contain an API key: the
transport redacts every text that comes from the HTTP stack or the server before building an error.
Errors carry their facts as attributes with the same names across the tree (``query_id``, ``job_id``,
``status``, ``method``, ``path``, ``server_message``) and pickle with them, so that they survive Dagster's
process boundaries.
"""

from __future__ import annotations

from typing import Any


def _restore(cls: type[BaseException], args: tuple[Any, ...]) -> BaseException:
    """Recreate an error without calling its ``__init__`` (the unpickling half of ``IWatchError.__reduce__``)."""
    error = cls.__new__(cls)
    error.args = args
    return error


class IWatchError(Exception):
    """Base class of every error raised by dagster-iwatch."""

    def __reduce__(self) -> tuple[Any, ...]:
        # One mechanism for the whole tree: the message and the attributes, whatever the __init__ signature.
        return (_restore, (type(self), self.args), dict(self.__dict__))


class IWatchSecurityWarning(UserWarning):
    """A setting weakens security: TLS verification off, or a key sent over plain HTTP to another host."""


class ConfigError(IWatchError, ValueError):
    """Invalid configuration or arguments, detected before any request is sent."""


class TransportError(IWatchError):
    """The server could not be reached (connection refused, DNS, TLS, timeout) after all retries."""


class APIError(IWatchError):
    """The server answered with an HTTP error status.

    Attributes:
        status: The HTTP status code.
        method: The HTTP method of the request.
        path: The request path, without its query string (which may hold an ``api_key``).
        server_message: The ``message`` (or job ``error``) the server sent, if any.
    """

    def __init__(self, status: int, method: str, path: str, server_message: str | None = None) -> None:
        self.status = status
        self.method = method
        self.path = path
        self.server_message = server_message
        detail = f": {server_message}" if server_message else ""
        super().__init__(f"{method} {path} returned HTTP {status}{detail}")


class AuthError(APIError):
    """The API key is missing, wrong, or lacks the right for this call.

    Redash answers a wrong key with 404 "Couldn't find resource", so that case is an ``AuthError`` too.

    Attributes:
        hint: What kind of key the call needs and how to provide it.
    """

    def __init__(self, status: int, method: str, path: str, server_message: str | None = None, hint: str = "") -> None:
        super().__init__(status, method, path, server_message)
        self.hint = hint
        what = "the server rejected the API key, or this key may not make this call"
        self.args = (f"{method} {path}: {what} (HTTP {status}){f'. {hint}' if hint else ''}",)


class NotFoundError(APIError):
    """The query, job, result or dashboard does not exist, or this key cannot see it (HTTP 404).

    Attributes:
        subject: What was looked for, e.g. ``"query 9999"``, when the path says.
    """

    def __init__(self, status: int, method: str, path: str, server_message: str | None = None) -> None:
        super().__init__(status, method, path, server_message)
        self.subject = _subject(path)
        if self.subject:
            self.args = (
                f"{self.subject} does not exist or is not visible to this key ({method} {path}, HTTP {status})",
            )


def _subject(path: str) -> str:
    """What an API path names, e.g. ``query 12`` for ``/api/queries/12``; empty when unknown."""
    parts = [part for part in path.split("/") if part][1:]
    names = {"queries": "query", "jobs": "job", "query_results": "result", "dashboards": "dashboard"}
    if len(parts) == 2 and parts[0] in names:
        return f"{names[parts[0]]} {parts[1]}"
    if len(parts) == 4 and parts[0] == "queries" and parts[2] in ("jobs", "results"):
        item = "job" if parts[2] == "jobs" else "result"
        return f"{item} {parts[3].split('.')[0]} of query {parts[1]}"
    return ""


class ConflictError(APIError):
    """The edit was refused because the object changed since the given ``version`` (HTTP 409)."""


class RateLimitError(APIError):
    """The server kept answering HTTP 429 after all retries.

    Attributes:
        retry_after: Seconds the server asked to wait, when it said.
    """

    def __init__(
        self,
        status: int,
        method: str,
        path: str,
        server_message: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(status, method, path, server_message)
        self.retry_after = retry_after


#: Stands for "no value was given" in a :class:`ParameterError`, so that ``None`` can be reported as a value.
NO_VALUE: Any = type("NoValue", (), {"__repr__": lambda self: "NO_VALUE"})()


class ParameterError(IWatchError, ValueError):
    """A query parameter value is unknown, missing, of the wrong type or not allowed.

    Attributes:
        name: The parameter's name.
        value: The offending value (``None`` when none was given).
        expected: What the parameter accepts.
        problem: What is wrong with the value.
    """

    def __init__(self, name: str, value: Any, expected: str, problem: str = "invalid value") -> None:
        self.name = name
        self.value = None if value is NO_VALUE else value
        self.expected = expected
        self.problem = problem
        shown = "" if value is NO_VALUE else f" {value!r}"
        super().__init__(f"Parameter {name!r}: {problem}{shown}; expected {expected}")


class QueryExecutionError(IWatchError):
    """The query ran and failed on the server.

    Attributes:
        query_id: The saved query's id.
        job_id: The job that failed.
        server_message: The error text the server reported (the database's message).
    """

    def __init__(self, query_id: int, job_id: str | None, server_message: str) -> None:
        self.query_id = query_id
        self.job_id = job_id
        self.server_message = server_message
        super().__init__(f"Query {query_id} failed (job {job_id}): {server_message}")

    @property
    def server_error(self) -> str:
        """The same as :attr:`server_message` (its older name)."""
        return self.server_message


class JobTimeoutError(IWatchError):
    """The run did not complete within its deadline.

    Attributes:
        query_id: The saved query's id.
        job_id: The job that ran too long, or ``None`` when the deadline passed before a job was known.
        timeout: The deadline, in seconds.
        cancel_confirmed: Whether the server acknowledged the cancel; when ``False`` the job may still run.
        finished: Whether the job had finished (only reading its result ran out of time).
    """

    def __init__(
        self,
        query_id: int,
        job_id: str | None,
        timeout: float,
        cancel_confirmed: bool = False,
        finished: bool = False,
    ) -> None:
        self.query_id = query_id
        self.job_id = job_id
        self.timeout = timeout
        self.cancel_confirmed = cancel_confirmed
        self.finished = finished
        if job_id is None:
            what = "the run request got no answer in time; a job may have started on the server"
        elif finished:
            what = f"job {job_id} finished but its result could not be read in time"
        elif cancel_confirmed:
            what = f"job {job_id} did not finish in time; the server confirmed its cancel"
        else:
            what = f"job {job_id} did not finish in time; it could not be cancelled and may still be running"
        super().__init__(
            f"Query {query_id}: {what} (deadline {timeout:g}s). Raise the timeout or make the query faster"
        )


class JobCancelledError(IWatchError):
    """The job was cancelled on the server (by a user, an admin, or by us).

    Attributes:
        query_id: The saved query's id.
        job_id: The cancelled job.
        server_message: The server's text about the cancel, if any.
    """

    def __init__(self, query_id: int, job_id: str, server_message: str = "") -> None:
        self.query_id = query_id
        self.job_id = job_id
        self.server_message = server_message
        detail = f": {server_message}" if server_message else ""
        super().__init__(f"Query {query_id}: job {job_id} was cancelled{detail}")

    @property
    def server_error(self) -> str:
        """The same as :attr:`server_message` (its older name)."""
        return self.server_message


class ProtocolError(IWatchError):
    """The server's answer was malformed or not what the API promises."""


class ResultTooLargeError(IWatchError):
    """A result body exceeded the configured size limit; nothing past the limit was read.

    Attributes:
        limit: The limit, in bytes.
        size: The body's size when the server declared it, else ``None``.
    """

    def __init__(self, limit: int, size: int | None = None) -> None:
        self.limit = limit
        self.size = size
        seen = f"{size} bytes" if size is not None else "more"
        super().__init__(
            f"Result body is {seen}, over the limit of {limit} bytes; raise max_result_bytes "
            "or narrow the query (parameters, LIMIT)"
        )


class MissingParquetError(IWatchError, FileNotFoundError):
    """An input's Parquet file does not exist: the upstream asset (or partition) was never materialized.

    Attributes:
        asset: The asset key, as a user-readable string (or the op output identifier).
        partition: The missing partition key, or ``None`` for a non-partitioned asset.
        uri: Where the file was expected.
    """

    def __init__(self, asset: str, partition: str | None, uri: str) -> None:
        self.asset = asset
        self.partition = partition
        self.uri = uri
        what = f"partition {partition!r} of asset {asset}" if partition is not None else f"asset {asset}"
        super().__init__(
            f"No Parquet file for {what} at {uri}. Materialize it first"
            f"{' (that partition)' if partition is not None else ''}, or check the IO manager's base_path."
        )


class UnsupportedOutputError(IWatchError, TypeError):
    """An asset handed the Parquet IO manager something other than a ``pyarrow.Table`` or a DataFrame."""


class SnapshotError(IWatchError):
    """An instance snapshot is missing, unreadable or of another format version, or a record in it is malformed."""


class BasePathError(ConfigError):
    """The Parquet IO manager's ``base_path`` cannot be created or written to; found when the IO manager is set up.

    Attributes:
        base_path: The folder or URL, without credentials.
        reason: What went wrong.
    """

    def __init__(self, base_path: str, reason: str) -> None:
        self.base_path = base_path
        self.reason = reason
        super().__init__(
            f"The IO manager's base_path {base_path} is not usable: {reason}. Set base_path to a folder or URL "
            "this process can create and write files in."
        )
