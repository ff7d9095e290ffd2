"""The JAX solver's share of a job: fit jobs grouped to a memory budget and fitted by
:func:`.jax_svm.fit_predict_many`.

Which solver a job uses, and when the JAX solver gets a fit, is :mod:`.strategy`'s.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

import numpy as np

from rntk_core.devices import free_device_bytes

from ..progress import Counter, OnCount
from .fit import Fit, FitJob
from .libsvm import slice_kernel

__all__ = ["SLICE_BUDGET", "fit_with_jax", "jax_work"]

#: Bytes of kernel operands handed to one :func:`fit_predict_many` call: host slices of NumPy
#: kernels, or the distinct full kernels that stay on the device.
SLICE_BUDGET = 512 << 20


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
    progress: Counter | None = None,
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
    jobs go in one group, so its kernel is formed once per group. ``progress`` advances by
    solver work (see :func:`jax_work`) and is checked for a cancel between jobs and chunks.
    """
    from .jax_svm import fit_predict_many

    check = progress.check if progress is not None else None
    results: dict[int, dict[float, Fit]] = {}
    for group in _groups(jobs, y, slice_budget, check):
        fitted = fit_predict_many([task for _, task in group], check_cancel=check,
                                  on_progress=_increments(progress))
        for (index, _), fits in zip(group, fitted):
            results[index] = fits
    return [results[index] for index in range(len(jobs))]


def _groups(jobs: Sequence[FitJob], y: np.ndarray, slice_budget: int,
            check: Callable[[], None] | None) -> Iterator[list[tuple[int, Any]]]:
    """(job index, solver task) groups within the budget, each model's jobs together; the
    caller fits each group before the next is formed."""
    import jax

    from .jax_svm import KernelTask, SvmTask

    device_budget = max(slice_budget, free_device_bytes() // 4)
    first_seen: dict[int, int] = {}
    for index, job in enumerate(jobs):
        first_seen.setdefault(id(job.model), index)
    order = sorted(range(len(jobs)), key=lambda index: (first_seen[id(jobs[index].model)], index))
    group: list[tuple[int, Any]] = []
    kernels: dict[int, Any] = {}  # id(model) -> its kernel, for the current group
    group_bytes = 0
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
            yield group
            group, group_bytes = [], 0
            kernels.clear()
        if check is not None:
            check()
    if group:
        yield group


def _increments(progress: Counter | None) -> OnCount | None:
    """The solver's cumulative (done, total) as ``progress.update(more)`` calls."""
    if progress is None:
        return None
    reported = 0

    def on_count(done: int, _total: int) -> None:
        nonlocal reported
        if done > reported:
            progress.update(done - reported)
            reported = done

    return on_count
