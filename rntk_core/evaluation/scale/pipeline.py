"""The landmark evaluation: the paper's C-SVM protocol on Nystrom features, for large N.

    load -> splits -> select on a subsample -> chosen kernels on all rows, in blocks -> test

1. Selection. Hyperparameters are scored on a stratified subsample of the selection rows
   (at most ``selection_samples``): the same hold-out or CV pairs as the dense path, drawn
   from the subsample. Every grid kernel is computed there against M landmarks chosen from
   the subsample's training rows, turned into features, and fitted by the linear C-SVM at
   every C. Each family keeps its best configuration (ties: the first in the protocol's
   enumeration order, not a vote, so only one kernel per family is computed at full N).
2. Test. For each test fold, M landmarks are chosen from the fold's training rows; the chosen
   kernels' K(X, Z) is computed in row blocks into a zarr store (:mod:`.blocks`), turned into
   features, fitted on all the fold's training rows at the chosen C, and scored on its test rows.
3. The Nystrom approximation's relative Frobenius error is measured per chosen kernel on a
   sample of rows against a sample of columns, exact kernels computed by the engine.

Where the blocks run is the caller's :class:`~.blocks.BlockRunner`: in this process, or
fanned out over workers. With a ``work_dir`` the run can be resumed: stage 1's scores and
the blocks are kept there, so a second call (after the blocks ran elsewhere, or after a
killed worker) redoes neither, and the stores move into ``out_dir/scale/`` at the end.

Only recurrent families and RBF have landmark features; other families are refused.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from ..config import LANDMARK_FAMILIES
from ..protocol import Candidate, accuracy, normalise, resolve_splits, selection_pairs
from ..solvers.linear_svm import LinearTask, fit_predict_linear
from .blocks import (
    BlockInputs,
    BlockPlan,
    BlockRunner,
    InProcessRunner,
    StoreJob,
    input_files,
    kernel_rows,
    run_blocks,
    store_job,
)
from .landmarks import choose_landmarks, nystrom_map, relative_error, stratified_sample

__all__ = ["LANDMARK_FAMILIES", "evaluate_landmarks"]

#: Rows and columns of the sampled block on which the Nystrom error is measured.
ERROR_ROWS, ERROR_COLUMNS = 256, 1024


@dataclasses.dataclass(frozen=True)
class RbfKernel:
    """An RBF kernel on the dense RBF's rows (flattened, unequal lengths resampled), for the landmark path."""

    gamma: float

    def params(self) -> dict[str, Any]:
        return {"gamma": self.gamma}

    def name(self, family: str | None = None) -> str:
        return f"{family or 'RBF'}-gamma{self.gamma:g}"


def _rbf_rows(A: np.ndarray, B: np.ndarray, gamma: float) -> np.ndarray:
    A, B = A.reshape(A.shape[0], -1), B.reshape(B.shape[0], -1)
    distances = np.einsum("ij,ij->i", A, A)[:, None] + np.einsum("ij,ij->i", B, B)[None, :] - 2.0 * A @ B.T
    return np.exp(-gamma * np.maximum(distances, 0.0))


def candidates(families: Sequence[str], config: Any, n_steps: int, dtype: str) -> list[Candidate]:
    """Every family's configurations in the protocol's enumeration order."""
    from ..kernels import recurrent_candidates

    found: list[Candidate] = []
    for family in families:
        if family == "RBF":
            found += [Candidate("RBF", {"gamma": gamma}, C, RbfKernel(gamma))
                      for gamma, C in itertools.product(sorted(config.rbf_gamma), sorted(config.C))]
        elif family in LANDMARK_FAMILIES:
            found += recurrent_candidates(family, config, n_steps, dtype)
        else:
            raise ValueError(f"family {family!r} has no landmark features; with landmarks, use "
                             f"{', '.join(LANDMARK_FAMILIES)}")
    return found


class _Rows:
    """K(rows, Z) for the kernels of one job stage, grouped by the engine pass that gives them."""

    def __init__(self, X: np.ndarray, lengths: np.ndarray | None, dtype: str, memory_budget: int | None) -> None:
        self.X, self.lengths, self.dtype, self.memory_budget = X, lengths, dtype, memory_budget
        self._flat: np.ndarray | None = None

    @property
    def flat(self) -> np.ndarray:
        """The rows RBF reads, as the dense path's RBF does (unequal lengths resampled)."""
        if self._flat is None:
            from ..kernels import baseline_rows

            self._flat = baseline_rows(self.X, self.lengths)
        return self._flat

    def inputs_of_blocks(self) -> BlockInputs:
        return BlockInputs(self.X, self.lengths, self.memory_budget)

    def inputs(self, model: Any) -> np.ndarray:
        order = getattr(model, "order", None)
        return self.X if order is None else self.X[:, list(order)]

    def plan(self, models: Sequence[Any], block_rows: int) -> BlockPlan:
        first = models[0]
        return BlockPlan(kernels=tuple(tuple(model.key) for model in models),
                         layers=max(model.layers for model in models), sigma_w=first.sigma_w,
                         sigma_v=1.0, dtype=self.dtype, block_rows=block_rows)

    def block(self, models: Sequence[Any], rows: np.ndarray, columns: np.ndarray) -> list[np.ndarray]:
        """K(X[rows], X[columns]) for each model (same grid source), as float64."""
        if isinstance(models[0], RbfKernel):
            return [_rbf_rows(self.flat[rows], self.flat[columns], model.gamma) for model in models]
        lengths = self.lengths
        values = kernel_rows(self.inputs(models[0])[rows], self.inputs(models[0])[columns],
                             self.plan(models, max(1, rows.size)),
                             lengths=None if lengths is None else lengths[rows],
                             z_lengths=None if lengths is None else lengths[columns],
                             memory_budget=self.memory_budget)
        return [values[k] * model.sigma_v ** 2 for k, model in enumerate(models)]


def _groups(models: Sequence[Any]) -> dict[Any, list[Any]]:
    """Models by what one engine pass computes together: (sigma_w, order, dtype), or RBF."""
    grouped: dict[Any, list[Any]] = {}
    for model in models:
        source = ("rbf",) if isinstance(model, RbfKernel) else model.grid_source()
        grouped.setdefault(source, []).append(model)
    return grouped


def _features(rows: _Rows, models: Sequence[Any], wanted: np.ndarray, landmarks: np.ndarray,
              floor: float) -> dict[Any, np.ndarray]:
    """Features of the ``wanted`` rows for each model, from landmarks among them (in memory)."""
    features = {}
    position = np.searchsorted(wanted, landmarks)  # the landmarks are among the wanted rows
    for group in _groups(models).values():
        for model, k_xz in zip(group, rows.block(group, wanted, landmarks)):
            features[model] = nystrom_map(k_xz[position], floor=floor).features(k_xz)
    return features


def _selection_rows(splits: Any, y: np.ndarray, classes: np.ndarray, config: Any) -> tuple[Any, np.ndarray]:
    """The selection pairs on a stratified subsample of at most ``selection_samples`` rows."""
    budget = config.selection_samples
    if splits.selection == "cv":
        sub = np.sort(np.asarray(splits.train)[stratified_sample(y[splits.train], budget, seed=config.seed)])
        selection = selection_pairs(dataclasses.replace(splits, train=sub), y, classes, config.cv_folds, config.seed)
    else:
        total = len(splits.train) + len(splits.validation)
        share = min(1.0, budget / max(total, 1))
        fit = np.asarray(splits.train)[stratified_sample(y[splits.train], int(round(share * len(splits.train))),
                                                          seed=config.seed)]
        score = np.asarray(splits.validation)[stratified_sample(
            y[splits.validation], int(round(share * len(splits.validation))), seed=config.seed + 1)]
        selection = dataclasses.replace(selection_pairs(splits, y, classes, config.cv_folds, config.seed),
                                        pairs=[(np.sort(fit), np.sort(score))])
    rows = np.unique(np.concatenate([np.concatenate(pair) for pair in selection.pairs]))
    return selection, rows


def _landmarks(rows: np.ndarray, y: np.ndarray, X: np.ndarray, config: Any, seed: int) -> np.ndarray:
    chosen = choose_landmarks(y[rows], config.landmarks, seed=seed, method=config.landmark_method,
                              X=X[rows] if config.landmark_method == "kmeans++" else None)
    return rows[chosen]


def _validate(found: Sequence[Candidate], features: Mapping[Any, np.ndarray], wanted: np.ndarray,
              y: np.ndarray, selection: Any, solver: str, check_cancel: Callable[[], None] | None,
              on_fit: Callable[[], None], seconds: dict[tuple, float]) -> tuple[dict[tuple, float], Counter]:
    """Mean validation accuracy of every (model, C) over the selection pairs, and the fits
    by solver; each model's fit seconds go to ``seconds[("selection", model)]``."""
    fits: Counter = Counter()
    Cs_of: dict[Any, list[float]] = {}
    for candidate in found:
        Cs_of.setdefault(candidate.model, []).append(candidate.C)
    scores: dict[tuple, list[float]] = {}
    for model, Cs in Cs_of.items():
        started = time.perf_counter()
        phi = features[model]
        for fit, score in selection.pairs:
            fit_at, score_at = np.searchsorted(wanted, fit), np.searchsorted(wanted, score)
            [result] = fit_predict_linear([LinearTask(phi[fit_at], y[fit], phi[score_at], Cs)],
                                          solver=solver, check_cancel=check_cancel)
            fits.update(fit.solver for fit in result.values())
            for C in Cs:
                scores.setdefault((model, C), []).append(accuracy(result[C].predictions, y[score]))
        seconds[("selection", model)] = time.perf_counter() - started
        on_fit()
    return {key: float(np.mean(values)) for key, values in scores.items()}, fits


def _nystrom_error(rows: _Rows, model: Any, phi_train: np.ndarray, train: np.ndarray, seed: int) -> float:
    """The approximation's relative error on sampled training rows x columns (``phi_train``:
    the features of ``train``'s rows, in its order)."""
    rng = np.random.default_rng(seed)
    at_rows = np.sort(rng.choice(train.size, min(ERROR_ROWS, train.size), replace=False))
    at_columns = np.sort(rng.choice(train.size, min(ERROR_COLUMNS, train.size), replace=False))
    [exact] = rows.block([model], train[at_rows], train[at_columns])
    return relative_error(exact, phi_train[at_rows], phi_train[at_columns])


@dataclasses.dataclass
class _Run:
    """One landmark evaluation's inputs and hooks, shared by its stages."""

    rows: _Rows
    y: np.ndarray
    config: Any
    floor: float
    block_rows: int
    out_dir: Path | None
    report: Callable[[str, int, int], None]
    check_cancel: Callable[[], None] | None
    work_dir: Path | None = None
    runner: BlockRunner = dataclasses.field(default_factory=InProcessRunner)
    fits: Counter = dataclasses.field(default_factory=Counter)  # solver -> fits
    #: busy seconds per (split, model): "selection", or "fold<k>" (features and fit)
    fit_seconds: dict = dataclasses.field(default_factory=dict)


def evaluate_landmarks(
    dataset: Any,
    config: Any,
    *,
    families: Sequence[str],
    out_dir: Path | None = None,
    dtype: str = "float32",
    memory_budget: int | None = None,
    on_progress: Callable[[str, int, int], None] | None = None,
    check_cancel: Callable[[], None] | None = None,
    block_rows: int | None = None,
    floor: float = 1e-10,
    work_dir: Path | None = None,
    runner: BlockRunner | None = None,
) -> dict[str, Any]:
    """The landmark protocol on ``dataset``; returns the report's parts (families,
    configurations, selection, scale, timings) for :mod:`..evaluate` to assemble.

    ``work_dir``: where stage 1's scores and the blocks are kept between calls (see the
    module's docstring); ``runner``: where the blocks run (default: this process). A runner
    that sends them elsewhere raises :class:`~.blocks.FannedOut` out of this call."""
    splits, protocol = resolve_splits(dataset, config.protocol, config.seed)
    X, x_scale = normalise(dataset.X, config.normalize)
    run = _Run(_Rows(X, dataset.lengths, dtype, memory_budget), dataset.y, config, floor,
               block_rows or int(config.block_rows), out_dir,
               lambda stage, done, total: on_progress(stage, done, total) if on_progress else None, check_cancel,
               Path(work_dir) if work_dir is not None else None, runner or InProcessRunner())
    found = candidates(families, config, dataset.n_steps, dtype)
    selection, wanted = _selection_rows(splits, dataset.y, dataset.classes, config)
    timings: dict[str, float] = {}
    scores, landmark_rows = _select(run, found, selection, wanted, timings)
    chosen: dict[str, Candidate] = {}
    for candidate in found:  # the first of the best, in enumeration order
        best = chosen.get(candidate.family)
        if best is None or scores[(candidate.model, candidate.C)] > scores[(best.model, best.C)]:
            chosen[candidate.family] = candidate
    test_started = time.perf_counter()
    fold_accuracy, predictions, errors, blocks = _test(run, splits, chosen, landmark_rows)
    timings["test"] = time.perf_counter() - test_started
    names = {c.model: c.model.name(family) for family, c in chosen.items()}
    tested = {c.model: [f for f, d in chosen.items() if d.model == c.model] for c in chosen.values()}
    return {
        "splits": splits,
        "protocol": protocol,
        "selection": {**selection.describe(), "samples": int(wanted.size)},
        "x_scale": x_scale,
        "X": X,  # normalised, for splits.npz
        "configurations": [{"family": c.family, **_configuration(c), "validation_accuracy": scores[(c.model, c.C)]}
                           for c in found],
        "families": {family: {"chosen": [_configuration(c)],
                              "validation_accuracy": scores[(c.model, c.C)],
                              "test_accuracy": float(np.mean(fold_accuracy[family])),
                              "fold_accuracies": fold_accuracy[family]}
                     for family, c in chosen.items()},
        "landmarks": landmark_rows,
        "scale": {"method": "landmarks", "landmarks": int(config.landmarks),
                  "landmark_method": config.landmark_method,
                  "nystrom_error": {names[model]: round(error, 6) for model, error in errors.items()},
                  "nystrom_error_max": round(max(errors.values()), 6) if errors else None,
                  "selection_samples": int(wanted.size),
                  "training_samples": [int(len(train)) for train, _ in splits.folds],
                  "blocks": {"rows_per_block": run.block_rows, **blocks},
                  **({"stores": _stores_described(chosen, len(splits.folds), names, tested)}
                     if out_dir is not None else {})},
        "fits": run.fits,
        "timings": timings,
        "predictions": predictions,  # per family, per test fold
        "fit_seconds": run.fit_seconds,
        "users": {"validation": {c.model: [f for f in families if any(d.model == c.model and d.family == f
                                                                       for d in found)] for c in found},
                  "test": tested},
    }


def _select(run: _Run, found: Sequence[Candidate], selection: Any, wanted: np.ndarray,
            timings: dict[str, float]) -> tuple[dict[tuple, float], dict[str, np.ndarray]]:
    """Stage 1: every grid kernel's features on the subsample, and every (kernel, C) scored.
    Kept in ``work_dir/selection.json`` and read back from there by a resumed run."""
    saved = run.work_dir / "selection.json" if run.work_dir is not None else None
    if saved is not None and saved.exists():
        state = json.loads(saved.read_text())
        if len(state["scores"]) == len(found):
            timings.update(state["timings"])
            # An int: written before fits were counted by solver, all by the interior point.
            run.fits.update(state["fits"] if isinstance(state["fits"], dict) else {"linear": state["fits"]})
            scores = {(c.model, c.C): score for c, score in zip(found, state["scores"])}
            models = list(dict.fromkeys(candidate.model for candidate in found))
            run.fit_seconds.update({("selection", model): seconds
                                    for model, seconds in zip(models, state.get("model_seconds", []))})
            return scores, {"selection": np.asarray(state["landmarks"], dtype=np.int64)}
    started = time.perf_counter()
    models = list(dict.fromkeys(candidate.model for candidate in found))
    fit_rows = np.unique(np.concatenate([fit for fit, _ in selection.pairs]))
    landmarks = _landmarks(fit_rows, run.y, run.rows.X, run.config, run.config.seed)
    run.report("kernels", 0, 1)
    features = _features(run.rows, models, wanted, landmarks, run.floor)
    run.report("kernels", 1, 1)
    timings["kernels"] = time.perf_counter() - started
    done = iter(range(1, len(models) + 1))
    scores, fits = _validate(found, features, wanted, run.y, selection, run.config.solver, run.check_cancel,
                             lambda: run.report("validation", next(done), len(models)), run.fit_seconds)
    run.fits.update(fits)
    timings["validation"] = time.perf_counter() - started - timings["kernels"]
    if saved is not None:
        saved.parent.mkdir(parents=True, exist_ok=True)
        temporary = saved.with_suffix(".tmp")
        temporary.write_text(json.dumps({
            "scores": [scores[(c.model, c.C)] for c in found], "landmarks": landmarks.tolist(),
            "fits": fits, "timings": {key: timings[key] for key in ("kernels", "validation")},
            "model_seconds": [run.fit_seconds[("selection", model)] for model in models]}))
        os.replace(temporary, saved)
    return scores, {"selection": landmarks}


def _test(run: _Run, splits: Any, chosen: Mapping[str, Candidate],
          landmark_rows: dict[str, np.ndarray]) -> tuple[dict[str, list[float]], dict[str, list[np.ndarray]],
                                                         dict[Any, float], dict[str, Any]]:
    """Stage 2: the chosen kernels on every row in blocks (every fold's blocks first, by the
    runner), then per test fold each kernel fitted and scored. Returns the fold accuracies and
    the test predictions per family, the Nystrom error per kernel, and the blocks (total and
    by worker)."""
    y, config = run.y, run.config
    finals = _finals(chosen)
    fold_landmarks = []
    for fold, (train, _) in enumerate(splits.folds):
        fold_landmarks.append(_landmarks(np.asarray(train), y, run.rows.X, config, config.seed + 1 + fold))
        landmark_rows[f"fold{fold}"] = fold_landmarks[-1]
    stores = _block_stores(run, finals, fold_landmarks)
    started = time.perf_counter()
    blocks = run_blocks(run.runner, stores.values(), run.rows.inputs_of_blocks(), report=run.report,
                        check_cancel=run.check_cancel)

    fold_accuracy: dict[str, list[float]] = {family: [] for family in chosen}
    predictions: dict[str, list[np.ndarray]] = {family: [] for family in chosen}
    errors: dict[Any, float] = {}
    run.report("test", 0, len(splits.folds))  # the folds' time is the test stage's, not the blocks'
    for fold, (train, test) in enumerate(splits.folds):
        train, test = np.asarray(train), np.asarray(test)
        # One kernel's K(X, Z) and features at a time: memory is one kernel's, not the grid's.
        for model, k_xz in _fold_kernels(run.rows, finals, fold_landmarks[fold], stores, fold):
            model_started = time.perf_counter()
            mapping = nystrom_map(k_xz[fold_landmarks[fold]], floor=run.floor)
            phi_train, phi_test = mapping.features(k_xz, train), mapping.features(k_xz, test)
            if fold == 0:
                errors[model] = _nystrom_error(run.rows, model, phi_train, train, config.seed)
            Cs = sorted({c.C for c in chosen.values() if c.model == model})
            [result] = fit_predict_linear([LinearTask(phi_train, y[train], phi_test, Cs)],
                                          solver=config.solver, check_cancel=run.check_cancel)
            del phi_train, phi_test
            run.fits.update(fit.solver for fit in result.values())
            for family, candidate in chosen.items():
                if candidate.model == model:
                    fold_accuracy[family].append(accuracy(result[candidate.C].predictions, y[test]))
                    predictions[family].append(result[candidate.C].predictions)
            run.fit_seconds[(f"fold{fold}", model)] = time.perf_counter() - model_started
        run.report("test", fold + 1, len(splits.folds))
    _install_stores(run, stores)
    return fold_accuracy, predictions, errors, {**blocks, "seconds": round(time.perf_counter() - started, 3)}


def _finals(chosen: Mapping[str, Candidate]) -> list[Any]:
    """The chosen kernels, once each, in the order their stores are numbered."""
    return list(dict.fromkeys(candidate.model for candidate in chosen.values()))


def _stores_described(chosen: Mapping[str, Candidate], folds: int, names: Mapping[Any, str],
                      families: Mapping[Any, list[str]]) -> list[dict[str, Any]]:
    """report.json's ``scale.stores``: each K(X, Z) store's file and, per kernel index, the
    kernel, its ``families``, and the factor its stored values take to be that kernel (the
    stores hold sigma_v = 1; the families' readouts scale by sigma_v^2)."""
    groups = list(_groups(_finals(chosen)).values())  # numbered as _block_stores numbers them
    described = []
    for fold in range(folds):
        for number, group in enumerate(groups):
            if isinstance(group[0], RbfKernel):
                continue
            described.append({"file": f"scale/fold{fold}-k_xz-{number}.zarr", "fold": fold, "kernels": [
                {"index": index, "families": families[model], "kernel": names[model],
                 "scale": float(model.sigma_v ** 2)} for index, model in enumerate(group)]})
    return described


def _block_stores(run: _Run, models: Sequence[Any], fold_landmarks: Sequence[np.ndarray]) -> dict[tuple, StoreJob]:
    """The zarr store of every (fold, grid source) of recurrent kernels: in ``work_dir`` (kept
    for a resumed run), else in ``out_dir/scale/``, else in memory. With a runner whose blocks
    run in other processes, their inputs go beside them as ``.npy`` files."""
    folder = run.work_dir if run.work_dir is not None else (
        Path(run.out_dir) / "scale" if run.out_dir is not None else None)
    files = input_files(run.runner, folder, run.rows.inputs_of_blocks())
    n = run.rows.X.shape[0]
    stores: dict[tuple, StoreJob] = {}
    for fold, landmarks in enumerate(fold_landmarks):
        for number, group in enumerate(_groups(models).values()):
            if isinstance(group[0], RbfKernel):
                continue
            path = folder / f"fold{fold}-k_xz-{number}.zarr" if folder is not None else None
            stores[(fold, number)] = store_job(path, n, landmarks, run.rows.plan(group, run.block_rows),
                                               getattr(group[0], "order", None), files=files,
                                               landmarks_file=f"landmarks-fold{fold}.npy")
    return stores


def _install_stores(run: _Run, stores: Mapping[tuple, StoreJob]) -> None:
    """Move the stores kept in ``work_dir`` into ``out_dir/scale/`` (the job's artifacts)."""
    if run.work_dir is None or run.out_dir is None:
        return
    target = Path(run.out_dir) / "scale"
    target.mkdir(parents=True, exist_ok=True)
    for job in stores.values():
        if job.store.path is not None and job.store.path.exists():
            shutil.move(str(job.store.path), str(target / job.store.path.name))


def _configuration(candidate: Candidate) -> dict[str, Any]:
    entry: dict[str, Any] = {"params": dict(candidate.params), "C": candidate.C}
    if candidate.note:
        entry.update(candidate.note)
    return entry


def _fold_kernels(rows: _Rows, models: Sequence[Any], landmarks: np.ndarray, stores: Mapping[tuple, StoreJob],
                  fold: int) -> Iterator[tuple[Any, "_KernelRows"]]:
    """(model, K(X, Z) read on demand) for each model in turn: the recurrent ones from their
    fold's store, RBF computed from the rows."""
    for number, group in enumerate(_groups(models).values()):
        if isinstance(group[0], RbfKernel):
            for model in group:
                yield model, _KernelRows(rows.X.shape[0], landmarks.size,
                                         lambda at, model=model: rows.block([model], at, landmarks)[0])
            continue
        store = stores[(fold, number)].store
        for k, model in enumerate(group):
            yield model, _KernelRows(store.n_rows, landmarks.size, _stored_rows(store, k, model.sigma_v ** 2))


class _KernelRows:
    """K(X, Z) of one kernel as rows on demand (``k_xz[rows]`` for sorted row indices): the
    features are made a slice of rows at a time, so the whole N x M matrix is never held."""

    def __init__(self, n_rows: int, n_columns: int, read: Callable[[np.ndarray], np.ndarray]) -> None:
        self.shape = (n_rows, n_columns)
        self._read = read

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows)
        order = np.argsort(rows, kind="stable")
        values = self._read(rows[order])
        out = np.empty_like(values)
        out[order] = values
        return out


def _stored_rows(store: Any, kernel: int, scale: float) -> Callable[[np.ndarray], np.ndarray]:
    """Sorted rows of one kernel from a store, reading only the blocks they fall in."""

    def read(rows: np.ndarray) -> np.ndarray:
        out = np.empty((rows.size, store.array.shape[2]))
        for start, stop in store.plan.blocks(store.n_rows):
            low, high = np.searchsorted(rows, (start, stop))
            if low < high:
                span = slice(int(rows[low]), int(rows[high - 1]) + 1)
                out[low:high] = store.rows(kernel, span.start, span.stop)[rows[low:high] - span.start]
        return out * scale

    return read
