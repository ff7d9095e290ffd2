"""What every solver takes and gives: a :class:`FitJob` in, one :class:`Fit` per C out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Hashable

import numpy as np

__all__ = ["Fit", "FitCache", "FitJob"]


@dataclass(frozen=True)
class Fit:
    """One fitted model's predictions on the evaluated points, and how its solver ended.

    Attributes:
        predictions: (n_evaluate,) int64 predicted class labels.
        converged: False when the solver stopped before convergence (for the JAX solver:
            some binary problem of the fit missed the tolerance).
        solver: ``"libsvm"``, ``"jax"`` or ``"linear"`` (the landmark path's linear C-SVM on
            features); None for models without a solver, e.g. forests.
        iterations: the most iterations a binary problem of the fit took (libsvm: SMO steps,
            jax: interior-point steps), when the solver tells.
        error: jax only: the largest final relative gap / KKT residual of its binary problems.
        objectives: jax only: each binary dual's objective ``1/2 a'Qa - e'a``, in one-vs-one
            pair order (:func:`.jax_svm.ovo_pairs`).
    """

    predictions: np.ndarray
    converged: bool = True
    solver: str | None = None
    iterations: int | None = None
    error: float | None = None
    objectives: tuple[float, ...] = ()


@dataclass(frozen=True)
class FitJob:
    """One model's fits on one split: what a solver is asked to do, as data."""

    key: tuple[str, Hashable]  # (split, model key)
    model: Any  # a KernelModel, or a model without a kernel (forest, 1-NN)
    train: np.ndarray
    evaluate: np.ndarray
    Cs: tuple[float | None, ...]


#: Every fit of a job, by (split, model key, C); each (model, C) is fitted once per split.
FitCache = dict[tuple[str, Hashable, float | None], Fit]
