"""When to ask whether a job has finished: soon at first, then once a second, densely around an expected finish.

Most jobs are small, so the first checks come within milliseconds (5 ms, then doubling: 5, 15, 35, 75,
155, 315, 635 ms after the start); a small query's result is in hand within a few tens of milliseconds of
its end. After that ramp the checks fall on whole seconds after the start (2 s, 3 s, 4 s, ...): never more
than one a second, and a job is seen at most a second (half a second on average) after it finished.

When the query's last runtime is known (the queries list and results carry ``runtime``), the job is likely
to end about then: the checks are dense around it (every tenth of the runtime, at most every 100 ms, from
just before it to 10 % or 3 s after it, whichever is less) and follow the plain schedule elsewhere.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

__all__ = ["poll_delays", "poll_times"]

FIRST = 0.005
"""Seconds from the start to the first check."""
GROWTH = 2.0
"""Each wait of the ramp is this many times the one before."""
CAP = 1.0
"""The longest wait between checks, and the grid the checks fall on after the ramp."""
DENSE = 0.1
"""The longest wait between checks around an expected finish."""
LATE = 0.1
"""How far past the expected finish (as a fraction of it) the checks stay dense..."""
LATE_CAP = 3.0
"""...but at most this many seconds."""


def poll_times(
    expected_runtime: float | None = None, *, first: float = FIRST, growth: float = GROWTH, cap: float = CAP
) -> Iterator[float]:
    """Seconds from the job's start at which to check it, increasing, without end.

    Args:
        expected_runtime: The query's last known runtime in seconds, or ``None``.
        first: The first check's time.
        growth: Ratio between successive waits while they are shorter than ``cap``.
        cap: The longest wait; after the ramp, checks fall on multiples of it.
    """
    base = _base_times(first, growth, cap)
    if expected_runtime is None or not math.isfinite(expected_runtime) or expected_runtime <= 0:
        yield from base
        return
    step = min(DENSE, max(first, expected_runtime / 10))
    low = max(first, expected_runtime - 2 * step)
    high = expected_runtime + min(LATE * expected_runtime, LATE_CAP) + 2 * step
    for moment in base:
        if moment >= low:
            break
        yield moment
    dense = low
    while dense <= high:
        yield dense
        dense += step
    last = dense - step
    yield from (moment for moment in _base_times(first, growth, cap) if moment > last + step / 2)


def _base_times(first: float, growth: float, cap: float) -> Iterator[float]:
    moment, wait = first, first
    while wait * growth < cap:
        yield moment
        wait *= growth
        moment += wait
    yield moment
    for multiple in itertools.count(math.floor(moment / cap) + 1):
        yield multiple * cap


def poll_delays(
    expected_runtime: float | None = None, *, first: float = FIRST, growth: float = GROWTH, cap: float = CAP
) -> Iterator[float]:
    """The waits before each check of a job, starting from its start (see this module's docstring).

    Args:
        expected_runtime: The query's last known runtime in seconds, or ``None``.
        first: The first wait.
        growth: Ratio between successive waits while they are shorter than ``cap``.
        cap: The longest wait.

    Returns:
        An endless iterator of waits in seconds; the caller stops at its own deadline.
    """
    previous = 0.0
    for moment in poll_times(expected_runtime, first=first, growth=growth, cap=cap):
        yield moment - previous
        previous = moment
