"""One exception tree for everything that can go wrong talking to Inverse Watch.

Every error raised by the library is an :class:`IWatchError`. Messages never contain an API key: the
client strips credentials from paths before building an error.
"""

from __future__ import annotations

from typing import Any


class IWatchError(Exception):
    """Base class of every error raised by dagster-iwatch."""


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

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.status, self.method, self.path, self.server_message))


class AuthError(APIError):
    """The API key is missing, wrong, or lacks the right for this call.

    Redash answers a wrong key with 404 "Couldn't find resource", so that case is an ``AuthError`` too.

    Attributes:
        hint: What kind of key the call needs and how to provide it.
    """

    def __init__(self, status: int, method: str, path: str, server_message: str | None = None, hint: str = "") -> None:
        super().__init__(status, method, path, server_message)
        self.hint = hint
        if hint:
            self.args = (f"{self.args[0].rstrip('.')}. {hint}",)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.status, self.method, self.path, self.server_message, self.hint))


class NotFoundError(APIError):
    """The query, job, result or dashboard does not exist (HTTP 404)."""


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

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.status, self.method, self.path, self.server_message, self.retry_after))


class ParameterError(IWatchError, ValueError):
    """A query parameter value is unknown, missing, of the wrong type or not allowed.

    Attributes:
        name: The parameter's name.
        value: The offending value (``None`` when missing).
        expected: What the parameter accepts.
    """

    def __init__(self, name: str, value: Any, expected: str, problem: str = "invalid value") -> None:
        self.name = name
        self.value = value
        self.expected = expected
        self.problem = problem
        super().__init__(f"Parameter {name!r}: {problem} {value!r}; expected {expected}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.name, self.value, self.expected, self.problem))


class QueryExecutionError(IWatchError):
    """The query ran and failed on the server.

    Attributes:
        query_id: The saved query's id.
        job_id: The job that failed.
        server_error: The error text the server reported (the database's message).
    """

    def __init__(self, query_id: int, job_id: str | None, server_error: str) -> None:
        self.query_id = query_id
        self.job_id = job_id
        self.server_error = server_error
        super().__init__(f"Query {query_id} failed (job {job_id}): {server_error}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.query_id, self.job_id, self.server_error))


class JobTimeoutError(IWatchError):
    """The job did not finish in time; it was cancelled on the server before this was raised."""

    def __init__(self, query_id: int, job_id: str, timeout: float) -> None:
        self.query_id = query_id
        self.job_id = job_id
        self.timeout = timeout
        super().__init__(
            f"Query {query_id}: job {job_id} did not finish within {timeout:g}s and was cancelled; "
            "raise the job timeout or make the query faster"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.query_id, self.job_id, self.timeout))


class JobCancelledError(IWatchError):
    """The job was cancelled on the server (by a user, an admin, or by us)."""

    def __init__(self, query_id: int, job_id: str, server_error: str = "") -> None:
        self.query_id = query_id
        self.job_id = job_id
        self.server_error = server_error
        detail = f": {server_error}" if server_error else ""
        super().__init__(f"Query {query_id}: job {job_id} was cancelled{detail}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.query_id, self.job_id, self.server_error))


class ProtocolError(IWatchError):
    """The server's answer was malformed or not what the API promises."""


class ResultTooLargeError(IWatchError):
    """A result body exceeded the configured size limit; nothing past the limit was read."""

    def __init__(self, limit: int, size: int | None = None) -> None:
        self.limit = limit
        self.size = size
        seen = f"{size} bytes" if size is not None else "more"
        super().__init__(
            f"Result body is {seen}, over the limit of {limit} bytes; raise max_result_bytes "
            "or narrow the query (parameters, LIMIT)"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.limit, self.size))


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

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.asset, self.partition, self.uri))


class UnsupportedOutputError(IWatchError, TypeError):
    """An asset handed the Parquet IO manager something other than a ``pyarrow.Table`` or a DataFrame."""


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

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.base_path, self.reason))
