"""Where the ``iwatch`` commands connect, with which key, and how their errors end the process.

The key comes from ``IWATCH_API_KEY``, from a file (``--api-key-file``, ``-`` for standard input) or from a
hidden prompt on a terminal, never from the command line, where every user of the machine could read it in
the process list.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any, TypeVar

import click

from dagster_iwatch.client import IWatchClient
from dagster_iwatch.errors import (
    AuthError,
    ConfigError,
    IWatchError,
    JobCancelledError,
    JobTimeoutError,
    NotFoundError,
    ParameterError,
    QueryExecutionError,
    TransportError,
)

URL_ENV = "IWATCH_URL"
KEY_ENV = "IWATCH_API_KEY"
_KEY_ADVICE = f"set {KEY_ENV}, or pass --api-key-file PATH (- reads it from standard input)"

F = TypeVar("F", bound=Callable[..., Any])

# What the client logs (a cancel, a retry) is said again by the error that ends the command: keep one line.
_QUIET = logging.getLogger("dagster_iwatch.cli")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False


class ExitCode(IntEnum):
    """The process's exit status, one per kind of failure."""

    OK = 0
    ERROR = 1
    USAGE = 2
    AUTH = 3
    NOT_FOUND = 4
    QUERY_FAILED = 5
    TIMEOUT = 6
    UNREACHABLE = 7
    INTERRUPTED = 130


class CliError(click.ClickException):
    """An error shown as one line on standard error, ending the process with its own exit code."""

    def __init__(self, message: str, exit_code: ExitCode) -> None:
        super().__init__(message)
        # click declares exit_code on the class and reads it from the instance.
        self.exit_code = int(exit_code)  # type: ignore[misc]


# Most specific first: AuthError and NotFoundError are APIErrors, JobCancelledError is not a failure of the SQL.
_EXIT_CODES: tuple[tuple[type[IWatchError], ExitCode], ...] = (
    (ConfigError, ExitCode.USAGE),
    (ParameterError, ExitCode.USAGE),
    (AuthError, ExitCode.AUTH),
    (NotFoundError, ExitCode.NOT_FOUND),
    (QueryExecutionError, ExitCode.QUERY_FAILED),
    (JobCancelledError, ExitCode.QUERY_FAILED),
    (JobTimeoutError, ExitCode.TIMEOUT),
    (TransportError, ExitCode.UNREACHABLE),
)


def exit_code_for(error: IWatchError) -> ExitCode:
    """The exit code for a library error."""
    return next((code for kind, code in _EXIT_CODES if isinstance(error, kind)), ExitCode.ERROR)


@dataclass
class Connection:
    """The server and key a command uses; the key stays out of ``repr``."""

    url: str
    key: str = field(repr=False)
    key_source: str

    def client(self, **settings: Any) -> IWatchClient:
        """A client for this server (raises ConfigError, without the key, on a malformed URL or key)."""
        return IWatchClient(self.url, api_key=self.key, logger=_QUIET, **settings)

    def explain(self, error: IWatchError) -> CliError:
        """The one-line error for ``error``, saying where the key came from when the server refused it."""
        message = str(error)
        if isinstance(error, AuthError):
            message += f" (key from {self.key_source})"
        return CliError(redact_key(message, self.key), exit_code_for(error))


def redact_key(text: str, key: str) -> str:
    """``text`` with every occurrence of ``key`` replaced by ``***``."""
    return text.replace(key, "***") if key else text


def _refuse_key_option(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        raise click.UsageError(
            "--api-key is not accepted: a key on the command line is visible to every user of the machine "
            f"in the process list; {_KEY_ADVICE}",
            ctx,
        )


def connection_options(command: F) -> F:
    """Add ``--url`` and ``--api-key-file`` to a command; it receives them as ``url`` and ``api_key_file``."""
    command = click.option(
        "--api-key",
        hidden=True,
        expose_value=False,
        callback=_refuse_key_option,
        help="Refused: see --api-key-file.",
    )(command)
    command = click.option(
        "--api-key-file",
        type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
        default=None,
        help=f"File holding the API key (a user or query key); '-' reads it from standard input. Default: ${KEY_ENV}.",
    )(command)
    return click.option(
        "--url",
        default=None,
        metavar="URL",
        help=f"The Inverse Watch (Redash) server, e.g. https://app.inverse.watch. Default: ${URL_ENV}.",
    )(command)


def resolve_connection(url: str | None, api_key_file: Path | None) -> Connection:
    """The connection from the options, the environment or a hidden prompt.

    Raises:
        CliError: No URL, or no key (exit code ``USAGE``); the key is never part of the message.
    """
    base_url = (url or os.environ.get(URL_ENV) or "").strip()
    if not base_url:
        raise CliError(f"no server given: set {URL_ENV} or pass --url URL", ExitCode.USAGE)
    key, source = _read_key(api_key_file)
    if not key:
        raise CliError(f"no API key in {source}: {_KEY_ADVICE}", ExitCode.USAGE)
    return Connection(base_url, key, source)


def _read_key(api_key_file: Path | None) -> tuple[str, str]:
    if api_key_file is not None:
        if str(api_key_file) == "-":
            return sys.stdin.readline().strip(), "standard input"
        try:
            return api_key_file.read_text(encoding="utf-8").strip(), str(api_key_file)
        except OSError as error:
            raise CliError(
                f"cannot read the API key file {api_key_file}: {error.strerror or error}", ExitCode.USAGE
            ) from None
        except UnicodeDecodeError:
            raise CliError(f"the API key file {api_key_file} is not text", ExitCode.USAGE) from None
    env_key = os.environ.get(KEY_ENV, "").strip()
    if env_key:
        return env_key, KEY_ENV
    if sys.stdin.isatty():
        return click.prompt("API key", hide_input=True, default="", show_default=False).strip(), "the prompt"
    return "", KEY_ENV
