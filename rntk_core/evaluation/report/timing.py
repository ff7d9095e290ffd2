"""Seconds per family: the report's ``families[<name>].seconds``, and the clock they come from.

The evaluation times three phases (``timings``: kernels, validation, test). Each phase's wall
time is divided among the families, so the families' seconds of a phase add up to it:

- kernels: :class:`StageClock` records when the ``kernels`` stage of
  :func:`..kernels.build_plan` advanced. It advances once per recurrent grid source, then once
  per baseline family, in the families' order: the interval before each baseline's step is
  that baseline's (its kernel; 1-NN computes its distances, DTW included, at its first fit,
  so they count in validation), everything before them is the recurrent grids, which every
  recurrent family reads and which are split evenly among them (:data:`ATTRIBUTION`). Grids
  too large for the device are computed as the fits ask for them, so they count in the fits.
- validation and test: :func:`..solvers.strategy.fit_splits` records each fit job's busy
  seconds by (split, model). A model that several families fit on a split (a kernel shared by
  RNN-P and RNN-P-CK, say) is split evenly among them; the phase's wall time is then divided
  in proportion to each family's busy seconds (fits run in parallel threads, so busy seconds
  may add up to more than the wall time).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Hashable, Iterator, Mapping, Sequence

from ..progress import Counter, Progress

__all__ = ["ATTRIBUTION", "PHASES", "StageClock", "describe_seconds", "family_seconds"]

#: The report's ``seconds_attribution``: how shared work was divided.
ATTRIBUTION = ("Each phase's wall time (timings: kernels, validation, test) is divided among the families. "
               "Kernels: each baseline gets the time of its own kernel; the recurrent grids, which the "
               "recurrent families share, are split evenly among those families. Validation and test: in "
               "proportion to the busy seconds of each family's SVM / forest / 1-NN fits (1-NN's distances, "
               "DTW included, are computed at its first validation fit), a fit that several families share "
               "split evenly among them.")

PHASES = ("kernels", "validation", "test")


@dataclass(frozen=True)
class StageClock(Progress):
    """A :class:`Progress` that also records when each stage began and each unit finished.

    ``marks[stage]``: ``[start, t_1, ..., t_n]`` (``time.perf_counter`` seconds), one ``t`` per
    unit of the stage (a stage opened twice appends to the same list).
    """

    marks: dict[str, list[float]] = field(default_factory=dict, compare=False)

    @classmethod
    def around(cls, progress: Progress) -> "StageClock":
        """A clock with ``progress``'s hooks (bars, callback, cancel check)."""
        return cls(bars=progress.bars, on_progress=progress.on_progress, should_cancel=progress.should_cancel)

    @contextmanager
    def stage(self, name: str, total: int) -> Iterator[Counter]:
        marks = self.marks.setdefault(name, [])
        with super().stage(name, total) as counter:
            marks.append(time.perf_counter())
            yield _MarkedCounter(counter, marks)


class _MarkedCounter:
    """A :class:`Counter` that records the time of every unit it is told of."""

    def __init__(self, counter: Counter, marks: list[float]) -> None:
        self._counter, self._marks = counter, marks

    def update(self, count: int = 1) -> None:
        now = time.perf_counter()
        self._marks.extend([now] * max(count, 0))
        self._counter.update(count)

    def check(self) -> None:
        self._counter.check()


def family_seconds(
    families: Sequence[str], recurrent: Sequence[str], timings: Mapping[str, float],
    kernel_marks: Sequence[float], fit_seconds: Mapping[tuple[str, Hashable], float],
    users: Mapping[str, Mapping[Hashable, Sequence[str]]], validation_splits: Sequence[str],
) -> dict[str, dict[str, float]]:
    """``{family: {kernels, validation, test, total}}`` in seconds (see the module docstring).

    Args:
        families: every family, in the order the kernels were built.
        recurrent: those of them that read the recurrent grids.
        timings: the phases' wall times.
        kernel_marks: :class:`StageClock` marks of the ``kernels`` stage.
        fit_seconds: busy seconds per fit job key ``(split, model key)``.
        users: ``{"validation": {model: families}, "test": {model: families}}``: which families
            fit each model in each phase.
        validation_splits: the split names of the validation phase (the others are test folds).
    """
    shares: dict[str, dict[str, float]] = {phase: dict.fromkeys(families, 0.0) for phase in PHASES}
    _kernel_shares(shares["kernels"], families, recurrent, kernel_marks)
    for (split, model), seconds in fit_seconds.items():
        phase = "validation" if split in validation_splits else "test"
        owners = [family for family in users.get(phase, {}).get(model, ()) if family in shares[phase]]
        for family in owners:
            shares[phase][family] += seconds / len(owners)
    result = {family: {} for family in families}
    for phase in PHASES:
        wall = float(timings.get(phase, 0.0))
        total = sum(shares[phase].values())
        for family in families:
            part = shares[phase][family] / total if total > 0 else 1.0 / len(families)
            result[family][phase] = round(wall * part, 4)
    for family in families:
        result[family]["total"] = round(sum(result[family][phase] for phase in PHASES), 4)
    return result


def _kernel_shares(shares: dict[str, float], families: Sequence[str], recurrent: Sequence[str],
                   marks: Sequence[float]) -> None:
    """The kernels stage's intervals: the last one per baseline, the rest to the recurrent
    families evenly. Marks that do not fit that pattern leave every share 0 (then the phase
    is split evenly)."""
    baselines = [family for family in families if family not in recurrent]
    intervals = [later - earlier for earlier, later in zip(marks, marks[1:])]
    if len(intervals) < len(baselines) or (recurrent and len(intervals) == len(baselines)):
        return
    cut = len(intervals) - len(baselines)
    for family, seconds in zip(baselines, intervals[cut:]):
        shares[family] += seconds
    grids = sum(intervals[:cut])
    for family in recurrent:
        shares[family] += grids / len(recurrent)


def describe_seconds(seconds: Mapping[str, Any]) -> str:
    """``"12.3 s (kernels 10.0, validation 2.0, test 0.3)"`` for the page."""
    parts = ", ".join(f"{phase} {float(seconds[phase]):.2f}" for phase in PHASES if phase in seconds)
    total = seconds.get("total")
    return f"{float(total):.2f} s ({parts})" if total is not None else parts
