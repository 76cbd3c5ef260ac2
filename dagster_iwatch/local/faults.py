"""Fault injection: make the next matching requests fail or stall, to test a client's retries."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any


@dataclass
class Fault:
    """A planned misbehaviour for the next `times` requests matching `method` and `path_prefix`."""

    status: int | None
    method: str | None
    path_prefix: str
    times: int
    retry_after: float | int | str | None = None
    delay: float = 0.0
    body: Any = None

    def matches(self, method: str, path: str) -> bool:
        """Whether a request with this method and path (no query string) is affected."""
        return (self.method is None or self.method.upper() == method.upper()) and path.startswith(self.path_prefix)


class Faults:
    """Thread-safe list of pending faults; each request consumes at most one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        """Plan a fault (after those already planned)."""
        if fault.times > 0:
            with self._lock:
                self._faults.append(fault)

    def clear(self) -> None:
        """Forget every planned fault."""
        with self._lock:
            self._faults.clear()

    def take(self, method: str, path: str) -> Fault | None:
        """Return the first fault matching this request and count it used, or None."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
        return None
