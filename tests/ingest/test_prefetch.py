"""The prefetch helper: order, errors at their position, and a thread that stops when the consumer does."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from dagster_iwatch.prefetch import prefetch


def test_items_come_in_order_from_another_thread() -> None:
    seen: list[str] = []

    def source() -> Iterator[int]:
        for number in range(100):
            seen.append(threading.current_thread().name)
            yield number

    assert list(prefetch(source(), depth=3)) == list(range(100))
    assert set(seen) == {"iwatch-prefetch"}


def test_an_error_is_raised_where_it_occurred() -> None:
    def source() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("boom")

    items = prefetch(source())
    assert next(items) == 1
    assert next(items) == 2
    with pytest.raises(ValueError, match="boom"):
        next(items)


def test_closing_early_stops_the_producer() -> None:
    produced: list[int] = []

    def source() -> Iterator[int]:
        for number in range(10_000):
            produced.append(number)
            yield number

    items = prefetch(source(), depth=1)
    assert next(items) == 0
    items.close()
    assert not any(thread.name == "iwatch-prefetch" and thread.is_alive() for thread in threading.enumerate())
    assert len(produced) < 10
