"""Sending requests to the server: keys, TLS, deadlines, retries, bounded reads, errors and redaction.

One :class:`Transport` holds one ``requests`` session with a connection pool sized for the threads that share
it. Every request names whether it is idempotent: only idempotent ones (reads) are retried after they may have
reached the server; any request is retried when the connection failed before anything was sent. Every wait is
bounded by the caller's deadline. Every text that leaves this module is redacted, so no key reaches an error
message, a log line or a repr.
"""

from __future__ import annotations

import contextlib
import contextvars
import ipaddress
import json
import logging
import os
import random
import re
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote, quote_plus, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from dagster_iwatch._config import ClientSettings
from dagster_iwatch.errors import (
    APIError,
    AuthError,
    ConfigError,
    ConflictError,
    IWatchError,
    IWatchSecurityWarning,
    NotFoundError,
    RateLimitError,
    ResultTooLargeError,
    TransportError,
)
from dagster_iwatch.version import __version__

__all__ = ["Credential", "Transport", "check_key", "deadline_scope", "read_progress_scope"]

_LOGIN_MESSAGE = "couldn't find resource. please login and try again."
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_ERROR_BODY_LIMIT = 1 << 20
_READ_CHUNK = 1 << 16
_BACKOFF_MAX = 30.0
_RETRY_AFTER_MAX = 60.0
# Any "Key <token>" or "api_key=<token>" in a text from the HTTP stack, whichever key it is.
_KEY_PATTERNS = (
    re.compile(r"(?i)(\bKey\s+)[^\s'\",;]+"),
    re.compile(r"(?i)(api_key=)[^\s&'\",;]+"),
)
_HEADER_SAFE = re.compile(r"[!-~]+")
_T = TypeVar("_T")


_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("iwatch_deadline", default=None)


@contextlib.contextmanager
def deadline_scope(deadline: float, *, override: bool = False) -> Iterator[None]:
    """Bound every request sent in this context (thread or task) by ``deadline``, a ``time.monotonic()`` value.

    Nested scopes keep the earlier deadline, unless ``override`` (a cancel's own budget after the deadline).
    """
    current = _DEADLINE.get()
    token = _DEADLINE.set(deadline if override or current is None else min(current, deadline))
    try:
        yield
    finally:
        _DEADLINE.reset(token)


_ON_BYTES: contextvars.ContextVar[Callable[[int], None] | None] = contextvars.ContextVar(
    "iwatch_on_bytes", default=None
)


@contextlib.contextmanager
def read_progress_scope(on_bytes: Callable[[int], None]) -> Iterator[None]:
    """Call ``on_bytes(total so far)`` as each chunk of an answer's body arrives, for requests in this context."""
    token = _ON_BYTES.set(on_bytes)
    try:
        yield
    finally:
        _ON_BYTES.reset(token)


def check_key(name: str, key: Any) -> str | None:
    """A key as it will be sent: surrounding whitespace stripped, ``None`` when empty.

    Raises:
        ConfigError: It is not a string, or holds a character that cannot go into an HTTP header (the key
            itself is never part of the message).
    """
    if key is None:
        return None
    if not isinstance(key, str):
        raise ConfigError(f"{name} must be a string, got {type(key).__name__}")
    text = key.strip()
    if not text:
        return None
    if not _HEADER_SAFE.fullmatch(text):
        position = next(i for i, char in enumerate(text) if not _HEADER_SAFE.fullmatch(char))
        raise ConfigError(
            f"{name} holds a character that cannot be sent in an HTTP header (at position {position + 1} "
            f"of {len(text)}); API keys are printable ASCII without spaces: check the file or variable it came from"
        )
    return text


@dataclass(frozen=True)
class Credential:
    """The key for one call; ``hint`` says which kind of key the call needs."""

    key: str = field(repr=False)
    hint: str


class _KeyAuth(requests.auth.AuthBase):
    """Sends ``Authorization: Key <key>``; given as ``auth``, it keeps a ``.netrc`` entry from replacing the key."""

    def __init__(self, key: str) -> None:
        self._key = key

    def __repr__(self) -> str:
        return "_KeyAuth(***)"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Key {self._key}"
        return request


class Redactor:
    """Removes known keys (raw and URL-encoded) and anything shaped like a key from texts."""

    def __init__(self, secrets: tuple[str, ...]) -> None:
        forms = {form for secret in secrets for form in (secret, quote(secret, safe=""), quote_plus(secret))}
        self._forms = tuple(sorted(forms, key=len, reverse=True))

    def __call__(self, text: str | None) -> str:
        """``text`` without any key."""
        if not text:
            return ""
        for form in self._forms:
            text = text.replace(form, "***")
        for pattern in _KEY_PATTERNS:
            text = pattern.sub(r"\1***", text)
        return text


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _never_sent(error: requests.RequestException) -> bool:
    """Whether the request failed before any byte of it reached the server (safe to send again)."""
    if isinstance(error, requests.ConnectTimeout):
        return True
    reason = error.args[0] if error.args else None
    reason = getattr(reason, "reason", reason)
    return isinstance(error, requests.ConnectionError) and isinstance(reason, urllib3.exceptions.NewConnectionError)


class _Attempt(Exception):
    """One failed try; carries the error to raise when no retry is left and the wait the server asked for."""

    def __init__(self, error: IWatchError, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retryable = retryable
        self.retry_after = retry_after


class Transport:
    """Sends requests to one server and turns every answer into bytes or an :class:`IWatchError`.

    Args:
        base_url: The validated base URL, without a trailing slash.
        secrets: Every key this transport may send, for redaction.
        settings: Timeouts, retries, limits and pool size.
        verify: Verify TLS certificates (``True``), not at all (``False``), or against a CA bundle path.
        logger: Where retries are reported.
    """

    def __init__(
        self,
        base_url: str,
        secrets: tuple[str, ...],
        settings: ClientSettings,
        verify: bool | str,
        logger: logging.Logger,
    ) -> None:
        self.base_url = base_url
        self.settings = settings
        self.redact = Redactor(secrets)
        self._logger = logger
        self._verify = _check_verify(verify)
        parts = urlsplit(base_url)
        host = parts.hostname or ""
        if self._verify is False and parts.scheme == "https":
            warnings.warn(
                f"TLS verification is off for {host}: anyone on the network path can read the API key. "
                "Pass a CA bundle path as verify instead.",
                IWatchSecurityWarning,
                stacklevel=4,
            )
            # One warning above instead of urllib3's one per request.
            warnings.filterwarnings(
                "ignore", message=f".*host '{re.escape(host)}'", category=urllib3.exceptions.InsecureRequestWarning
            )
        if parts.scheme == "http" and secrets and not _is_loopback(host):
            warnings.warn(
                f"The API key will be sent unencrypted over http:// to {host}; use https://.",
                IWatchSecurityWarning,
                stacklevel=4,
            )
        self._session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=settings.pool_size, max_retries=Retry(0, read=False))
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._session.headers["User-Agent"] = f"dagster-iwatch/{__version__} python-requests/{requests.__version__}"
        self._session.headers["Accept"] = "application/json"

    def close(self) -> None:
        """Close the connection pool."""
        self._session.close()

    def request(
        self,
        method: str,
        path: str,
        credential: Credential,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        limit: int | None = None,
        idempotent: bool | None = None,
    ) -> bytes:
        """Send one request, retrying as allowed, and return the body of a successful answer.

        Args:
            method: The HTTP method.
            path: The path under the base URL (no query string).
            credential: The key to send.
            params: Query string parameters.
            json_body: A body to send as JSON.
            limit: Largest body to read, in bytes.
            idempotent: Whether sending it twice is harmless; GET and DELETE by default.

        Raises:
            TransportError: No answer (after retries, or the deadline passed).
            APIError: An error status (its subclasses by status).
            ResultTooLargeError: The body is over ``limit``.
        """
        if idempotent is None:
            idempotent = method in ("GET", "HEAD", "DELETE")
        retry_read = idempotent

        def attempt(deadline: float | None) -> bytes:
            response = self._send(method, path, credential, params, json_body, limit, retry_read, deadline)
            try:
                return b"".join(self._chunks(response, method, path, limit))
            except ResultTooLargeError as error:
                raise _Attempt(error, False) from None
            except TransportError as error:
                # A body cut off mid-way: the request reached the server, so only reads go again.
                raise _Attempt(error, retry_read) from None

        return self._with_retries(attempt)

    def stream(self, method: str, path: str, credential: Credential, *, limit: int | None = None) -> Iterator[bytes]:
        """Send a read (retried as :meth:`request` retries it) and yield its body's chunks as they arrive.

        Retries end once the body has started: a connection lost mid-way raises :class:`TransportError`
        there. The answer is closed when the iteration ends, fails or is closed early. The deadline and the
        progress callback are those in effect when this is called, wherever the chunks are then read (the
        ingest reads them on a thread of its own).

        Raises:
            TransportError, APIError, ResultTooLargeError: As :meth:`request`.
        """
        deadline, on_bytes = _DEADLINE.get(), _ON_BYTES.get()

        def chunks() -> Iterator[bytes]:
            response = self._with_retries(
                lambda deadline: self._send(method, path, credential, None, None, limit, True, deadline), deadline
            )
            yield from self._chunks(response, method, path, limit, on_bytes)

        return chunks()

    def _with_retries(self, attempt: Callable[[float | None], _T], deadline: float | None = None) -> _T:
        """``attempt(deadline)`` until it succeeds, or fails for good, or retries or the deadline run out.

        The deadline is the one given, else the one in effect.
        """
        left = self.settings.max_retries
        deadline = _DEADLINE.get() if deadline is None else deadline
        number = 0
        while True:
            try:
                return attempt(deadline)
            except _Attempt as failed:
                error, retryable, asked = failed.error, failed.retryable, failed.retry_after
            # Raised outside the except block: the failed attempt's exception (which may quote a key) is
            # not kept as the context of the error the caller sees.
            if not retryable or left <= 0:
                raise error
            wait = self._backoff(number) if asked is None else min(asked, _RETRY_AFTER_MAX)
            if deadline is not None and time.monotonic() + wait >= deadline:
                raise error
            self._logger.info("%s; retrying in %.2fs (%d left)", error, wait, left)
            time.sleep(wait)
            number += 1
            left -= 1

    def _backoff(self, attempt: int) -> float:
        base: float = min(_BACKOFF_MAX, self.settings.backoff_factor * (2**attempt))
        return base * random.uniform(0.5, 1.0)

    def _send(
        self,
        method: str,
        path: str,
        credential: Credential,
        params: Mapping[str, Any] | None,
        json_body: Any,
        limit: int | None,
        idempotent: bool,
        deadline: float | None,
    ) -> requests.Response:
        """One request, up to a successful answer whose body is still to be read; failures as :class:`_Attempt`."""
        timeout = (self.settings.timeout.connect, self.settings.timeout.read)
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _Attempt(TransportError(f"{method} {path}: not sent, the deadline has passed"), False)
            timeout = (min(timeout[0], remaining), min(timeout[1], remaining))
        try:
            response = self._session.request(
                method,
                self.base_url + path,
                params=params,
                json=json_body,
                auth=_KeyAuth(credential.key),
                timeout=timeout,
                verify=self._verify,
                stream=True,
            )
        except requests.RequestException as error:
            raise _Attempt(self._transport_error(method, path, error), idempotent or _never_sent(error)) from None
        except Exception as error:
            raise _Attempt(self._transport_error(method, path, error), False) from None
        if response.status_code >= 400:
            status = response.status_code
            body = self._read_quietly(response)
            retry_after = _retry_after(response) if status in (429, 503) else None
            raise _Attempt(
                self._status_error(status, method, path, body, credential, retry_after),
                idempotent and status in RETRY_STATUSES,
                retry_after,
            )
        declared = response.headers.get("Content-Length", "")
        encoded = response.headers.get("Content-Encoding", "identity") not in ("", "identity")
        if limit is not None and declared.isdigit() and not encoded and int(declared) > limit:
            response.close()
            raise _Attempt(ResultTooLargeError(limit, int(declared)), False)
        return response

    def _transport_error(self, method: str, path: str, error: BaseException) -> TransportError:
        return TransportError(
            f"{method} {path}: could not get an answer from {self.base_url}: "
            f"{type(error).__name__}: {self.redact(str(error))}"
        )

    def _chunks(
        self,
        response: requests.Response,
        method: str,
        path: str,
        limit: int | None,
        on_bytes: Callable[[int], None] | None = None,
    ) -> Iterator[bytes]:
        """The body as it arrives, up to ``limit`` bytes (no further byte is read); closes the answer.

        ``on_bytes`` is told the size read so far; the progress callback in effect when ``None``.
        """
        size = 0
        on_bytes = on_bytes or _ON_BYTES.get()
        try:
            while True:
                want = _READ_CHUNK if limit is None else min(_READ_CHUNK, limit + 1 - size)
                try:
                    chunk = response.raw.read(want, decode_content=True)
                except Exception as error:
                    failure = TransportError(
                        f"{method} {path}: the connection failed while reading the answer: {type(error).__name__}"
                    )
                    break
                if not chunk:
                    return
                size += len(chunk)
                if limit is not None and size > limit:
                    raise ResultTooLargeError(limit)
                yield chunk
                if on_bytes is not None:
                    on_bytes(size)
        finally:
            response.close()
        # Raised outside the except block, so the HTTP stack's exception (which may quote a URL) is not its context.
        raise failure

    def _read_quietly(self, response: requests.Response) -> bytes:
        try:
            return b"".join(self._chunks(response, "", "", _ERROR_BODY_LIMIT))
        except IWatchError:
            return b""

    def _status_error(
        self,
        status: int,
        method: str,
        path: str,
        body: bytes,
        credential: Credential,
        retry_after: float | None,
    ) -> APIError:
        message = self.redact(server_message(body))
        if (status == 404 and message.strip().lower() == _LOGIN_MESSAGE) or status in (401, 403):
            return AuthError(status, method, path, message, hint=credential.hint)
        if status == 404:
            return NotFoundError(status, method, path, message)
        if status == 409:
            return ConflictError(status, method, path, message)
        if status == 429:
            return RateLimitError(status, method, path, message, retry_after=retry_after)
        return APIError(status, method, path, message)


def _check_verify(verify: Any) -> bool | str:
    if isinstance(verify, bool):
        return verify
    if isinstance(verify, str) and verify.strip():
        path = verify.strip()
        if not os.path.exists(path):
            raise ConfigError(f"verify: no CA bundle file or folder at {path!r}")
        return path
    raise ConfigError("verify must be True, False, or the path of a CA bundle file")


def server_message(body: bytes) -> str:
    """The ``message`` (or job ``error``) of an error body, or its first characters."""
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
        seconds: float = Retry().parse_retry_after(value)
        return max(0.0, seconds)
    except (ValueError, urllib3.exceptions.HTTPError):
        return None
