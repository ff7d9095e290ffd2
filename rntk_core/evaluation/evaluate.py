"""The evaluation pipeline: a Dataset and an EvaluationConfig in, a typed Report (and files) out.

The steps of ``PROTOCOL-uci.md``, top to bottom in :func:`evaluate`:

1. Load (:func:`evaluate_path`), then :func:`resolve_splits` (predefined or stratified) and
   :func:`normalise` (x_scale).
2. Plan: every family's candidates and the kernels they need, computed
   (:func:`.kernels.build_plan`: one :func:`rntk_core.gram_grid` call per grid source).
3. Validate: each distinct (kernel, C) is fitted once on the training indices and scored on
   the validation indices (families that share a kernel share the fit), by the job's solver
   (:func:`.solvers.strategy.choose_solver`, chosen once).
4. Select: the ties of the best validation accuracy, minus the last if they are even.
5. Test: each chosen (kernel, C) is fitted on each fold; the chosen configurations vote.
6. Report: :func:`.report.assemble.assemble`, the Gram matrices under ``gram/``, and
   report.json / .csv / .html; typed as :class:`.report.model.Report` where it is made.

:func:`evaluate` returns the :class:`Report`; :func:`evaluate_dataset` is the same run with
keyword hooks, returning the report as the dict report.json holds.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Literal, Mapping, Sequence

import numpy as np

from .config import EvaluationConfig
from .datasets import Dataset, content_sha256, load_dataset
from .files import json_safe
from .kernels import RECURRENT_SPECS, ChunkedKernelStore, Placement, Plan, build_plan, check_families
from .progress import SILENT, OnProgress, Progress, ShouldCancel
from .protocol import (
    FamilyOutcome,
    Selection,
    accuracy,
    majority_vote,
    normalise,
    resolve_splits,
    select_ties,
    selection_pairs,
    wanted_fits,
)
from .report.assemble import (
    Evaluation,
    assemble,
    assemble_landmarks,
    draw_figures,
    save_report,
    utc,
    write_arrays,
    write_landmarks,
    write_splits,
)
from .report.model import Report
from .solvers.fit import FitCache
from .solvers.strategy import SolverStrategy, choose_solver, fit_splits

__all__ = ["Grams", "RunOptions", "evaluate", "evaluate_dataset", "evaluate_path", "score_folds",
           "validate"]

#: Which recurrent Gram matrices ``gram/`` gets: the selected ones, every one of the grid, none.
Grams = Literal["selected", "all", "none"]


@dataclass(frozen=True)
class RunOptions:
    """How one evaluation runs, as opposed to what it computes: no field changes a result.

    Attributes:
        progress: tqdm bars, the ``on_progress(stage, done, total)`` callback and the
            ``should_cancel`` poll (between tiles, DTW blocks, interior-point chunks, every
            0.5 s while libsvm fits run and between the report's figures; once it returns
            True the run stops with :class:`Cancelled`, abandoning running libsvm fits at
            nice 19).
        n_jobs: SVM worker threads (default: every core).
        memory_budget: device bytes for the engine's working set (default: the engine's).
        placement: where the kernels live (the recurrent ones, and RBF, POLY and MLP's):
            ``"device"`` keeps them there for the whole job (the JAX solver gathers, solves
            and predicts there; libsvm fits copy a kernel to the host once per fit job,
            ``gram/`` files once each), ``"host"`` brings every grid to the host, ``"auto"``
            (:func:`.kernels.resolve_placement`) the device on a GPU when the grids (or one
            chunk of them, see ``grid_memory``) fit half its free memory. Recorded as
            ``solver.placement``.
        grid_memory: device bytes the recurrent grids may hold at once (default: half the
            free device memory). Larger grids are computed, solved and dropped a chunk of
            (sigma_u, sigma_b) pairs at a time, again for the test folds' chosen kernels;
            recorded as ``solver.grid_chunks``. Only for kernels on the device.
        load_seconds: time already spent loading, reported as ``timings["load"]``.
        started_at: when the run began (epoch seconds; default: now minus ``load_seconds``).
        provenance: recorded in the report's ``reproducibility`` (e.g. ``dataset_sha256``,
            ``command`` or ``request``, ``job_id``).
        block_runner: where a landmark job's blocks, or a ``dense_blocks`` job's, run
            (:class:`.scale.blocks.BlockRunner`; default: this process). One that fans them out raises
            :class:`.scale.blocks.FannedOut` out of :func:`evaluate`.
        work_dir: where a landmark job keeps its selection scores and blocks between calls,
            so that a second call resumes it (after its blocks ran elsewhere); a dense job
            with ``dense_blocks`` keeps its grids' blocks there.
        dense_blocks: a dense job computes its recurrent grids as row blocks by
            ``block_runner`` into zarr stores in ``work_dir`` (in memory without one), and its
            fits read the kernels from there (:mod:`.scale.dense`); the report's
            ``scale.blocks`` counts them.
    """

    progress: Progress = SILENT
    n_jobs: int | None = None
    memory_budget: int | None = None
    placement: Placement = "auto"
    grid_memory: int | None = None
    load_seconds: float = 0.0
    started_at: float | None = None
    provenance: Mapping[str, Any] = field(default_factory=dict)
    block_runner: Any = None
    work_dir: Path | None = None
    dense_blocks: bool = False


def evaluate(
    dataset: Dataset,
    config: EvaluationConfig,
    *,
    families: Sequence[str] | None = None,
    out_dir: str | Path | None = None,
    max_iter: int = -1,
    dtype: str = "float32",
    grams: Grams = "selected",
    run: RunOptions = RunOptions(),
) -> Report:
    """Run the protocol on one dataset and return its report.

    Args:
        dataset: the loaded dataset.
        config: grids and protocol.
        families: overrides ``config.families``; may also name the derived ``"RNN-P-CK"``.
        out_dir: if given, writes ``splits.npz``, ``gram/*.npy`` (see ``grams``) and
            report.json / report.csv / report.html there.
        max_iter: libsvm's iteration limit (-1: none); fits that hit it are reported.
        dtype: the recurrent kernels' precision, ``"float32"`` (the engine's default) or
            ``"float64"`` (about 2.5x the kernel time on CPU; removes float32's near-tie flips
            against the float64 reference table).
        grams: which recurrent Gram matrices ``out_dir/gram/`` gets: the selected ones, every
            one of the grid, or none (the report's picture then shows none either).
        run: hooks, resources and provenance (:class:`RunOptions`).
    """
    start = time.perf_counter()
    started_at = time.time() - run.load_seconds if run.started_at is None else run.started_at
    timings = {"load": run.load_seconds}
    progress = run.progress
    names = check_families(list(families) if families is not None else list(config.families))
    if config.landmarks > 0:
        return _evaluate_landmarks(dataset, config, names, out_dir, dtype, run, timings, start, started_at)
    splits, protocol = resolve_splits(dataset, config.protocol, config.seed)
    selection = selection_pairs(splits, dataset.y, dataset.classes, config.cv_folds, config.seed)
    train_columns = np.unique(np.concatenate(
        [fit for fit, _ in selection.pairs] + [train for train, _ in splits.folds]))
    X, x_scale = normalise(dataset.X, config.normalize)
    from .report.timing import StageClock  # the kernels stage's steps, for the families' seconds

    clock = StageClock.around(progress)
    blocks = _dense_blocks(config, run)
    with _timed(timings, "kernels"):
        plan = build_plan(names, X, dataset.lengths, config, max_iter=max_iter, progress=clock,
                          dtype=dtype, memory_budget=run.memory_budget, train_columns=train_columns,
                          placement=run.placement, grid_memory=run.grid_memory, grids=blocks)
    solver = choose_solver(config.solver)
    fits: FitCache = {}
    fit_seconds: dict = {}  # busy seconds per (split, model), for the families' seconds
    with _timed(timings, "validation"):
        outcomes = validate(plan, dataset.y, selection, fits, solver=solver, n_jobs=run.n_jobs,
                            progress=progress, seconds=fit_seconds)
    with _timed(timings, "test"):
        score_folds(plan, outcomes, dataset.y, dataset.n_classes, splits.folds, fits, solver=solver,
                    n_jobs=run.n_jobs, progress=progress, seconds=fit_seconds)

    evaluation = Evaluation(dataset, config, names, protocol, splits, selection, x_scale, plan, outcomes,
                            fits, solver, kernel_marks=clock.marks.get("kernels", []), fit_seconds=fit_seconds)
    report = assemble(evaluation, timings, run.provenance, started_at)
    if blocks is not None and blocks.summary is not None:
        report["scale"]["blocks"] = blocks.summary
    out = Path(out_dir) if out_dir is not None else None
    gram = write_arrays(report, evaluation, out, X, grams) if out is not None else None
    if isinstance(plan.store, ChunkedKernelStore):
        plan.store.release()
        report["solver"]["grid_chunks"] = plan.store.describe()  # the Gram files' chunks too
    labels = dataset.classes[dataset.y]
    drawn = None
    if out is not None:  # the figures are most of the report's time: drawn before the total
        progress.report("report", 0, 1)
        with _timed(timings, "report"):
            drawn = draw_figures(report, gram, labels, check=progress.check)
    timings["total"] = _total_seconds(run, start, started_at)
    report["reproducibility"]["finished_at"] = utc(time.time())
    typed = Report.model_validate(json_safe(report))  # a report that breaks the schema fails here
    if out is not None:
        save_report(_as_json(typed), out, gram, labels, drawn)
    return typed


def _evaluate_landmarks(dataset: Dataset, config: EvaluationConfig, names: list[str], out_dir: str | Path | None,
                       dtype: str, run: RunOptions, timings: dict[str, float], start: float,
                       started_at: float) -> Report:
    """The landmark path (``config.landmarks`` > 0): :mod:`.scale.pipeline`, then the report."""
    from .scale.pipeline import evaluate_landmarks

    out = Path(out_dir) if out_dir is not None else None
    parts = evaluate_landmarks(dataset, config, families=names, out_dir=out, dtype=dtype,
                               memory_budget=run.memory_budget, on_progress=run.progress.report,
                               check_cancel=run.progress.check, work_dir=run.work_dir, runner=run.block_runner)
    timings.update(parts["timings"])
    report = assemble_landmarks(dataset, config, names, parts, timings, run.provenance, started_at)
    labels = dataset.classes[dataset.y]
    drawn = None
    if out is not None:
        report["reproducibility"]["splits_file"] = write_splits(out, dataset, parts["splits"], parts["X"],
                                                                parts["x_scale"])
        report["scale"]["files"] = write_landmarks(out, parts["landmarks"])
        run.progress.report("report", 0, 1)
        with _timed(timings, "report"):
            drawn = draw_figures(report, None, labels, check=run.progress.check)
    timings["total"] = _total_seconds(run, start, started_at)
    report["reproducibility"]["finished_at"] = utc(time.time())
    typed = Report.model_validate(json_safe(report))
    if out is not None:
        save_report(_as_json(typed), out, None, labels, drawn)
    return typed


def _dense_blocks(config: EvaluationConfig, run: RunOptions) -> Any:
    """The grids' row blocks of a dense run with ``dense_blocks`` (:class:`.scale.dense.DenseBlocks`), else None."""
    if not run.dense_blocks:
        return None
    from .scale.dense import DenseBlocks

    return DenseBlocks(run.block_runner, run.work_dir, config.block_rows, run.progress.report)


def _total_seconds(run: RunOptions, start: float, started_at: float) -> float:
    """The run's seconds; with a ``work_dir`` from ``started_at``, so that a resumed run's
    total spans its earlier part too (and the blocks that ran meanwhile)."""
    if run.work_dir is not None:
        return time.time() - started_at
    return run.load_seconds + time.perf_counter() - start


def validate(plan: Plan, y: np.ndarray, selection: Selection, cache: FitCache, *, solver: SolverStrategy,
             n_jobs: int | None = None, progress: Progress = SILENT,
             seconds: dict[tuple[str, Any], float] | None = None) -> dict[str, FamilyOutcome]:
    """Score every candidate (its mean accuracy over the selection's pairs) and choose each
    family's ties.

    Baseline models are queued first: their large-C fits are the slowest (RBF at C = 1e6 takes
    over a minute on yeast, a recurrent kernel under a second), so they should not start last.
    ``seconds``: each fit job's busy seconds are added to it (:func:`.solvers.strategy.fit_splits`).
    """
    families = sorted(plan.candidates, key=lambda family: family in RECURRENT_SPECS)
    wanted = wanted_fits([c for family in families for c in plan.candidates[family]])
    requests = {selection.split_name(k): (fit, score, wanted) for k, (fit, score) in enumerate(selection.pairs)}
    fit_splits(plan.models, y, requests, cache, solver=solver, n_jobs=n_jobs, phase="validation fits",
               progress=progress, residency=plan.residency, seconds=seconds)
    outcomes = {}
    for family, candidates in plan.candidates.items():
        scores = [
            float(np.mean([accuracy(cache[(selection.split_name(k), c.model, c.C)].predictions, y[score])
                           for k, (_, score) in enumerate(selection.pairs)]))
            for c in candidates
        ]
        outcomes[family] = FamilyOutcome(scores, select_ties(scores))
    return outcomes


def score_folds(plan: Plan, outcomes: Mapping[str, FamilyOutcome], y: np.ndarray, n_classes: int,
                folds: Sequence[tuple[np.ndarray, np.ndarray]], cache: FitCache, *, solver: SolverStrategy,
                n_jobs: int | None = None, progress: Progress = SILENT,
                seconds: dict[tuple[str, Any], float] | None = None) -> None:
    """Fit the chosen candidates on each fold, vote, and store the fold accuracies (``seconds``:
    as in :func:`validate`)."""
    chosen = {family: [plan.candidates[family][i] for i in outcome.chosen]
              for family, outcome in outcomes.items()}
    wanted = wanted_fits([c for family in chosen.values() for c in family])
    requests = {f"fold{k}": (train, test, wanted) for k, (train, test) in enumerate(folds)}
    fit_splits(plan.models, y, requests, cache, solver=solver, n_jobs=n_jobs, phase="test folds",
               progress=progress, residency=plan.residency, seconds=seconds)
    for family, outcome in outcomes.items():
        outcome.fold_accuracies = []
        for k, (_, test) in enumerate(folds):
            votes = np.stack([cache[(f"fold{k}", c.model, c.C)].predictions for c in chosen[family]])
            outcome.fold_accuracies.append(accuracy(majority_vote(votes, n_classes), y[test]))


def evaluate_dataset(
    dataset: Dataset,
    config: EvaluationConfig,
    *,
    families: Sequence[str] | None = None,
    out_dir: str | Path | None = None,
    progress: bool = False,
    on_progress: OnProgress | None = None,
    should_cancel: ShouldCancel | None = None,
    n_jobs: int | None = None,
    max_iter: int = -1,
    dtype: str = "float32",
    load_seconds: float = 0.0,
    grams: Grams = "selected",
    memory_budget: int | None = None,
    provenance: Mapping[str, Any] | None = None,
    started_at: float | None = None,
    placement: Placement = "auto",
    grid_memory: int | None = None,
) -> dict[str, Any]:
    """:func:`evaluate` with its run options as keywords (``progress``: show tqdm bars; the
    others as in :class:`RunOptions`); the report as the dict report.json holds."""
    hooks = Progress(bars=progress, on_progress=on_progress, should_cancel=should_cancel)
    run = RunOptions(progress=hooks, n_jobs=n_jobs, memory_budget=memory_budget, placement=placement,
                     grid_memory=grid_memory, load_seconds=load_seconds, started_at=started_at,
                     provenance=dict(provenance or {}))
    report = evaluate(dataset, config, families=families, out_dir=out_dir, max_iter=max_iter, dtype=dtype,
                      grams=grams, run=run)
    return _as_json(report)


def evaluate_path(path: str | Path, config: EvaluationConfig, **options: Any) -> dict[str, Any]:
    """Load a dataset (UCI folder / zip, CSV, NPZ, .ts) and :func:`evaluate_dataset` it."""
    start = time.perf_counter()
    dataset = load_dataset(path, features_per_step=config.features_per_step)
    with Progress(bars=options.get("progress", False)).stage("load", 1) as counter:  # shown once it succeeded
        counter.update()
    provenance = {"dataset_sha256": content_sha256(path), **dict(options.pop("provenance", None) or {})}
    return evaluate_dataset(dataset, config, load_seconds=time.perf_counter() - start,
                            provenance=provenance, **options)


def _as_json(report: Report) -> dict[str, Any]:
    """The report as report.json holds it: the fields it was given, JSON types."""
    return report.model_dump(mode="json", exclude_unset=True)


@contextmanager
def _timed(timings: dict[str, float], phase: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[phase] = timings.get(phase, 0.0) + time.perf_counter() - start
