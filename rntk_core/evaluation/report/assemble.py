"""One evaluation's report, assembled: the dict report.json holds (typed afterwards as
:class:`.model.Report`), and the arrays written beside it (``splits.npz``, ``gram/*.npy``).

Everything here reads what the pipeline found (an :class:`Evaluation`); nothing fits or
computes kernels, except the Gram files' chunks that a chunked store computes again.
"""

from __future__ import annotations

import hashlib
import itertools
import platform
import re
import subprocess
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Hashable, Mapping, Sequence

import numpy as np

from rntk_core import __version__

from ..config import BASELINE_FAMILIES, EvaluationConfig
from ..datasets import Dataset, Splits
from ..kernels import AVG_SCALING, RECURRENT_SPECS, Plan, RecurrentKernel
from ..protocol import Candidate, FamilyOutcome, Selection, accuracy, majority_vote
from ..solvers.fit import FitCache
from ..solvers.strategy import FitSeconds, SolverStrategy
from .diagnostics import confusion, grid_edges, per_class_accuracy, spread
from .timing import ATTRIBUTION, family_seconds

__all__ = [
    "RESAMPLED_NOTE", "Evaluation", "add_grid_edges", "assemble", "dataset_summary", "describe",
    "device_description", "draw_figures", "family_details", "family_report", "fit_records", "git_commit",
    "majority_class_accuracy", "non_converged", "notes", "save_report", "seconds_by_family", "selected_kernels",
    "solver_summary", "split_arrays", "split_digest", "split_files", "testing_summary", "utc", "versions",
    "write_arrays", "write_grams", "write_splits",
]

#: The report's note on how baselines see sequences of unequal lengths.
RESAMPLED_NOTE = ("sequences of unequal lengths are resampled to T = {steps} steps by linear "
                  "interpolation for the baselines that need equal lengths (RBF, POLY, MLP, RF, "
                  "1NN-ED); 1NN-DTW and the recurrent kernels use the true lengths")


@dataclass(frozen=True)
class Evaluation:
    """What one evaluation found: everything its report is assembled from.

    ``kernel_marks`` (:class:`.timing.StageClock`'s marks of the kernels stage) and
    ``fit_seconds`` (each fit job's busy seconds) divide the phases' time among the families.
    """

    dataset: Dataset
    config: EvaluationConfig
    families: list[str]
    protocol: str
    splits: Splits
    selection: Selection
    x_scale: float
    plan: Plan
    outcomes: Mapping[str, FamilyOutcome]
    fits: FitCache
    solver: SolverStrategy
    kernel_marks: Sequence[float] = ()
    fit_seconds: FitSeconds = field(default_factory=dict)


def assemble(evaluation: Evaluation, timings: dict[str, float], provenance: Mapping[str, Any],
             started_at: float) -> dict[str, Any]:
    """The report dict. ``timings`` is held by reference: phases timed later still show."""
    dataset, plan, fits, splits = evaluation.dataset, evaluation.plan, evaluation.fits, evaluation.splits
    configurations, family_results = family_report(plan, evaluation.outcomes)
    for family, details in family_details(evaluation).items():
        family_results[family].update(details)
    return {
        "dataset": dataset_summary(dataset),
        "config": evaluation.config.model_dump(mode="json"),
        "families_evaluated": evaluation.families,
        "protocol": evaluation.protocol,
        "selection": evaluation.selection.describe(),
        "testing": testing_summary(splits),
        "notes": notes(dataset, evaluation.families, evaluation.selection),
        "x_scale": evaluation.x_scale,
        "avg_scaling": AVG_SCALING,
        "configurations": configurations,
        "families": family_results,
        "grams": [],
        "non_converged": non_converged(plan, evaluation.outcomes, fits, len(splits.folds),
                                       evaluation.selection),
        "solver": solver_summary(evaluation.config.solver, evaluation.solver, fits, plan),
        "fits": fit_records(plan, fits),
        "timings": timings,
        "family_seconds": seconds_by_family(evaluation, timings),
        "seconds_attribution": ATTRIBUTION,
        "scale": dense_scale(evaluation.selection, splits),
        **_run_facts(dataset, splits, provenance, started_at),
    }


def dense_scale(selection: Selection, splits: Splits) -> dict[str, Any]:
    """The report's ``scale`` for dense Gram matrices: every row selected and trained."""
    selected = np.unique(np.concatenate([np.concatenate(pair) for pair in selection.pairs]))
    return {"method": "dense", "landmarks": 0, "selection_samples": int(selected.size),
            "training_samples": [int(len(train)) for train, _ in splits.folds],
            "blocks": {"total": 0, "by_worker": {}}}


def assemble_landmarks(dataset: Dataset, config: EvaluationConfig, families: list[str], parts: Mapping[str, Any],
                       timings: dict[str, float], provenance: Mapping[str, Any], started_at: float) -> dict[str, Any]:
    """The report dict of a landmark run (:func:`..scale.pipeline.evaluate_landmarks`'s parts)."""
    splits: Splits = parts["splits"]
    return {
        "dataset": dataset_summary(dataset),
        "config": config.model_dump(mode="json"),
        "families_evaluated": families,
        "protocol": parts["protocol"],
        "selection": parts["selection"],
        "testing": testing_summary(splits),
        "notes": [LANDMARK_NOTE.format(m=config.landmarks, samples=parts["scale"]["selection_samples"])],
        "x_scale": parts["x_scale"],
        "avg_scaling": AVG_SCALING,
        "configurations": parts["configurations"],
        "families": add_grid_edges(parts["configurations"], _landmark_details(dataset, splits, parts)),
        "family_seconds": family_seconds(
            families, [f for f in families if f in RECURRENT_SPECS], timings, [], parts.get("fit_seconds", {}),
            parts.get("users", {}), ["selection"]),
        "seconds_attribution": LANDMARK_ATTRIBUTION,
        "grams": [],
        "solver": {"requested": config.solver, "used": "linear", "fits": dict(parts["fits"]),
                   "non_converged": parts.get("non_converged", 0)},
        "timings": timings,
        "scale": parts["scale"],
        **_run_facts(dataset, splits, provenance, started_at),
    }


def _landmark_details(dataset: Dataset, splits: Splits, parts: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The landmark families' outcomes with what :func:`family_details` adds to dense ones:
    the spread over test folds, and the confusion matrix and per-class accuracy of the chosen
    model's predictions (one configuration per family, so no vote)."""
    classes = [str(name) for name in dataset.classes]
    families = {}
    for family, outcome in parts["families"].items():
        predicted = parts.get("predictions", {}).get(family)
        extra: dict[str, Any] = {"test_std": spread(outcome["fold_accuracies"])}
        if predicted:
            matrix = confusion([dataset.y[test] for _, test in splits.folds], predicted, dataset.n_classes)
            extra.update(confusion_matrix=matrix.tolist(), per_class_accuracy=per_class_accuracy(matrix, classes))
        families[family] = {**outcome, **extra}
    return families


LANDMARK_ATTRIBUTION = ("Each phase's wall time (timings: kernels, validation, test) is divided among the families. "
                        "Kernels (the selection's features): evenly. Validation: in proportion to each family's "
                        "linear C-SVM seconds on the subsample. Test: in proportion to the seconds of each "
                        "family's chosen kernel (its features from the stored K(X, Z), and its fit), a kernel that "
                        "several families chose split evenly among them; the blocks count in test.")


def _run_facts(dataset: Dataset, splits: Splits, provenance: Mapping[str, Any], started_at: float) -> dict[str, Any]:
    """What every report records of the run itself: versions, device, the majority-class
    baseline and what reproduces it."""
    return {
        "versions": versions(),
        "device": device_description(),
        "majority_class_accuracy": majority_class_accuracy(dataset.y, splits.folds),
        "reproducibility": {**dict(provenance), "split_sha256": split_digest(splits),
                            "started_at": utc(started_at), "rntk_version": __version__,
                            "git_commit": git_commit()},
    }


LANDMARK_NOTE = ("Landmark (Nystrom) kernels: each kernel is approximated from M = {m} landmark rows of the "
                 "training data and fitted by a linear C-SVM on its features (libsvm's problem, hinge loss, "
                 "unregularised intercept); hyperparameters were scored on {samples} rows, and each family "
                 "keeps its single best configuration (ties: the first), not a vote of ties.")


def write_landmarks(out_dir: Path, landmarks: Mapping[str, np.ndarray]) -> list[str]:
    """``scale/landmarks-<stage>.npy``: the dataset rows used as landmarks at each stage."""
    folder = out_dir / "scale"
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for stage, rows in landmarks.items():
        np.save(folder / f"landmarks-{stage}.npy", np.asarray(rows, np.int64))
        names.append(f"scale/landmarks-{stage}.npy")
    return names


# --------------------------------------------------------------------------- results


def solver_summary(requested: str, solver: SolverStrategy, cache: FitCache, plan: Plan) -> dict[str, Any]:
    """What ran: the requested and resolved solver, where the kernels were (and the recurrent
    grids' chunks, if any), fit counts per solver, and the solver's own settings."""
    counts: dict[str, int] = defaultdict(int)
    for fit in cache.values():
        if fit.solver is not None:
            counts[fit.solver] += 1
    summary: dict[str, Any] = {"requested": requested, "used": solver.name, "placement": plan.placement,
                               "fits": dict(counts),
                               "non_converged": sum(not fit.converged for fit in cache.values())}
    chunks = plan.store.describe() if plan.store is not None else None
    if chunks is not None:
        summary["grid_chunks"] = chunks
    summary.update(solver.describe())
    return summary


def fit_records(plan: Plan, cache: FitCache) -> list[dict[str, Any]]:
    """Every SVM fit of the job (split, model, C) with its solver and convergence."""
    records = []
    for (split, model, C), fit in cache.items():
        if fit.solver is None:
            continue
        record = {"split": split, "model": plan.models[model].name, "C": C, "solver": fit.solver,
                  "converged": fit.converged, "iterations": fit.iterations}
        if fit.error is not None:
            record["error"] = fit.error
        records.append(record)
    return records


def non_converged(plan: Plan, outcomes: Mapping[str, FamilyOutcome], cache: FitCache,
                  n_folds: int, selection: Selection) -> list[dict]:
    """One entry per (family, configuration, split) whose SVM stopped before converging."""
    failed = {key for key, fit in cache.items() if not fit.converged}
    entries = []
    for family, candidates in plan.candidates.items():
        chosen = set(outcomes[family].chosen)
        for index, candidate in enumerate(candidates):
            splits = [selection.split_name(k) for k in range(len(selection.pairs))]
            splits += [f"fold{k}" for k in range(n_folds)] if index in chosen else []
            for split in splits:
                if (split, candidate.model, candidate.C) in failed:
                    entries.append({**describe(candidate), "family": family, "split": split,
                                    "model": plan.models[candidate.model].name})
    return entries


def describe(candidate: Candidate) -> dict[str, Any]:
    """``{params, C}`` (C omitted for models without one) plus any note (e.g. order)."""
    entry: dict[str, Any] = {"params": dict(candidate.params)}
    if candidate.C is not None:
        entry["C"] = candidate.C
    if candidate.note:
        entry["order"] = candidate.note["order"]
    return entry


def family_report(plan: Plan, outcomes: Mapping[str, FamilyOutcome]) -> tuple[list[dict], dict]:
    """The report's ``configurations`` list and ``families`` mapping."""
    configurations = [
        {"family": family, **describe(candidate), "validation_accuracy": score}
        for family, candidates in plan.candidates.items()
        for candidate, score in zip(candidates, outcomes[family].scores)
    ]
    families = {
        family: {
            "test_accuracy": outcome.test_accuracy,
            "fold_accuracies": outcome.fold_accuracies,
            "validation_accuracy": outcome.validation_accuracy,
            "chosen": [describe(plan.candidates[family][i]) for i in outcome.chosen],
        }
        for family, outcome in outcomes.items()
    }
    return configurations, add_grid_edges(configurations, families)


def add_grid_edges(configurations: Sequence[Mapping[str, Any]], families: dict[str, dict]) -> dict[str, dict]:
    """Each family's ``grid_edges`` (:func:`.diagnostics.grid_edges`: chosen values at an edge
    of the family's grid, with the extension to try); ``families``, updated."""
    for family, result in families.items():
        entries = [entry for entry in configurations if entry.get("family") == family]
        result["grid_edges"] = grid_edges(entries, result.get("chosen") or [])
    return families


def family_details(evaluation: Evaluation) -> dict[str, dict[str, Any]]:
    """What each family's report adds to its accuracies, from the cached fits.

    - ``selection_fold_accuracies``: per selection pair (each CV fold, or the one holdout
      split), the mean accuracy of the chosen configurations; their mean is
      ``validation_accuracy``. ``selection_std``: their standard deviation (None for one pair).
    - ``test_std``: the standard deviation over the test folds (None for one train/test split).
    - ``confusion_matrix``: the chosen configurations' vote on every test fold's test rows,
      summed over the folds: row = true class, column = predicted, both in ``dataset.classes``
      order. ``per_class_accuracy``: each class's share of its test rows predicted right.

    (Seconds per family are run facts, beside ``timings``: :func:`seconds_by_family`.)
    """
    dataset, plan, fits, selection = evaluation.dataset, evaluation.plan, evaluation.fits, evaluation.selection
    y, folds = dataset.y, evaluation.splits.folds
    classes = [str(name) for name in dataset.classes]
    details = {}
    for family, outcome in evaluation.outcomes.items():
        chosen = [plan.candidates[family][i] for i in outcome.chosen]
        per_pair = [float(np.mean([accuracy(fits[(selection.split_name(k), c.model, c.C)].predictions, y[score])
                                   for c in chosen]))
                    for k, (_, score) in enumerate(selection.pairs)]
        votes = [majority_vote(np.stack([fits[(f"fold{k}", c.model, c.C)].predictions for c in chosen]),
                               dataset.n_classes)
                 for k in range(len(folds))]
        matrix = confusion([y[test] for _, test in folds], votes, dataset.n_classes)
        details[family] = {
            "selection_fold_accuracies": per_pair, "selection_std": spread(per_pair),
            "test_std": spread(outcome.fold_accuracies),
            "confusion_matrix": matrix.tolist(), "per_class_accuracy": per_class_accuracy(matrix, classes),
        }
    return details


def seconds_by_family(evaluation: Evaluation, timings: Mapping[str, float]) -> dict[str, dict[str, float]]:
    """The report's ``family_seconds``: each family's share of the kernels, validation and test
    phases (:func:`.timing.family_seconds`; how shared work is divided: ``seconds_attribution``).
    Kept out of ``families``, so two runs of one job have equal ``families``."""
    selection = evaluation.selection
    return family_seconds(
        list(evaluation.outcomes), [f for f in evaluation.outcomes if f in RECURRENT_SPECS], timings,
        evaluation.kernel_marks, evaluation.fit_seconds, _model_users(evaluation.plan, evaluation.outcomes),
        [selection.split_name(k) for k in range(len(selection.pairs))])


def _model_users(plan: Plan, outcomes: Mapping[str, FamilyOutcome]) -> dict[str, dict[Hashable, list[str]]]:
    """Which families fit each model: every candidate's in validation, the chosen ones' in test."""
    users: dict[str, dict[Hashable, list[str]]] = {"validation": defaultdict(list), "test": defaultdict(list)}
    for family, candidates in plan.candidates.items():
        chosen = set(outcomes[family].chosen) if family in outcomes else set()
        for index, candidate in enumerate(candidates):
            for phase, used in (("validation", True), ("test", index in chosen)):
                if used and family not in users[phase][candidate.model]:
                    users[phase][candidate.model].append(family)
    return users


def testing_summary(splits: Splits) -> dict[str, Any]:
    """The report's ``testing``: how the chosen configurations were tested.

    ``method``: ``"train_test"`` for one train/test split (a time-series archive's TRAIN/TEST
    files: there is no spread over test folds), ``"folds"`` for several test folds (the UCI
    protocol's 4: test accuracy is their mean, with a standard deviation over them).
    """
    n = len(splits.folds)
    if n == 1:
        return {"method": "train_test", "folds": 1,
                "description": "one train/test split: the chosen configurations are refitted on the training "
                               "part and scored once on the test part; there is no spread over test folds"}
    return {"method": "folds", "folds": n,
            "description": f"{n} test folds: the chosen configurations are refitted on each fold's training part "
                           f"and scored on its test part; test accuracy is the mean over the {n} folds"}


def notes(dataset: Dataset, families: Sequence[str], selection: Selection) -> list[str]:
    """The report's ``notes``: fewer selection folds than asked, resampled sequences."""
    found = [selection.note] if selection.note else []
    equal_length_baselines = [name for name in families if name in BASELINE_FAMILIES and name != "1NN-DTW"]
    if dataset.lengths is not None and equal_length_baselines:
        found.append(RESAMPLED_NOTE.format(steps=dataset.n_steps))
    return found


def dataset_summary(dataset: Dataset) -> dict[str, Any]:
    summary = {"name": dataset.name, "format": dataset.format, "n_samples": dataset.n_samples,
               "n_steps": dataset.n_steps, "n_features": dataset.n_features,
               "n_classes": dataset.n_classes, "classes": [str(c) for c in dataset.classes]}
    if dataset.lengths is not None:
        summary["lengths"] = {"min": int(dataset.lengths.min()), "max": int(dataset.lengths.max())}
    return summary


def majority_class_accuracy(y: np.ndarray, folds: Sequence[tuple[np.ndarray, np.ndarray]]) -> float:
    """The test accuracy of always predicting each fold's most frequent training class."""
    scores = []
    for train, test in folds:
        majority = np.bincount(y[train]).argmax()
        scores.append(float(np.mean(y[test] == majority)))
    return float(np.mean(scores))


# --------------------------------------------------------------------------- provenance


def versions() -> dict[str, str]:
    import jax
    import sklearn

    return {"rntk": __version__, "jax": jax.__version__, "numpy": np.__version__,
            "scikit-learn": sklearn.__version__, "python": platform.python_version()}


def device_description() -> str:
    import jax

    device = jax.devices()[0]
    return f"{device.device_kind} ({device.platform}, {len(jax.devices())} device(s))"


def split_digest(splits: Splits) -> str:
    """sha256 over the split indices (``name:i,j,...`` lines in the order of ``Splits.parts``)."""
    digest = hashlib.sha256()
    for name, indices in splits.parts():
        digest.update(f"{name}:{','.join(map(str, np.asarray(indices).tolist()))}\n".encode())
    return digest.hexdigest()


def git_commit() -> str | None:
    """The source tree's git commit when it is a checkout (None for an installed wheel)."""
    root = Path(__file__).resolve().parents[3]  # rntk_core/evaluation/report/ -> the checkout
    try:
        run = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = run.stdout.strip()
    return commit if run.returncode == 0 and re.fullmatch(r"[0-9a-f]{40}", commit) else None


def utc(moment: float) -> str:
    """Epoch seconds as ISO 8601 UTC, to the second (``2024-01-01T00:00:00Z``)."""
    return datetime.fromtimestamp(moment, tz=timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


# --------------------------------------------------------------------------- files


def write_arrays(report: dict, evaluation: Evaluation, out_dir: Path, X: np.ndarray,
                 grams: str) -> np.ndarray | None:
    """``splits.npz`` and the ``gram/*.npy`` that ``grams`` asks for (``selected``, ``all`` or
    ``none``), recorded in ``report`` (``files`` says what each array of splits.npz is); the
    first saved Gram matrix, for the report's picture."""
    dataset, x_scale = evaluation.dataset, evaluation.x_scale
    report["reproducibility"]["splits_file"] = write_splits(out_dir, dataset, evaluation.splits, X, x_scale,
                                                            evaluation.selection)
    report["files"] = split_files(evaluation.splits, evaluation.selection)
    if grams == "none":
        return None
    report["grams"], gram = write_grams(evaluation.plan, evaluation.outcomes, out_dir, x_scale,
                                        dataset.lengths is not None, grams == "all")
    if evaluation.config.normalize == "standardize":  # X / x_scale alone would not reproduce them
        for entry in report["grams"]:
            entry["inputs"] = ("protocol.standardize(X) / x_scale; splits.npz holds that X, "
                               "so gram(splits['X'], **params) reproduces the file")
    return gram


def write_splits(out_dir: Path, dataset: Dataset, splits: Splits, X: np.ndarray, x_scale: float,
                 selection: Selection | None = None) -> str:
    """``splits.npz``: the labels and every split's indices, rows in the Gram matrices' order,
    each array named after what it is (:func:`split_arrays`).

    With the saved ``gram/*.npy`` (rows and columns in dataset order, ``sample_index``) this is
    enough to refit any fold: ``K[np.ix_(fold0_test, fold0_train)]`` is K(test, train).
    ``X`` is the normalised input the kernels were computed from.
    """
    arrays = {"y": dataset.y, "sample_index": np.arange(dataset.n_samples), "X": X,
              "x_scale": np.float64(x_scale),
              **{key: indices for key, (indices, _) in split_arrays(splits, selection).items()}}
    out_dir.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out_dir / "splits.npz", **arrays)
    return "splits.npz"


def split_arrays(splits: Splits, selection: Selection | None = None) -> dict[str, tuple[np.ndarray, str]]:
    """splits.npz's index arrays, ``{key: (indices, meaning)}``:

    - the pairs that chose the hyperparameters: ``cv<k>_fit`` / ``cv<k>_score`` for a k-fold
      CV inside TRAIN, ``holdout_fit`` / ``holdout_score`` for one train / validation split
      (also as ``train`` / ``validation``, the names an .npz dataset's predefined splits use);
    - the test folds: ``fold<k>_train`` / ``fold<k>_test``.

    Without ``selection`` (the landmark path, which scores a subsample of them), the part the
    pairs were drawn from: ``train`` (and ``validation`` for a holdout). A CV selection has no
    ``validation`` array: it was never a validation part (it is the TEST part, ``fold0_test``).
    """
    arrays: dict[str, tuple[np.ndarray, str]] = {}
    if selection is not None and selection.method == "cv":
        k = len(selection.pairs)
        for index, (fit, score) in enumerate(selection.pairs):
            arrays[f"cv{index}_fit"] = (fit, f"hyperparameter selection, cross-validation fold {index} of {k} "
                                             "inside the training part: the rows each configuration was fitted on")
            arrays[f"cv{index}_score"] = (score, f"hyperparameter selection, cross-validation fold {index} of {k}: "
                                                 "the rows that scored each configuration")
    elif selection is not None:
        (fit, score), = selection.pairs
        arrays["holdout_fit"] = (fit, "hyperparameter selection: the training part of the train / validation "
                                      "split, the rows each configuration was fitted on")
        arrays["holdout_score"] = (score, "hyperparameter selection: the validation part, the rows that scored "
                                          "each configuration")
        arrays["train"] = (fit, "the same rows as holdout_fit (the name an .npz dataset's splits use)")
        arrays["validation"] = (score, "the same rows as holdout_score (the name an .npz dataset's splits use)")
    else:
        arrays["train"] = (splits.train, "the training part that hyperparameter selection drew its rows from")
        if splits.selection != "cv":
            arrays["validation"] = (splits.validation, "the validation part that hyperparameter selection "
                                                       "drew its scoring rows from")
    n = len(splits.folds)
    for index, (train, test) in enumerate(splits.folds):
        if n == 1:
            arrays[f"fold{index}_train"] = (train, "the training part (TRAIN): every chosen configuration "
                                                   "was refitted on it")
            arrays[f"fold{index}_test"] = (test, "the test part (TEST): scored once, never used for selection")
        else:
            arrays[f"fold{index}_train"] = (train, f"test fold {index} of {n}: the rows the chosen "
                                                   "configurations were refitted on")
            arrays[f"fold{index}_test"] = (test, f"test fold {index} of {n}: the rows they were tested on")
    return arrays


def split_files(splits: Splits, selection: Selection | None = None) -> list[dict[str, str]]:
    """The report's ``files``: every array of splits.npz and what it holds."""
    entries = [{"file": "splits.npz", "key": "y", "meaning": "class index of every sample (dataset.classes[y])"},
               {"file": "splits.npz", "key": "sample_index",
                "meaning": "0..N-1: the Gram matrices' row and column order"},
               {"file": "splits.npz", "key": "X", "meaning": "the normalised inputs the kernels were computed from"},
               {"file": "splits.npz", "key": "x_scale", "meaning": "the scale X was divided by"}]
    entries += [{"file": "splits.npz", "key": key, "meaning": meaning}
                for key, (_, meaning) in split_arrays(splits, selection).items()]
    return entries


def selected_kernels(plan: Plan, outcomes: Mapping[str, FamilyOutcome],
                     everything: bool = False) -> dict[RecurrentKernel, dict]:
    """Distinct chosen recurrent kernels -> {family, families, note, selected}, in family order.

    With ``everything``, every recurrent kernel of the grid follows the chosen ones.
    """
    selected: dict[RecurrentKernel, dict] = {}
    for pass_all in (False, True) if everything else (False,):
        for family, outcome in outcomes.items():
            indices = range(len(plan.candidates[family])) if pass_all else outcome.chosen
            for index in indices:
                candidate = plan.candidates[family][index]
                if not isinstance(candidate.model, RecurrentKernel):
                    continue
                entry = selected.setdefault(candidate.model, {
                    "families": [], "note": candidate.note, "family": family,
                    "selected": not pass_all})
                if not pass_all and family not in entry["families"]:
                    entry["families"].append(family)
    return selected


def write_grams(plan: Plan, outcomes: Mapping[str, FamilyOutcome], out_dir: Path, x_scale: float,
                uses_lengths: bool, everything: bool = False) -> tuple[list[dict], np.ndarray | None]:
    """Save each selected (``everything``: every) recurrent kernel as ``gram/<name>.npy``;
    the report's ``grams`` list.

    Returns the entries and the first saved kernel, a selected one (for the report's picture).
    """
    selected = selected_kernels(plan, outcomes, everything)
    stems = _file_stems(selected)
    first = None
    for kernel in sorted(selected, key=plan.residency):  # each chunk of a chunked grid once
        matrix = np.asarray(plan.store.kernel(kernel))  # one contiguous copy from the device
        (out_dir / "gram").mkdir(parents=True, exist_ok=True)
        np.save(out_dir / "gram" / f"{stems[kernel]}.npy", matrix)
        if kernel == next(iter(selected)):
            first = matrix
    entries: list[dict] = []
    for kernel, info in selected.items():
        entry = {"file": f"gram/{stems[kernel]}.npy", "params": kernel.params(), "x_scale": x_scale,
                 "families": info["families"], "selected": info["selected"]}
        if kernel.order is not None:
            entry["order"] = list(kernel.order)
        if uses_lengths:
            entry["lengths"] = "the dataset's sequence lengths (pass lengths= to gram)"
        entries.append(entry)
    return entries, first


def _file_stems(selected: Mapping[RecurrentKernel, dict]) -> dict[RecurrentKernel, str]:
    """Distinct file names: names round sigma_w to 4 digits, so repeats get ``-2``, ``-3``..."""
    stems: dict[RecurrentKernel, str] = {}
    used: set[str] = set()
    for kernel, info in selected.items():
        order_index = info["note"]["order_index"] if info["note"] else None
        stem = base = kernel.name(info["family"], order_index)
        for copy in itertools.count(2):
            if stem not in used:
                break
            stem = f"{base}-{copy}"
        used.add(stem)
        stems[kernel] = stem
    return stems


def draw_figures(report: dict, gram: np.ndarray | None, labels: np.ndarray,
                 check: Callable[[], None] | None = None) -> dict:
    """The report's figures (:func:`.html.draw_figures`), drawn before the total is timed."""
    from ..cancel import Cancelled
    from .html import draw_figures as draw

    try:
        return draw(report, gram, labels, check)
    except Cancelled:
        raise
    except Exception as exc:  # a figure must never cost the computed results
        report["figures_error"] = f"{type(exc).__name__}: {exc}"[:500]
        return {"accuracy_svg": None, "heatmaps": [], "gram": None}


def save_report(report: dict, out_dir: Path, gram: np.ndarray | None, labels: np.ndarray,
                drawn: dict | None = None) -> None:
    """report.json / .csv / .html (see :mod:`.writer`)."""
    from .writer import write_report

    write_report(report, out_dir, selected_gram=gram, labels=labels, drawn=drawn)
