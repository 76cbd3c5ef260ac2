"""Running a producer one step ahead of its consumer, in a thread, so that both use a core.

Cutting rows (msgspec, holding the GIL), parsing them (``pyarrow.json``, without it) and writing Parquet
(without it) overlap this way: while one piece is parsed, the next is cut and the previous one written.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterable
from typing import TypeVar

__all__ = ["prefetch"]

T = TypeVar("T")

_DONE = object()
_POLL_SECONDS = 0.1


def prefetch(source: Iterable[T], depth: int = 1) -> Generator[T, None, None]:
    """The items of ``source``, produced by a thread that stays up to ``depth`` items ahead.

    An exception raised by ``source`` is raised here, at the position it occurred. If the consumer stops
    early (closes this generator), the thread stops at its next item.
    """
    items: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item: object) -> bool:
        """Queue ``item`` unless the consumer has gone; ``False`` once it has."""
        while not stop.is_set():
            try:
                items.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in source:
                if not offer(item):
                    return
            offer(_DONE)
        except BaseException as error:  # handed to the consumer, which raises it where it occurred
            offer(_Failure(error))

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
