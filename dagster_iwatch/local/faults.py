"""Fault injection: planned misbehaviours of the next (or a share of the) matching requests, to test clients."""

from __future__ import annotations

import random
import threading
from dataclasses import asdict, dataclass, fields
from typing import Any

from dagster_iwatch.local.replies import LocalServerError

# status: answer `status` instead of handling the request (or, with status None, only the delay).
# reset: handle the request, then close the connection half-way through the body.
# truncate: handle the request, then send only the first half of the body (framing intact, JSON broken).
# non-json: answer 200 with an HTML page instead of handling the request.
# hang / fail: handle the request; a job it starts never finishes / fails.
# large: answer a GET with a generated, streamed result of `rows` rows instead of handling it.
KINDS = ("status", "reset", "truncate", "non-json", "hang", "fail", "large")


@dataclass
class Fault:
    """A planned misbehaviour of requests matching `method` and `path_prefix`.

    `times` counts the requests affected (None: until cleared); with `share` below 1 each matching request is
    affected with that probability, drawn from a generator seeded with `seed`.
    """

    status: int | None = 503
    method: str | None = "GET"
    path_prefix: str = "/api/jobs/"
    times: int | None = 2
    retry_after: float | int | str | None = None
    delay: float = 0.0
    body: Any = None
    kind: str = "status"
    share: float = 1.0
    rows: int = 100_000
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise LocalServerError(f"fault kind must be one of {KINDS}, not {self.kind!r}")
        if self.status is not None and (not isinstance(self.status, int) or not 100 <= self.status <= 599):
            raise LocalServerError(f"fault status must be an HTTP status (100-599) or None, not {self.status!r}")
        if self.times is not None and (not isinstance(self.times, int) or self.times < 0):
            raise LocalServerError(f"fault times must be a count >= 0 or None (unlimited), not {self.times!r}")
        if not isinstance(self.share, int | float) or not 0.0 < float(self.share) <= 1.0:
            raise LocalServerError(f"fault share must be in (0, 1], not {self.share!r}")
        if not isinstance(self.delay, int | float) or not 0.0 <= float(self.delay) <= 600.0:
            raise LocalServerError(f"fault delay must be seconds in [0, 600], not {self.delay!r}")
        if not isinstance(self.rows, int) or not 0 <= self.rows <= 100_000_000:
            raise LocalServerError(f"fault rows must be in [0, 100000000], not {self.rows!r}")
        if not isinstance(self.path_prefix, str) or not self.path_prefix.startswith("/"):
            raise LocalServerError(f"fault path_prefix must start with '/', not {self.path_prefix!r}")
        self._rng = random.Random(self.seed)  # a test's dice, not a secret
        self.hits = 0

    @classmethod
    def from_json(cls, spec: Any) -> Fault:
        """Build a fault from a JSON object of :meth:`LocalServer.inject_fault`'s keyword arguments."""
        if not isinstance(spec, dict):
            raise LocalServerError("a fault is a JSON object of inject_fault's keyword arguments")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(spec) - known)
        if unknown:
            raise LocalServerError(f"unknown fault options {unknown}; known: {sorted(known)}")
        return cls(**spec)

    def to_json(self) -> dict[str, Any]:
        """The fault's options, as :meth:`from_json` takes them."""
        return asdict(self)

    def matches(self, method: str, path: str) -> bool:
        """Whether a request with this method and path (no query string) is a candidate."""
        return (self.method is None or self.method.upper() == method.upper()) and path.startswith(self.path_prefix)


class Faults:
    """Thread-safe list of planned faults; each request consumes at most one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        """Plan a fault (after those already planned)."""
        if fault.times != 0:
            with self._lock:
                self._faults.append(fault)

    def clear(self) -> None:
        """Forget every planned fault."""
        with self._lock:
            self._faults.clear()

    def pending(self) -> list[Fault]:
        """The faults still planned."""
        with self._lock:
            return list(self._faults)

    def take(self, method: str, path: str) -> Fault | None:
        """Return the first fault that affects this request and count it used, or None."""
        with self._lock:
            for fault in self._faults:
                if not fault.matches(method, path):
                    continue
                if fault.share < 1.0 and fault._rng.random() >= fault.share:
                    continue
                fault.hits += 1
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                return fault
        return None
