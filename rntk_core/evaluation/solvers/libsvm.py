"""Precomputed-kernel SVMs, fitted in parallel threads.

A :class:`KernelModel` wraps one full (N, N) Gram matrix (or a function producing it). For a
(train, evaluate) split it slices the kernel once, then fits ``SVC(kernel="precomputed", C=C)``
for every requested ``C`` on that slice. :func:`run_parallel` runs such jobs over the cores:
libsvm releases the GIL while it trains, so threads share the kernels without copies.

A fit whose solver stopped early (``fit_status_ != 0``, e.g. ``max_iter`` reached) is
reported through :attr:`Fit.converged`, so scikit-learn's "Solver terminated early" warning is
silenced for good at import: filters are process-wide, and a fit abandoned on cancel may end
after any scoped filter is gone.
"""

from __future__ import annotations

import functools
import os
import threading
import warnings
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import Callable, Sequence, TypeVar

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.svm import SVC

from .fit import Fit

__all__ = ["KernelModel", "default_jobs", "fit_svc", "run_parallel", "slice_kernel"]

_T = TypeVar("_T")

warnings.filterwarnings("ignore", message="Solver terminated early", category=ConvergenceWarning)


def default_jobs() -> int:
    """Worker threads: every core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def slice_kernel(
    kernel: np.ndarray, train: np.ndarray, evaluate: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The (train, train) and (evaluate, train) blocks of a full kernel, as float64.

    Args:
        kernel: (N, N) Gram matrix over the whole dataset.
        train, evaluate: integer row indices.

    Returns:
        ``K[train][:, train]`` of shape (n_train, n_train) and ``K[evaluate][:, train]`` of
        shape (n_evaluate, n_train), both C-contiguous float64 (what libsvm consumes).
    """
    k_train = np.ascontiguousarray(kernel[np.ix_(train, train)], dtype=np.float64)
    k_evaluate = np.ascontiguousarray(kernel[np.ix_(evaluate, train)], dtype=np.float64)
    return k_train, k_evaluate


def fit_svc(
    k_train: np.ndarray, y_train: np.ndarray, k_evaluate: np.ndarray, C: float, *, max_iter: int = -1
) -> Fit:
    """Fit ``SVC(kernel="precomputed", C=C)`` on one kernel slice and predict the evaluated rows."""
    model = SVC(kernel="precomputed", C=C, max_iter=max_iter).fit(k_train, y_train)
    return Fit(model.predict(k_evaluate).astype(np.int64), converged=model.fit_status_ == 0,
               solver="libsvm", iterations=int(np.max(model.n_iter_)))


class KernelModel:
    """SVCs on one precomputed kernel, for every C asked of it.

    Args:
        name: a readable name of the kernel (used in reports of non-converged fits).
        kernel: the (N, N) Gram matrix over the whole dataset, or a function returning it
            (called once per split, so a derived kernel such as fwd + rev is formed lazily);
            NumPy or a JAX array (a device kernel, which the JAX solver uses where it is).
        max_iter: libsvm's iteration limit, -1 for none.
    """

    def __init__(self, name: str, kernel: np.ndarray | Callable[[], np.ndarray], *, max_iter: int = -1):
        self.name = name
        self._kernel = kernel
        self.max_iter = max_iter

    def kernel(self) -> np.ndarray:
        """The full (N, N) Gram matrix."""
        return self._kernel() if callable(self._kernel) else self._kernel

    def fit_predict(
        self, y: np.ndarray, train: np.ndarray, evaluate: np.ndarray, Cs: Sequence[float | None],
        max_iter: int | None = None,
    ) -> dict[float | None, Fit]:
        """Slice the kernel once for this split, then fit and predict for each C.

        ``max_iter`` overrides the model's limit for this call (the hybrid solver's first pass).
        """
        fits: dict[float | None, Fit] = {}
        for unit in self.fit_units(y, train, evaluate, Cs, max_iter):
            fits.update(unit())
        return {C: fits[C] for C in Cs}

    def fit_units(
        self, y: np.ndarray, train: np.ndarray, evaluate: np.ndarray, Cs: Sequence[float],
        max_iter: int | None = None,
    ) -> list[Callable[[], dict[float, Fit]]]:
        """:meth:`fit_predict` as one job per C, for :func:`run_parallel`.

        The jobs share one slice of the kernel, cut by the first to run and dropped after the
        last, so threads split one kernel's Cs between them: the largest C, often the slowest
        fit by far, starts first instead of holding one thread at the end of a phase.
        """
        limit = self.max_iter if max_iter is None else max_iter
        shared = _SharedSlice(self, train, evaluate, len(Cs))

        def unit(C: float) -> dict[float, Fit]:
            try:
                k_train, k_evaluate = shared.get()
                return {C: fit_svc(k_train, y[train], k_evaluate, C, max_iter=limit)}
            finally:
                shared.release()

        return [functools.partial(unit, C) for C in sorted(Cs, reverse=True)]


class _SharedSlice:
    """A split's kernel slices, cut once for several threads and freed after the last user."""

    def __init__(self, model: KernelModel, train: np.ndarray, evaluate: np.ndarray, users: int) -> None:
        self._model, self._train, self._evaluate = model, train, evaluate
        self._users = users
        self._value: tuple[np.ndarray, np.ndarray] | None = None
        self._lock = threading.Lock()

    def get(self) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            if self._value is None:
                # A device kernel (placement="device") comes to the host once, whole.
                self._value = slice_kernel(np.asarray(self._model.kernel()), self._train, self._evaluate)
            return self._value

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users <= 0:
                self._value = None


def _lowest_priority(thread: int) -> None:
    """nice 19 for one thread (on Linux, setpriority on a thread id affects that thread only);
    raising one's own niceness needs no privilege."""
    try:
        os.setpriority(os.PRIO_PROCESS, thread, 19)
    except (OSError, AttributeError):  # pragma: no cover - a thread that just ended; not Linux
        pass


def run_parallel(
    jobs: Sequence[Callable[[], _T]],
    n_jobs: int | None = None,
    on_done: Callable[[], None] | None = None,
    check_cancel: Callable[[], None] | None = None,
    poll_seconds: float = 0.5,
) -> list[_T]:
    """Run jobs in a thread pool; results come back in the jobs' order.

    ``on_done`` is called (in the caller's thread) after each job finishes, e.g. to advance a
    progress bar. ``check_cancel`` is called there at least every ``poll_seconds`` while jobs
    run; whatever it (or ``on_done``, or a job) raises is re-raised at once: queued jobs are
    dropped and running ones are abandoned, not awaited. A libsvm fit cannot be interrupted,
    so an abandoned fit finishes in its thread and its result is discarded; the hybrid
    solver's iteration cap bounds how long that takes, and the thread drops to the lowest
    CPU priority (nice 19, Linux), so the worker's next job is not slowed by it.
    """
    n_jobs = n_jobs or default_jobs()
    results: list[_T | None] = [None] * len(jobs)
    if not jobs:
        return []
    running: dict[int, int] = {}  # job index -> native id of the thread running it

    def tracked(index: int) -> _T:
        running[index] = threading.get_native_id()
        try:
            return jobs[index]()
        finally:
            running.pop(index, None)

    # Even one job runs in a worker thread, so the caller can poll for a cancel meanwhile.
    pool = ThreadPoolExecutor(max_workers=min(n_jobs, len(jobs)), thread_name_prefix="svm-fit")
    try:
        pending = {pool.submit(tracked, index): index for index in range(len(jobs))}
        while pending:
            finished, _ = wait(pending, timeout=poll_seconds, return_when=FIRST_COMPLETED)
            for future in finished:
                results[pending.pop(future)] = future.result()
                if on_done:
                    on_done()
            if check_cancel:
                check_cancel()
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        for thread in list(running.values()):
            _lowest_priority(thread)
        raise
    pool.shutdown(wait=True)
    return results  # type: ignore[return-value]
