"""Which solver fits a job's SVMs: one interface, chosen once per job.

``config.solver`` is ``"auto"``, ``"jax"`` or ``"libsvm"``; :func:`choose_solver` turns it into
the :class:`SolverStrategy` that runs (:func:`resolve_solver` names it), and :func:`fit_splits`
hands it the fits a stage needs:

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

Time: :func:`fit_splits` given a ``seconds`` dict adds each job's busy seconds to it, by job key
(split, model): libsvm and forest units as the wall time of each unit in its thread (parallel
units overlap, so their sum may exceed the stage's wall time); a batched JAX call's wall time
shared among its jobs in proportion to their nominal work (:func:`.dispatch.jax_work`). The
report divides each stage among the families from these (:mod:`..report.timing`).
"""

from __future__ import annotations

import functools
import threading
import time
from typing import Any, Callable, Hashable, Mapping, Protocol, Sequence

import numpy as np

from ..progress import SILENT, Progress
from . import SOLVERS, ResolvedSolver, Solver
from .dispatch import fit_with_jax, jax_work
from .fit import FitCache, FitJob
from .libsvm import KernelModel, run_parallel

__all__ = ["FitSeconds", "HybridSolver", "JaxSolver", "LibsvmSolver", "Requests", "SolverStrategy",
           "choose_solver", "fit_splits", "hybrid_iteration_cap", "resolve_solver"]

#: A stage's fits: split name -> (train, evaluate, {model key: [C, ...]}).
Requests = Mapping[str, tuple[np.ndarray, np.ndarray, Mapping[Hashable, Sequence[float | None]]]]
#: Busy seconds per fit job key ``(split, model key)``, summed over its Cs and solver passes.
FitSeconds = dict[tuple[str, Hashable], float]
_Units = list[tuple[tuple, Callable[[], dict]]]


def resolve_solver(requested: str) -> ResolvedSolver:
    """``auto`` -> ``hybrid`` (see the module's measurements); others as given."""
    if requested not in SOLVERS:
        raise ValueError(f"unknown solver {requested!r}; allowed: {', '.join(SOLVERS)}")
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


class SolverStrategy(Protocol):
    """Fits jobs into a cache, reporting to one stage of progress per pass."""

    name: ResolvedSolver

    def fit(self, jobs: Sequence[FitJob], y: np.ndarray, cache: FitCache, *, phase: str,
            progress: Progress, n_jobs: int | None, seconds: FitSeconds | None = None) -> None:
        """Fit every job's Cs into ``cache`` (keys ``(*job.key, C)``); add each job's busy
        seconds to ``seconds`` (by ``job.key``) when given."""

    def describe(self) -> dict[str, Any]:
        """The report's ``solver`` fields beyond what ran: tolerances, caps."""


class LibsvmSolver:
    """Every job in libsvm threads, with the models' own limits."""

    name: ResolvedSolver = "libsvm"

    def fit(self, jobs: Sequence[FitJob], y: np.ndarray, cache: FitCache, *, phase: str,
            progress: Progress, n_jobs: int | None, seconds: FitSeconds | None = None) -> None:
        _run_in_threads(_thread_units(jobs, y), cache, phase, progress, n_jobs, seconds)

    def describe(self) -> dict[str, Any]:
        return {}


class JaxSolver:
    """Kernel models on the batched JAX solver in one go; forests and 1-NN stay in threads."""

    name: ResolvedSolver = "jax"

    def fit(self, jobs: Sequence[FitJob], y: np.ndarray, cache: FitCache, *, phase: str,
            progress: Progress, n_jobs: int | None, seconds: FitSeconds | None = None) -> None:
        batched = [job for job in jobs if _has_kernel(job)]
        threaded = [job for job in jobs if not _has_kernel(job)]
        if threaded:  # without any, no (empty) bar is shown
            label = f"{phase}: forests" if batched else phase
            _run_in_threads(_thread_units(threaded, y), cache, label, progress, n_jobs, seconds)
        if batched:
            _fit_with_jax(batched, y, cache, phase, progress, seconds)

    def describe(self) -> dict[str, Any]:
        return {"jax_tolerance": _jax_tolerance()}


class HybridSolver:
    """libsvm capped at :func:`hybrid_iteration_cap`, the JAX solver for what did not converge,
    then libsvm with the caller's limit (none by default) for what still did not."""

    name: ResolvedSolver = "hybrid"

    def fit(self, jobs: Sequence[FitJob], y: np.ndarray, cache: FitCache, *, phase: str,
            progress: Progress, n_jobs: int | None, seconds: FitSeconds | None = None) -> None:
        kernel_jobs = [job for job in jobs if _has_kernel(job)]
        caps = {job.key: _capped(hybrid_iteration_cap(job.train.size), job.model.max_iter)
                for job in kernel_jobs}
        _run_in_threads(_thread_units(jobs, y, caps), cache, phase, progress, n_jobs, seconds)
        refits = _unconverged(kernel_jobs, cache)
        if not refits:
            return
        _fit_with_jax(refits, y, cache, f"{phase}: JAX refits of unconverged libsvm fits", progress, seconds)
        # The interior point can stall on numerically singular problems (a near-constant
        # kernel at C = 1e6); libsvm with the caller's limit is slow there but gets there.
        _run_in_threads(_thread_units(_unconverged(refits, cache), y), cache,
                        f"{phase}: libsvm for unconverged JAX fits", progress, n_jobs, seconds)

    def describe(self) -> dict[str, Any]:
        return {"jax_tolerance": _jax_tolerance(), "libsvm_iteration_cap": "max(100000, 1000 * n_train)"}


_STRATEGIES: dict[ResolvedSolver, Callable[[], SolverStrategy]] = {
    "libsvm": LibsvmSolver, "jax": JaxSolver, "hybrid": HybridSolver}


def choose_solver(requested: Solver) -> SolverStrategy:
    """The strategy for a config's ``solver`` (``auto``, ``jax`` or ``libsvm``)."""
    return _STRATEGIES[resolve_solver(requested)]()


def fit_splits(
    models: Mapping[Hashable, Any], y: np.ndarray, requests: Requests, cache: FitCache, *,
    solver: SolverStrategy | Solver = "libsvm", n_jobs: int | None = None, phase: str = "fits",
    progress: Progress = SILENT, residency: Callable[[Hashable], int] | None = None,
    seconds: FitSeconds | None = None,
) -> None:
    """Fit every requested (model, C) of every split once into ``cache``.

    Each job is one model on one split with all of its Cs not yet cached; ``solver`` (a
    strategy, or a config's name for :func:`choose_solver`) fits them. ``residency``
    (:meth:`Plan.residency`) orders the jobs, so those on one chunk of a chunked grid run
    together. ``seconds``: each job's busy seconds are added to it, by ``(split, model key)``
    (see the module's docstring).
    """
    jobs: list[FitJob] = []
    for split, (train, evaluate, wanted) in requests.items():
        for model, Cs in wanted.items():
            Cs = [C for C in dict.fromkeys(Cs) if (split, model, C) not in cache]
            if Cs:
                jobs.append(FitJob((split, model), models[model], train, evaluate, tuple(Cs)))
    if residency is not None:
        jobs.sort(key=lambda job: residency(job.key[1]))  # stable: the same order within a chunk
    strategy = choose_solver(solver) if isinstance(solver, str) else solver
    if seconds is None:
        strategy.fit(jobs, y, cache, phase=phase, progress=progress, n_jobs=n_jobs)
    else:
        strategy.fit(jobs, y, cache, phase=phase, progress=progress, n_jobs=n_jobs, seconds=seconds)


def _has_kernel(job: FitJob) -> bool:
    return isinstance(job.model, KernelModel)


def _jax_tolerance() -> float:
    from .interior_point import DEFAULT_TOL

    return DEFAULT_TOL


def _capped(cap: int, limit: int) -> int:
    """The hybrid's first-pass limit, never above the caller's own libsvm limit."""
    return cap if limit < 0 else min(cap, limit)


def _unconverged(jobs: Sequence[FitJob], cache: FitCache) -> list[FitJob]:
    """``jobs`` narrowed to their Cs whose cached fit did not converge (jobs left without any
    are dropped)."""
    narrowed = [FitJob(job.key, job.model, job.train, job.evaluate,
                       tuple(C for C in job.Cs if not cache[(*job.key, C)].converged))
                for job in jobs]
    return [job for job in narrowed if job.Cs]


def _fit_with_jax(jobs: Sequence[FitJob], y: np.ndarray, cache: FitCache, label: str,
                  progress: Progress, seconds: FitSeconds | None = None) -> None:
    """The JAX solver on ``jobs`` under one bar of solver work; cache the fits. The batched
    call's wall time goes to ``seconds`` shared by the jobs' nominal work."""
    start = time.perf_counter()
    with progress.stage(label, jax_work(jobs, y)) as counter:
        fitted = fit_with_jax(jobs, y, progress=counter)
    if seconds is not None:
        elapsed = time.perf_counter() - start
        work = [jax_work([job], y) for job in jobs]
        total = sum(work)
        for job, share in zip(jobs, work):
            part = elapsed * share / total if total > 0 else elapsed / len(jobs)
            seconds[job.key] = seconds.get(job.key, 0.0) + part
    for job, fits in zip(jobs, fitted):
        for C, fit in fits.items():
            cache[(*job.key, C)] = fit


def _thread_units(jobs: Sequence[FitJob], y: np.ndarray, caps: Mapping[tuple, int] | None = None) -> _Units:
    """Thread-pool jobs: one per C of a kernel model (sharing its slice), one per other model;
    ``caps``: libsvm iteration limits by job key, overriding the models' own."""
    units: _Units = []
    for job in jobs:
        limit = {"max_iter": caps[job.key]} if caps and job.key in caps else {}
        if _has_kernel(job):
            units += [(job.key, unit) for unit in
                      job.model.fit_units(y, job.train, job.evaluate, list(job.Cs), **limit)]
        else:
            units.append((job.key, functools.partial(job.model.fit_predict, y, job.train,
                                                     job.evaluate, list(job.Cs), **limit)))
    return units


def _run_in_threads(units: _Units, cache: FitCache, label: str, progress: Progress,
                    n_jobs: int | None, seconds: FitSeconds | None = None) -> None:
    """Run :func:`_thread_units` in the pool under one bar (cancel polled meanwhile); cache the
    fits; each unit's wall time in its thread goes to ``seconds`` under its job key."""
    calls = [unit for _, unit in units] if seconds is None else _timed_units(units, seconds)
    with progress.stage(label, len(units)) as counter:
        results = run_parallel(calls, n_jobs, on_done=counter.update, check_cancel=counter.check)
    for (key, _), fits in zip(units, results):
        for C, fit in fits.items():
            cache[(*key, C)] = fit


def _timed_units(units: _Units, seconds: FitSeconds) -> list[Callable[[], dict]]:
    """The units, each adding its own wall time to ``seconds[key]`` (under a lock: they run in
    threads)."""
    lock = threading.Lock()

    def timed(key: tuple, unit: Callable[[], dict]) -> dict:
        start = time.perf_counter()
        try:
            return unit()
        finally:
            elapsed = time.perf_counter() - start
            with lock:
                seconds[key] = seconds.get(key, 0.0) + elapsed

    return [functools.partial(timed, key, unit) for key, unit in units]
