"""Progress bars of the command line: the package's progress callback drawn with rich."""

from __future__ import annotations

import time

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichBars


class _RichTask:
    """One task of :class:`RichProgress`: a bar when its total is known, a line otherwise."""

    def __init__(self, owner: RichProgress, description: str, total: int | None) -> None:
        self.owner, self.description, self.t0 = owner, description, time.perf_counter()
        self.bar = owner.add_bar(description, total) if total else None
        if self.bar is None:
            owner.console.print(escape(description), highlight=False)

    def advance(self, n: int = 1) -> None:
        if self.bar is not None:
            self.owner.bars.advance(self.bar, n)  # type: ignore[union-attr]

    def close(self, note: str = "") -> None:
        if self.bar is not None:
            self.owner.remove_bar(self.bar)
            self.bar = None
        if note:
            seconds = time.perf_counter() - self.t0
            self.owner.console.print(f"  {escape(self.description)}: {escape(note)} ({seconds:.0f} s)", highlight=False)


class RichProgress:
    """The package's :class:`~hpa_classify.progress.Progress` drawn with rich on standard error."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.bars: RichBars | None = None
        self.open = 0

    def __call__(self, description: str, total: int | None) -> _RichTask:
        return _RichTask(self, description, total)

    def add_bar(self, description: str, total: int) -> int:
        if self.bars is None:
            self.bars = RichBars(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                TimeRemainingColumn(), console=self.console, transient=True,
            )
            self.bars.start()
        self.open += 1
        return self.bars.add_task(escape(description), total=total)

    def remove_bar(self, task: int) -> None:
        assert self.bars is not None
        self.bars.remove_task(task)
        self.open -= 1
        if self.open == 0:
            self.bars.stop()
            self.bars = None
