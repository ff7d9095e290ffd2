"""The report of one evaluation, typed: what report.json holds and what its readers may rely on.

:func:`rntk_core.evaluation.evaluate.evaluate` builds and returns a :class:`Report` (so a report
that breaks this schema fails where it is made; ``evaluate_dataset`` returns its JSON form);
readers call ``Report.model_validate(json.loads(...))``. Models allow extra fields, so a newer writer's
report still loads in an older reader.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ChosenConfiguration", "Configuration", "DatasetSummary", "FamilyResult", "FileEntry", "GramEntry",
    "GridEdge", "BlockSummary", "FitRecord", "NonConvergedFit", "Report", "ScaleSummary", "Selection",
    "SolverSummary", "Testing",
]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class DatasetSummary(_Open):
    name: str
    format: str
    n_samples: int
    n_steps: int
    n_features: int
    n_classes: int
    classes: list[str] | None = None  # the class labels as the file wrote them
    lengths: dict[str, int] | None = None  # min and max, for sequences of unequal lengths


class ChosenConfiguration(_Open):
    """A configuration: the kernel's parameters, C where the model has one, and notes."""

    params: dict[str, Any]
    C: float | None = None
    order: list[int] | None = None


class Configuration(ChosenConfiguration):
    """One row of the grid with its validation accuracy."""

    family: str
    validation_accuracy: float | None


class GridEdge(_Open):
    """A chosen hyperparameter value at the smallest or largest value of its family's grid."""

    param: str  # "C", or a key of params (sigma_u, layers, gamma, degree, ...)
    value: Any
    edge: str  # "min" or "max"
    grid: list[Any] = Field(default_factory=list)  # the family's grid of param, ascending
    suggest: list[Any] = Field(default_factory=list)  # the grid's next values past the edge, on its spacing


class FamilyResult(_Open):
    """A family's outcome. Test figures are over ``testing``'s folds, validation figures over
    ``selection``'s pairs (CV folds inside TRAIN, or the one holdout split)."""

    test_accuracy: float | None
    fold_accuracies: list[float | None]  # per test fold (one for a train/test split)
    validation_accuracy: float | None
    chosen: list[ChosenConfiguration]
    # per selection pair, the chosen configurations' mean accuracy (mean = validation_accuracy)
    selection_fold_accuracies: list[float | None] | None = None
    selection_std: float | None = None  # std over selection_fold_accuracies (None for one pair)
    test_std: float | None = None  # std over fold_accuracies (None for one test split)
    grid_edges: list[GridEdge] = Field(default_factory=list)
    # the vote on the test rows, summed over test folds: [true class][predicted], dataset.classes order
    confusion_matrix: list[list[int]] | None = None
    per_class_accuracy: dict[str, float | None] | None = None  # class label -> recall on the test rows


class GramEntry(_Open):
    """A saved Gram matrix: ``rntk_core.gram(X / x_scale, **params)`` reproduces ``file``."""

    file: str
    params: dict[str, Any]
    x_scale: float
    families: list[str]
    selected: bool
    order: list[int] | None = None


class NonConvergedFit(ChosenConfiguration):
    family: str
    split: str
    model: str


class Selection(_Open):
    """How configurations were scored: one holdout pair, or k-fold CV inside TRAIN."""

    method: str
    folds: int
    note: str | None = None


class Testing(_Open):
    """How the chosen configurations were tested: ``train_test`` (one split, no spread over test
    folds) or ``folds`` (several test folds: their mean and standard deviation)."""

    method: str
    folds: int
    description: str | None = None


class FileEntry(_Open):
    """One array of a file written beside the report (splits.npz), and what it holds."""

    file: str
    key: str | None = None
    meaning: str


class SolverSummary(_Open):
    """The C-SVM solver: as configured, as resolved (``jax``, ``libsvm`` or ``hybrid``), where
    the recurrent kernels were (reports before it was recorded have none), fit counts."""

    requested: str
    used: str
    placement: str | None = None  # where the recurrent kernels were: "host" or "device"
    # Grids too large for the device: {chunks, pairs_per_chunk, computed, seconds}
    grid_chunks: dict[str, Any] | None = None
    fits: dict[str, int] = Field(default_factory=dict)
    non_converged: int = 0


class FitRecord(_Open):
    """One SVM fit (a model at one C on one split) and whether its solver converged."""

    split: str
    model: str
    C: float | None
    solver: str
    converged: bool
    iterations: int | None = None
    error: float | None = None


class BlockSummary(_Open):
    """The K(X, Z) row blocks of a landmark job: how many, and which worker computed them."""

    total: int
    rows_per_block: int | None = None
    by_worker: dict[str, int] = Field(default_factory=dict)


class ScaleSummary(_Open):
    """How the kernels were held: dense Gram matrices, or Nystrom features from landmarks."""

    method: str  # "dense" or "landmarks"
    landmarks: int = 0
    landmark_method: str | None = None
    nystrom_error: dict[str, float] | None = None  # per chosen kernel, on sampled rows x columns
    nystrom_error_max: float | None = None
    selection_samples: int | None = None  # rows that scored the hyperparameters
    training_samples: list[int] | None = None  # rows each test fold's chosen kernels trained on
    blocks: BlockSummary | None = None


class Report(_Open):
    dataset: DatasetSummary
    config: dict[str, Any]
    families_evaluated: list[str]
    protocol: str
    selection: Selection | None = None
    testing: Testing | None = None
    notes: list[str] = Field(default_factory=list)
    x_scale: float
    avg_scaling: str
    configurations: list[Configuration]
    families: dict[str, FamilyResult]
    grams: list[GramEntry] = Field(default_factory=list)
    non_converged: list[NonConvergedFit] = Field(default_factory=list)
    solver: SolverSummary | None = None
    fits: list[FitRecord] = Field(default_factory=list)
    timings: dict[str, float]
    # family -> {kernels, validation, test, total}: its share of each phase's timings (beside
    # timings, not in families: run facts, which differ between two runs of one job)
    family_seconds: dict[str, dict[str, float]] | None = None
    seconds_attribution: str | None = None  # how family_seconds divide the timings
    files: list[FileEntry] = Field(default_factory=list)  # what splits.npz holds, array by array
    scale: ScaleSummary | None = None
    figures_error: str | None = None  # why the report's figures could not be drawn (results kept)
    versions: dict[str, str]
    device: str
