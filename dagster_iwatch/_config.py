"""The client's settings, validated once: timeouts, polling, retries and limits.

Each check names the argument the caller passed, so a wrong value is found where it was written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from dagster_iwatch.errors import ConfigError

__all__ = ["ClientSettings", "Timeout", "TimeoutLike"]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_int(value: Any) -> bool:
    """Whether ``value`` is an ``int`` and not a ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool)


def positive_seconds(name: str, value: Any) -> float:
    """``value`` as a float of seconds, or a :class:`ConfigError` naming ``name``."""
    if not _is_number(value) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Timeout:
    """How long to wait for a connection and for each read of an answer, in seconds.

    Build it from a number (both), a ``(connect, read)`` pair, or another :class:`Timeout` with
    :meth:`parse`.
    """

    connect: float = 10.0
    read: float = 60.0

    @classmethod
    def parse(cls, value: TimeoutLike, name: str = "timeout") -> Timeout:
        """Read a number, a ``(connect, read)`` pair or a :class:`Timeout`.

        Raises:
            ConfigError: The value is not one of those, or a part is not a positive number.
        """
        if isinstance(value, Timeout):
            return value
        if _is_number(value):
            seconds = positive_seconds(name, value)
            return cls(seconds, seconds)
        if isinstance(value, tuple | list) and len(value) == 2:
            return cls(
                positive_seconds(f"{name}[0] (connect)", value[0]), positive_seconds(f"{name}[1] (read)", value[1])
            )
        raise ConfigError(f"{name} must be a positive number of seconds or a (connect, read) pair of them")


TimeoutLike = float | tuple[float, float] | Timeout


@dataclass(frozen=True)
class ClientSettings:
    """Every tunable of :class:`~dagster_iwatch.client.IWatchClient`, checked when built.

    Attributes:
        timeout: Connect and read timeouts of each request.
        job_timeout: Default deadline of a whole ``execute``, in seconds.
        poll_interval: When to poll a job first, in seconds after it started (see :mod:`dagster_iwatch.poll`).
        max_poll_interval: Longest wait between job polls, in seconds.
        max_retries: Retries of an idempotent request (and of connections that never reached the server).
        backoff_factor: Base of the exponential backoff between retries, in seconds.
        max_result_bytes: Largest result body read, or ``None`` for no limit.
        pool_size: Connections kept open per host; at least the number of threads sharing the client.
    """

    timeout: Timeout = field(default_factory=Timeout)
    job_timeout: float = 1800.0
    poll_interval: float = 0.005
    max_poll_interval: float = 1.0
    max_retries: int = 3
    backoff_factor: float = 0.5
    max_result_bytes: int | None = None
    pool_size: int = 32

    def __post_init__(self) -> None:
        positive_seconds("job_timeout", self.job_timeout)
        positive_seconds("poll_interval", self.poll_interval)
        positive_seconds("max_poll_interval", self.max_poll_interval)
        if self.max_poll_interval < self.poll_interval:
            raise ConfigError(
                f"max_poll_interval ({self.max_poll_interval:g}) must not be smaller than "
                f"poll_interval ({self.poll_interval:g})"
            )
        if not is_int(self.max_retries) or self.max_retries < 0:
            raise ConfigError(f"max_retries must be an integer >= 0, got {self.max_retries!r}")
        if not _is_number(self.backoff_factor) or not math.isfinite(self.backoff_factor) or self.backoff_factor < 0:
            raise ConfigError(f"backoff_factor must be a number of seconds >= 0, got {self.backoff_factor!r}")
        if self.max_result_bytes is not None and (not is_int(self.max_result_bytes) or self.max_result_bytes <= 0):
            raise ConfigError(f"max_result_bytes must be a positive integer or None, got {self.max_result_bytes!r}")
        if not is_int(self.pool_size) or self.pool_size < 1:
            raise ConfigError(f"pool_size must be a positive integer, got {self.pool_size!r}")
