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
  ``auto`` does not send everything to the JAX solver on a GPU either. (That run sliced every
  kernel on the host; with ``placement="device"`` the JAX path now gathers, solves and
  predicts on the device: to be measured there, ``benchmarks.placement_benchmark``.)

``auto`` ends with libsvm (no limit unless the caller set max_iter) on the fits the JAX solver
did not converge on (rare since it iterates on the centred kernel: 2 of yeast's fits under
``solver=jax`` on the 12 reference datasets, none of abalone's), so it always gives a converged
answer; ``jax`` reports such fits as non-converged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Hashable, Literal, Sequence

import numpy as np

from .libsvm import Fit, slice_kernel

__all__ = ["FitJob", "SolverName", "fit_with_jax", "free_device_bytes", "hybrid_iteration_cap", "jax_work",
           "resolve_solver"]

SolverName = Literal["auto", "jax", "libsvm"]
#: Bytes of kernel operands handed to one :func:`fit_predict_many` call: host slices of NumPy
#: kernels, or the distinct full kernels that stay on the device.
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


def free_device_bytes(*, unknown: int = 0) -> int:
    """Free memory of the first device; ``unknown`` on a CPU or where the backend does not tell."""
    import jax

    device = jax.devices()[0]
    if device.platform == "cpu":
        return unknown
    try:
        stats = device.memory_stats() or {}
        return max(0, int(stats["bytes_limit"] - stats.get("bytes_in_use", 0)))
    except (KeyError, TypeError, AttributeError):  # pragma: no cover - backends without stats
        return unknown


def fit_with_jax(
    jobs: Sequence[FitJob],
    y: np.ndarray,
    *,
    check_cancel: Callable[[], None] | None = None,
    on_work: Callable[[int], None] | None = None,
    slice_budget: int = SLICE_BUDGET,
) -> list[dict[float, Fit]]:
    """Fit every job's Cs on the batched JAX solver; results in the jobs' order.

    A model whose kernel is a JAX array (``placement="device"``) is handed over whole, with
    the split's indices: the solver gathers its blocks on the device, and nothing but the
    predictions comes back. A NumPy kernel is sliced here (the slices are smaller than the
    whole to send). Jobs are solved in groups of at most ``slice_budget`` bytes of kernel
    operands: host slices, or each distinct full kernel once (on a GPU, up to a quarter of the
    free device memory, as each kernel formed for the solver, e.g. a bi sum, is a new array),
    so a large grid never holds all of them at once, on the host or on the device. A model's
    jobs go in one group, so its kernel is formed once per group. ``on_work(units)`` advances
    progress by solver work (see :func:`jax_work`).
    """
    import jax

    from .jax_svm import KernelTask, SvmTask, fit_predict_many

    results: dict[int, dict[float, Fit]] = {}
    group: list[tuple[int, Any]] = []
    kernels: dict[int, Any] = {}  # id(model) -> its kernel, for the current group
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

        fitted = fit_predict_many([task for _, task in group], check_cancel=check_cancel,
                                  on_progress=progress)
        for (index, _), fits in zip(group, fitted):
            results[index] = {C: Fit(fit.predictions, converged=fit.converged, solver="jax",
                                     iterations=fit.iterations, error=fit.error)
                              for C, fit in fits.items()}
        group, group_bytes = [], 0
        kernels.clear()

    device_budget = max(slice_budget, free_device_bytes() // 4)
    first_seen: dict[int, int] = {}
    for index, job in enumerate(jobs):
        first_seen.setdefault(id(job.model), index)
    order = sorted(range(len(jobs)), key=lambda index: (first_seen[id(jobs[index].model)], index))
    for index in order:
        job = jobs[index]
        kernel = kernels.get(id(job.model))
        if kernel is None:
            kernel = job.model.kernel()
            if isinstance(kernel, jax.Array):  # kept for the model's other jobs in the group
                kernels[id(job.model)] = kernel
                group_bytes += kernel.nbytes
        if isinstance(kernel, jax.Array):
            group.append((index, KernelTask(kernel, y[job.train], job.train, job.evaluate, job.Cs)))
            limit = device_budget
        else:
            k_train, k_evaluate = slice_kernel(kernel, job.train, job.evaluate)
            group.append((index, SvmTask(k_train, y[job.train], k_evaluate, job.Cs)))
            group_bytes += k_train.nbytes + k_evaluate.nbytes
            limit = slice_budget
        if group_bytes >= limit:
            flush()
        if check_cancel is not None:
            check_cancel()
    flush()
    return [results[index] for index in range(len(jobs))]
