"""Which solver fits the SVMs of a job, and how a batch of fits runs on the JAX solver.

``config.solver`` is ``"auto"``, ``"jax"`` or ``"libsvm"``; :func:`resolve_solver` turns it into
what runs:

- ``"libsvm"``: scikit-learn's SVC in threads, without an iteration limit (the reference).
- ``"jax"``: every kernel fit on :mod:`.jax_svm`'s batched interior-point solver.
- ``"hybrid"`` (``auto``, on every backend): libsvm first with :func:`hybrid_iteration_cap` SMO
  steps, then the JAX solver for the fits that did not converge. libsvm finishes most fits
  (small C, well-conditioned kernels) in milliseconds where an interior-point fit costs ~25
  Cholesky factorisations, while its large-C RBF fits run for minutes and cannot be
  cancelled; ``benchmarks.svm_benchmark`` measures the three. Measured on an H200 with 16
  cores (wine-quality-red, default families): JAX first 67.5 s of SVMs, libsvm 31.2 s, so
  ``auto`` does not send everything to the JAX solver on a GPU either (yet: the batched path
  still slices kernels on the host).

``auto`` ends with libsvm (no limit unless the caller set max_iter) on the fits the JAX solver
did not converge on (it can stall on numerically singular problems, e.g. a near-constant RBF
kernel at C = 1e6), so it always gives libsvm's converged answers; ``jax`` reports such fits as
non-converged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Hashable, Literal, Sequence

import numpy as np

from .libsvm import Fit, slice_kernel

__all__ = ["FitJob", "SolverName", "fit_with_jax", "hybrid_iteration_cap", "jax_work", "resolve_solver"]

SolverName = Literal["auto", "jax", "libsvm"]
#: Bytes of kernel slices handed to one :func:`fit_predict_many` call (host memory).
SLICE_BUDGET = 512 << 20


def resolve_solver(requested: str) -> Literal["jax", "libsvm", "hybrid"]:
    """``auto`` -> ``hybrid`` (see the module's measurements); others as given."""
    if requested not in ("auto", "jax", "libsvm"):
        raise ValueError(f"unknown solver {requested!r}; allowed: auto, jax, libsvm")
    return "hybrid" if requested == "auto" else requested  # type: ignore[return-value]


def hybrid_iteration_cap(n_train: int) -> int:
    """libsvm's SMO steps before the hybrid hands a fit to the JAX solver.

    Measured on yeast (2 cores): with 100 n steps, 10 RBF fits went to the JAX solver and the
    SVM stage took over 5x libsvm's 68 s (ten-class problems: 45 interior-point solves each);
    libsvm finishes those fits in seconds with a few more steps. 1000 n steps (about 2e6 on
    abalone, 7 to 23 s there) leave the JAX solver only the fits whose step count explodes,
    such as abalone's RBF at C = 1e6 (minutes, 2e6 steps without converging).
    """
    return max(100_000, 1000 * n_train)


@dataclass(frozen=True)
class FitJob:
    """One model's fits on one split: what a libsvm thread job does, as data."""

    key: tuple[str, Hashable]  # (split, model key)
    model: Any  # a KernelModel
    train: np.ndarray
    evaluate: np.ndarray
    Cs: tuple[float, ...]


def _n_pairs(y: np.ndarray, train: np.ndarray) -> int:
    classes = np.unique(y[train]).size
    return classes * (classes - 1) // 2


def jax_work(jobs: Sequence[FitJob], y: np.ndarray) -> int:
    """Progress units of ``jobs`` on the JAX solver: problem-iterations, nominally counted."""
    from .jax_svm import NOMINAL_ITERATIONS

    return sum(len(job.Cs) * _n_pairs(y, job.train) * NOMINAL_ITERATIONS for job in jobs)


def fit_with_jax(
    jobs: Sequence[FitJob],
    y: np.ndarray,
    *,
    check_cancel: Callable[[], None] | None = None,
    on_work: Callable[[int], None] | None = None,
    slice_budget: int = SLICE_BUDGET,
) -> list[dict[float, Fit]]:
    """Fit every job's Cs on the batched JAX solver; results in the jobs' order.

    Jobs are sliced and solved in groups of at most ``slice_budget`` bytes of kernel slices,
    so a large grid never holds all its slices at once. ``on_work(units)`` advances progress
    by solver work (see :func:`jax_work`).
    """
    from .jax_svm import SvmTask, fit_predict_many

    results: list[dict[float, Fit]] = []
    group: list[SvmTask] = []
    group_bytes = 0

    def flush() -> None:
        nonlocal group, group_bytes
        if not group:
            return
        reported = [0]

        def progress(done: int, _total: int) -> None:
            if on_work is not None and done > reported[0]:
                on_work(done - reported[0])
                reported[0] = done

        for fits in fit_predict_many(group, check_cancel=check_cancel, on_progress=progress):
            results.append({C: Fit(fit.predictions, converged=fit.converged, solver="jax",
                                   iterations=fit.iterations, error=fit.error)
                            for C, fit in fits.items()})
        group, group_bytes = [], 0

    for job in jobs:
        k_train, k_evaluate = slice_kernel(job.model.kernel(), job.train, job.evaluate)
        group.append(SvmTask(k_train, y[job.train], k_evaluate, job.Cs))
        group_bytes += k_train.nbytes + k_evaluate.nbytes
        if group_bytes >= slice_budget:
            flush()
        if check_cancel is not None:
            check_cancel()
    flush()
    return results
