"""The evaluation protocol of ``PROTOCOL-uci.md``: normalisation, splits, selection, voting.

Everything here is pure NumPy / scikit-learn bookkeeping; no kernels and no SVMs.

- :func:`normalise` divides X by its largest row norm (one scalar per dataset).
- :func:`resolve_splits` returns the dataset's predefined splits, or the stratified, seeded
  equivalent: half train / half validation for selection, then 4 stratified folds for testing.
- :func:`selection_pairs` says how configurations are scored: on the one (train, validation)
  pair, or, for a time-series archive's TRAIN/TEST split, by stratified k-fold
  cross-validation inside TRAIN (fewer folds when a class of TRAIN has fewer than k members).
- :func:`select_ties` keeps every configuration that ties the best validation accuracy and
  drops the last one when their number is even, so the vote always has a winner.
- :func:`majority_vote` is the per-point vote over the chosen configurations; a tied vote
  goes to the smallest class label.
- :class:`FamilyOutcome` holds a family's validation scores, its chosen configurations and
  their test accuracies.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Hashable, Literal, Mapping, Sequence

import numpy as np
from sklearn.model_selection import StratifiedKFold, train_test_split

from .datasets import N_FOLDS, Dataset, DatasetError, Splits, check_stratifiable

__all__ = [
    "Candidate",
    "FamilyOutcome",
    "Selection",
    "selection_pairs",
    "ProtocolName",
    "accuracy",
    "majority_vote",
    "normalise",
    "protocol_shape",
    "resolve_splits",
    "select_ties",
    "stratified_splits",
    "wanted_fits",
]

ProtocolName = Literal["predefined", "stratified"]


@dataclass(frozen=True)
class Candidate:
    """One configuration of a family, as validated and (if chosen) voted.

    Attributes:
        family: the family's name, e.g. ``"RNN-P"``.
        params: the configuration's parameters as reported (no C).
        C: the SVC penalty, or None for models without one (RF).
        model: key of the model (kernel or forest) the candidate fits; candidates that share
            a model and C share their fits.
        note: extra report fields beside ``params`` (e.g. RNN-P's user ``order``).
    """

    family: str
    params: Mapping[str, Any]
    C: float | None
    model: Hashable
    note: Mapping[str, Any] | None = None


def normalise(X: np.ndarray, method: str = "max_row_norm") -> tuple[np.ndarray, float]:
    """Scale X for the kernels.

    Args:
        X: (N, T, m) or (N, d) inputs.
        method: ``"max_row_norm"``: divide by the largest row norm (one scalar per dataset);
            ``"standardize"``: first give every feature (every step's every input) mean 0 and
            standard deviation 1 over the samples (constant features become 0), so raw units
            do not let one feature set the scale, then divide by the largest row norm;
            ``"none"``: scale 1.

    Returns:
        ``(X', x_scale)`` with ``X' = standardized(X) / x_scale`` (``X / x_scale`` without
        standardising); ``x_scale`` is 1.0 for ``"none"`` or an all-zero X.
    """
    if method == "none":
        return X, 1.0
    if method not in ("max_row_norm", "standardize"):
        raise ValueError(f"unknown normalisation {method!r}; allowed: max_row_norm, standardize, none")
    if method == "standardize":
        X = standardize(X)
    norms = np.linalg.norm(X.reshape(X.shape[0], -1), axis=1)
    x_scale = float(norms.max()) if norms.size and norms.max() > 0 else 1.0
    return X / x_scale, x_scale


def standardize(X: np.ndarray) -> np.ndarray:
    """Every feature to mean 0 and (population) standard deviation 1 over the samples."""
    mean = X.mean(axis=0, keepdims=True)
    std = X.std(axis=0, keepdims=True)
    return np.where(std > 0, (X - mean) / np.where(std > 0, std, 1.0), 0.0)


def stratified_splits(y: np.ndarray, seed: int, n_folds: int = N_FOLDS) -> Splits:
    """The stratified, seeded protocol for datasets without predefined splits.

    Selection uses a stratified half / half train / validation split; testing uses
    ``StratifiedKFold(n_folds, shuffle=True, random_state=seed)``, each fold's test part
    against the other folds. The same ``(y, seed)`` always gives the same splits.
    """
    indices = np.arange(y.shape[0])
    train, validation = train_test_split(indices, test_size=0.5, stratify=y, random_state=seed)
    folds = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    pairs = [(np.sort(tr).astype(np.int64), np.sort(te).astype(np.int64))
             for tr, te in folds.split(indices, y)]
    return Splits(train=np.sort(train).astype(np.int64),
                  validation=np.sort(validation).astype(np.int64), folds=pairs)


def resolve_splits(dataset: Dataset, protocol: str, seed: int) -> tuple[Splits, ProtocolName]:
    """The splits that ``protocol`` (``auto``, ``predefined`` or ``stratified``) asks for.

    ``auto`` takes the dataset's predefined splits when it has them, else stratified ones.

    Raises:
        DatasetError: ``predefined`` without splits, or too few samples per class to stratify.
    """
    if protocol not in ("auto", "predefined", "stratified"):
        raise ValueError(f"unknown protocol {protocol!r}; allowed: auto, predefined, stratified")
    if protocol != "stratified" and dataset.splits is not None:
        return dataset.splits, "predefined"
    if protocol == "predefined":
        raise DatasetError(f"{dataset.name}: protocol 'predefined' needs predefined splits, and it has none")
    check_stratifiable(dataset)
    return stratified_splits(dataset.y, seed), "stratified"


@dataclass(frozen=True)
class Selection:
    """The (fit, score) index pairs that score every configuration (mean accuracy over them).

    Attributes:
        method: ``"holdout"`` (the one train / validation pair) or ``"cv"``.
        pairs: the pairs, in order.
        note: why the number of folds differs from the config's, or None.
    """

    method: str
    pairs: list[tuple[np.ndarray, np.ndarray]]
    note: str | None = None

    def describe(self) -> dict[str, Any]:
        """The report's ``selection`` entry."""
        entry: dict[str, Any] = {"method": self.method, "folds": len(self.pairs)}
        if self.note:
            entry["note"] = self.note
        return entry

    def split_name(self, index: int) -> str:
        """The fit cache's name for pair ``index``: "validation", or "cv0", "cv1", ..."""
        return "validation" if self.method == "holdout" else f"cv{index}"


def protocol_shape(dataset: Dataset, config: Any) -> dict[str, int | None]:
    """What the cost model needs of ``config``'s protocol on ``dataset``
    (:func:`..cost.estimate_cost`'s ``test_folds``, ``selection_pairs`` and
    ``train_samples``, the last for one predefined TRAIN/TEST split only)."""
    splits, _ = resolve_splits(dataset, config.protocol, config.seed)
    pairs = selection_pairs(splits, dataset.y, dataset.classes, config.cv_folds, config.seed).pairs
    folds = len(splits.folds)
    return {"test_folds": folds, "selection_pairs": len(pairs),
            "train_samples": len(splits.folds[0][0]) if folds == 1 else None}


def selection_pairs(splits: Splits, y: np.ndarray, classes: np.ndarray, folds: int, seed: int) -> Selection:
    """How ``splits`` scores configurations; ``folds`` is k for the ``"cv"`` selection.

    The CV is ``StratifiedKFold(k, shuffle=True, random_state=seed)`` over ``splits.train``;
    k drops to the size of TRAIN's smallest class when that is below ``folds`` (at least 2),
    and the note says so.
    """
    if splits.selection != "cv":
        return Selection("holdout", [(splits.train, splits.validation)])
    counts = np.bincount(y[splits.train], minlength=len(classes))
    present = np.flatnonzero(counts)
    smallest = int(present[np.argmin(counts[present])])
    k, note = folds, None
    if counts[smallest] < folds:
        k = max(2, int(counts[smallest]))
        note = (f"{k} folds instead of {folds}: class {classes[smallest]!s} has only "
                f"{counts[smallest]} training members")
        if counts[smallest] < 2:
            note += " (it stays out of some validation folds)"
    cv = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    train = np.asarray(splits.train)
    with warnings.catch_warnings():
        # A class with fewer than k members is the case the note reports.
        warnings.simplefilter("ignore", UserWarning)
        pairs = [(np.sort(train[fit]), np.sort(train[score])) for fit, score in cv.split(train, y[train])]
    return Selection("cv", pairs, note)


def wanted_fits(candidates: Sequence[Candidate]) -> dict[Hashable, list[float | None]]:
    """Model key -> the Cs its candidates fit, in the candidates' order."""
    wanted: dict[Hashable, list[float | None]] = defaultdict(list)
    for candidate in candidates:
        wanted[candidate.model].append(candidate.C)
    return wanted


@dataclass
class FamilyOutcome:
    """Validation scores (one per candidate), the chosen indices, and the test result."""

    scores: list[float]
    chosen: list[int]
    fold_accuracies: list[float] | None = None

    @property
    def validation_accuracy(self) -> float:
        return max(self.scores)

    @property
    def test_accuracy(self) -> float:
        return float(np.mean(self.fold_accuracies))


def accuracy(predictions: np.ndarray, truth: np.ndarray) -> float:
    """Fraction of correct predictions (in [0, 1])."""
    return float(np.mean(np.asarray(predictions) == np.asarray(truth)))


def select_ties(scores: Sequence[float]) -> list[int]:
    """Indices of every score equal to the best, minus the last one when their count is even.

    ``scores`` must be in enumeration order; the kept indices are an odd-sized list.
    """
    if len(scores) == 0:
        raise ValueError("no configurations to select from")
    best = max(scores)
    ties = [index for index, score in enumerate(scores) if score == best]
    if len(ties) % 2 == 0:
        ties.pop()
    return ties


def majority_vote(predictions: np.ndarray, n_classes: int) -> np.ndarray:
    """The per-point majority over models; a tied vote goes to the smallest class label.

    Args:
        predictions: (n_models, n_points) integer class labels in ``0..n_classes-1``.

    Returns:
        (n_points,) int64 winners.
    """
    predictions = np.atleast_2d(np.asarray(predictions, dtype=np.int64))
    n_points = predictions.shape[1]
    counts = np.zeros((n_points, n_classes), dtype=np.int64)
    for row in predictions:
        counts[np.arange(n_points), row] += 1
    return counts.argmax(axis=1)  # argmax takes the first, i.e. smallest, of equal counts
