"""Running a producer one step ahead of its consumer, in a thread, so that both use a core.

Cutting rows (msgspec, holding the GIL), parsing them (``pyarrow.json``, without it) and writing Parquet
(without it) overlap this way: while one piece is parsed, the next is cut and the previous one written.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

__all__ = ["prefetch"]

T = TypeVar("T")

_DONE = object()
_POLL_SECONDS = 0.1


def prefetch(source: Iterable[T], depth: int = 1) -> Iterator[T]:
    """The items of ``source``, produced by a thread that stays up to ``depth`` items ahead.

    An exception raised by ``source`` is raised here, at the position it occurred. If the consumer stops
    early (closes this generator), the thread stops at its next item.
    """
    items: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in source:
                while not stop.is_set():
                    try:
                        items.put(item, timeout=_POLL_SECONDS)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            items.put(_DONE)
        except BaseException as error:
            items.put(_Failure(error))

    thread = threading.Thread(target=produce, name="iwatch-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        thread.join()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error
