"""The job poll schedule, as a pure function: job ends simulated against it."""

from __future__ import annotations

import itertools

import pytest

from dagster_iwatch.poll import poll_delays, poll_times


def seen(end: float, expected_runtime: float | None = None) -> tuple[float, int]:
    """How long after ``end`` the schedule first checks, and how many checks that took."""
    moment = 0.0
    for count, delay in enumerate(poll_delays(expected_runtime), start=1):
        assert delay > 0
        moment += delay
        if moment >= end:
            return moment - end, count
    raise AssertionError("unreachable: the schedule is endless")


@pytest.mark.parametrize(
    ("end", "late", "polls"),
    [(0.05, 0.050, 6), (0.2, 0.2, 7), (3.5, 0.5, 11), (10.5, 0.5, 20), (30.5, 1.0, 40)],
)
def test_targets_without_a_known_runtime(end: float, late: float, polls: int) -> None:
    lateness, count = seen(end)
    assert lateness <= late
    assert count <= polls


def test_first_checks_come_within_milliseconds_and_waits_grow_to_a_second() -> None:
    delays = list(itertools.islice(poll_delays(), 200))
    assert delays[0] <= 0.01
    assert sum(delays[:3]) <= 0.05
    assert max(delays) <= 1.0
    assert delays[-1] == pytest.approx(1.0)
    assert all(later >= earlier for earlier, later in itertools.pairwise(delays))


@pytest.mark.parametrize("end", [0.001, 0.4, 1.7, 2.3, 9.99, 59.2, 600.1])
def test_any_job_is_seen_within_a_second(end: float) -> None:
    lateness, _ = seen(end)
    assert lateness <= 1.0


@pytest.mark.parametrize("runtime", [0.05, 0.8, 3.5, 10.5, 30.5, 120.0])
@pytest.mark.parametrize("drift", [-0.05, 0.0, 0.03, 0.1])
def test_a_known_runtime_is_met_within_200_ms(runtime: float, drift: float) -> None:
    end = runtime + min(drift * runtime, 2.5)
    lateness, count = seen(end, expected_runtime=runtime)
    assert lateness <= 0.2
    assert count <= seen(end)[1] + 40


def test_a_job_slower_than_expected_falls_back_to_the_plain_grid() -> None:
    lateness, _ = seen(25.0, expected_runtime=10.5)
    assert lateness <= 1.0
    times = list(itertools.islice(poll_times(10.5), 200))
    assert times == sorted(times)
    assert len(set(times)) == len(times)


@pytest.mark.parametrize("runtime", [None, 0.0, -1.0, float("nan"), float("inf")])
def test_unknown_or_bogus_runtime_gives_the_plain_schedule(runtime: float | None) -> None:
    plain = list(itertools.islice(poll_delays(), 50))
    assert list(itertools.islice(poll_delays(runtime), 50)) == plain
