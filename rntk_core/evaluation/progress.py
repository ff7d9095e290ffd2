"""Progress and cancel: the one protocol the evaluation's steps report through.

A step that takes long gets a :class:`Counter`: it calls ``update(count)`` as units of its
work finish and ``check()`` between them, which raises :class:`Cancelled` once the job was
cancelled. :class:`Progress` holds a job's hooks (tqdm bars, the caller's
:data:`OnProgress`, ``should_cancel``) and opens one counter per stage.

The engine and the leaf solvers take plain callbacks instead (:data:`OnCount`, ``(done,
total)`` like :func:`rntk_core.gram_grid`'s ``on_tile``), so they depend on none of this.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Protocol

from tqdm import tqdm

from .cancel import Cancelled

__all__ = ["SILENT", "Counter", "OnCount", "OnProgress", "Progress", "ShouldCancel"]

#: What a job's caller is told as each stage advances: ``(stage, done, total)``.
OnProgress = Callable[[str, int, int], None]
#: Progress inside one step, cumulative: ``(done, total)``.
OnCount = Callable[[int, int], None]
#: Polled between units of work; True stops the evaluation with :class:`Cancelled`.
ShouldCancel = Callable[[], bool]


class Counter(Protocol):
    """One stage's progress, as a step of the evaluation reports it."""

    def update(self, count: int = 1) -> None:
        """``count`` more units of the stage are done."""

    def check(self) -> None:
        """Raise :class:`Cancelled` if the job was cancelled."""


@dataclass(frozen=True)
class Progress:
    """Where a job's progress goes: tqdm bars on stderr and/or a callback, plus a cancel check."""

    bars: bool = False
    on_progress: OnProgress | None = None
    should_cancel: ShouldCancel | None = None

    def check(self) -> None:
        if self.should_cancel is not None and self.should_cancel():
            raise Cancelled("the evaluation was cancelled")

    def report(self, stage: str, done: int, total: int) -> None:
        """A stage without a bar (e.g. drawing the report): the callback only."""
        if self.on_progress is not None:
            self.on_progress(stage, done, total)

    @contextmanager
    def stage(self, name: str, total: int) -> Iterator[Counter]:
        """A counter of ``total`` units, shown as one bar; reports ``(name, 0, total)`` at once."""
        bar = tqdm(total=total, desc=name, unit="job", disable=not self.bars, leave=True,
                   dynamic_ncols=True)
        counter = _Stage(name, total, self, bar)
        try:
            counter.update(0)
            yield counter
        finally:
            bar.close()


#: No bars, no callback, never cancelled.
SILENT = Progress()


class _Stage:
    """A :class:`Counter`: advances the bar, reports (stage, done, total), checks cancel."""

    def __init__(self, name: str, total: int, progress: Progress, bar: tqdm) -> None:
        self.name, self.total, self.done = name, total, 0
        self.progress, self.bar = progress, bar

    def update(self, count: int = 1) -> None:
        self.done += count
        self.bar.update(count)
        self.progress.report(self.name, self.done, self.total)
        self.progress.check()

    def check(self) -> None:
        self.progress.check()
