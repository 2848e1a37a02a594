"""Progress of long work, reported through a callback: the library never prints.

A function that does long work takes ``progress: Progress | None``. It opens
one task per phase with ``progress(description, total)`` and calls the task's
``advance(n)`` as items finish; ``None`` reports nothing. The command line
passes a :class:`Progress` that draws rich progress bars (``hpa_classify.cli``);
a notebook may pass its own, or :class:`LogProgress` to log each phase.

>>> seen = []
>>> class Recorder:
...     def __call__(self, description, total):
...         seen.append((description, total))
...         return NULL_TASK
>>> list(track(range(3), "counting", progress=Recorder()))
[0, 1, 2]
>>> seen
[('counting', 3)]
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Protocol, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class Task(Protocol):
    """One phase of work under way: advance it, close it when done (with a short result note)."""

    def advance(self, n: int = 1) -> None: ...

    def close(self, note: str = "") -> None: ...


class Progress(Protocol):
    """Opens a :class:`Task` for ``total`` items (None when unknown)."""

    def __call__(self, description: str, total: int | None) -> Task: ...


class _NullTask:
    def advance(self, n: int = 1) -> None:
        pass

    def close(self, note: str = "") -> None:
        pass


#: The task of ``progress=None``: does nothing.
NULL_TASK: Task = _NullTask()


def open_task(progress: Progress | None, description: str, total: int | None) -> Task:
    """``progress(description, total)``, or :data:`NULL_TASK` when ``progress`` is None."""
    return NULL_TASK if progress is None else progress(description, total)


def track(
    items: Iterable[T],
    description: str,
    total: int | None = None,
    progress: Progress | None = None,
) -> Iterator[T]:
    """Yield ``items``, advancing one task by one per item; the task closes at the end."""
    if total is None:
        try:
            total = len(items)  # type: ignore[arg-type]
        except TypeError:
            total = None
    task = open_task(progress, description, total)
    try:
        for item in items:
            yield item
            task.advance(1)
    finally:
        task.close()


class _LogTask:
    def __init__(self, description: str, total: int | None) -> None:
        self.description, self.total, self.done = description, total, 0
        log.info("%s ...", description)

    def advance(self, n: int = 1) -> None:
        self.done += n

    def close(self, note: str = "") -> None:
        log.info("%s: %d done%s", self.description, self.done, f"; {note}" if note else "")


class LogProgress:
    """A :class:`Progress` that logs the start and end of each phase at INFO level."""

    def __call__(self, description: str, total: int | None) -> Task:
        return _LogTask(description, total)
