"""The evaluation pipeline: a Dataset and an EvaluationConfig in, a report dict (and files) out.

The steps of ``PROTOCOL-uci.md``, each a small function:

1. :func:`resolve_splits` (predefined or stratified) and :func:`normalise` (x_scale).
2. Candidates: every family's configurations in enumeration order
   (:func:`recurrent_candidates`, and the baselines of :mod:`rntk_core.evaluation.baselines`).
3. Kernels: ONE :func:`rntk_core.gram_grid` call per (sigma_w, step order) over the whole
   normalised X; every recurrent configuration is a key of one of those grids.
4. Validation: each distinct (kernel, C) is fitted once on the training indices and scored on
   the validation indices (families that share a kernel share the fit), in parallel threads.
5. Selection: the ties of the best validation accuracy, minus the last if they are even.
6. Test: each chosen (kernel, C) is fitted on each fold; the chosen configurations vote.
7. Report: the dict of the README, the selected Gram matrices under ``gram/``, and
   ``rntk_core.evaluation.report.write_report`` for report.json / .csv / .html.

The AVG families use the mean over steps (``sigma_v = 1/sqrt(T)``, recorded in their
params), as the spec's default: see :data:`AVG_SCALING`.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import math
import platform
import re
import subprocess
import threading
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Hashable, Iterator, Literal, Mapping, Sequence

import numpy as np
from tqdm import tqdm

from rntk_core import __version__
from rntk_core.api import GramGrid, gram_grid
from rntk_core.inputs import check_choice
from .baselines import mlp_family, nearest_family, poly_family, rbf_family, rf_family
from .cancel import Cancelled
from .config import BASELINE_FAMILIES, EvaluationConfig
from .datasets import Dataset, content_sha256, load_dataset
from .files import json_safe
from .protocol import (
    Candidate,
    Selection,
    accuracy,
    majority_vote,
    normalise,
    resolve_splits,
    select_ties,
    selection_pairs,
)
from .report.model import Report
from .solvers.dispatch import (
    FitJob,
    fit_with_jax,
    free_device_bytes,
    hybrid_iteration_cap,
    jax_work,
    resolve_solver,
)
from .solvers.libsvm import Fit, KernelModel, run_parallel

__all__ = [
    "AVG_SCALING",
    "DERIVED_FAMILIES",
    "FAMILY_NAMES",
    "RECURRENT_SPECS",
    "RecurrentFamily",
    "RecurrentKernel",
    "evaluate_dataset",
    "evaluate_path",
    "grid_bytes",
    "recurrent_candidates",
    "resolve_placement",
]

#: How the AVG families pool over steps: "mean" (the spec's default; sigma_v = 1/sqrt(T)) or
#: "sum" (the engine's pool="avg"). "mean" reproduces the reference table (see the tests).
AVG_SCALING: Literal["sum", "mean"] = "mean"


@dataclass(frozen=True)
class RecurrentFamily:
    """How a recurrent family reads the grids.

    Attributes:
        pool: ``"last"`` or ``"avg"``.
        directions: the engine directions enumerated (``"fwd"``, ``"rev"`` or ``"bi"``).
        permutations: RNN-P: forward, reversed and every ``config.rnnp_orders`` entry.
        kinds: a fixed kind restriction, or None for ``config.kinds``.
    """

    pool: str
    directions: tuple[str, ...]
    permutations: bool = False
    kinds: tuple[str, ...] | None = None


RECURRENT_SPECS: dict[str, RecurrentFamily] = {
    "RNN": RecurrentFamily("last", ("fwd",)),
    "RNN-P": RecurrentFamily("last", ("fwd", "rev"), permutations=True),
    "BI-RNN": RecurrentFamily("last", ("bi",)),
    "RNN-AVG": RecurrentFamily("avg", ("fwd",)),
    "BI-RNN-AVG": RecurrentFamily("avg", ("bi",)),
    # Table I's "RNN-P-CK" column: RNN-P with the CK only (not a config family name).
    "RNN-P-CK": RecurrentFamily("last", ("fwd", "rev"), permutations=True, kinds=("ck",)),
}
DERIVED_FAMILIES: tuple[str, ...] = ("RNN-P-CK",)
FAMILY_NAMES: tuple[str, ...] = tuple(RECURRENT_SPECS) + BASELINE_FAMILIES


# --------------------------------------------------------------------------- recurrent kernels


@dataclass(frozen=True)
class RecurrentKernel:
    """One recurrent Gram matrix: the grid it comes from and its key there.

    ``order`` is None for the dataset's own step order, else the user permutation applied to
    the steps (``X[:, order]``) before the grid was computed.
    """

    sigma_w: float
    order: tuple[int, ...] | None
    kind: str
    pool: str
    layers: int
    direction: str
    sigma_u: float
    sigma_b: float
    sigma_v: float = 1.0
    dtype: str = "float32"

    def params(self) -> dict[str, Any]:
        """Exactly the keyword arguments of :func:`rntk_core.gram` that give this kernel.

        ``dtype`` appears only when it is not the engine's default, float32.
        """
        params = {"kind": self.kind, "pool": self.pool, "layers": self.layers,
                  "direction": self.direction, "sigma_w": self.sigma_w, "sigma_u": self.sigma_u,
                  "sigma_b": self.sigma_b, "sigma_v": self.sigma_v}
        if self.dtype != "float32":
            params["dtype"] = self.dtype
        return params

    def grid_source(self) -> tuple:
        """What one :func:`gram_grid` call is made for: (sigma_w, order, dtype)."""
        return (self.sigma_w, self.order, self.dtype)

    def grid_key(self) -> tuple:
        """The kernel's key within its grid."""
        return (self.kind, self.pool, self.layers, self.direction, self.sigma_u, self.sigma_b)

    def name(self, family: str | None = None, order_index: int | None = None) -> str:
        """A file-name-safe label, e.g. ``RNN-ntk-last-L2-fwd-sw1.414-su0.5-sb0.1``."""
        parts = [family] if family else []
        parts += [self.kind, self.pool, f"L{self.layers}", self.direction]
        if self.order is not None:
            parts.append(f"order{order_index if order_index is not None else ''}")
        parts += [f"sw{self.sigma_w:.4g}", f"su{self.sigma_u:g}", f"sb{self.sigma_b:g}"]
        if self.sigma_v != 1.0:
            parts.append(f"sv{self.sigma_v:.4g}")
        return "-".join(parts)


Placement = Literal["auto", "host", "device"]
PLACEMENTS: tuple[str, ...] = ("auto", "host", "device")


class KernelStore:
    """The grids of one dataset, keyed by :meth:`RecurrentKernel.grid_source`, and look-up.

    Every grid is held for the whole job. ``placement``: ``"device"`` hands out JAX arrays
    (a grid's ``bi`` sum and the sigma_v scaling are then device operations, and nothing
    crosses to the host), ``"host"`` NumPy arrays, ``"auto"`` whatever the grids hold.
    """

    def __init__(self, grids: Mapping[tuple, GramGrid], placement: Placement = "auto"):
        self.grids = dict(grids)
        self.placement = check_choice(placement, "placement", PLACEMENTS)

    def residency(self, key: RecurrentKernel) -> int:
        """Kernels of equal residency are resident together; consumers that go through them
        in this order compute each chunk of a :class:`ChunkedKernelStore` once. Here: 0."""
        return 0

    def _grid(self, key: RecurrentKernel) -> GramGrid:
        return self.grids[key.grid_source()]

    def kernel(self, key: RecurrentKernel) -> Any:
        """The (N, N) Gram matrix of ``key`` (scaled by sigma_v**2 as :func:`gram` does)."""
        kernel = self._grid(key)[key.grid_key()]  # a new array on the device: no view of the grid
        if self.placement == "host":
            kernel = np.asarray(kernel)
        elif self.placement == "device":
            import jax.numpy as jnp

            kernel = jnp.asarray(kernel)
        if key.sigma_v != 1.0:
            kernel = kernel * key.sigma_v**2  # a new array either way: the grid is not scaled
        return kernel

    def describe(self) -> dict[str, Any] | None:
        """The report's ``solver.grid_chunks``: None when every grid was held at once."""
        return None


@dataclass(frozen=True)
class GridChunk:
    """Some (sigma_u, sigma_b) pairs of one grid source, computed and held together."""

    source: tuple  # RecurrentKernel.grid_source(): (sigma_w, order, dtype)
    pairs: tuple[tuple[float, float], ...]


class ChunkedKernelStore(KernelStore):
    """Grids too large for the device, one :class:`GridChunk` at a time.

    A chunk is computed (``compute``) when one of its kernels is asked for, and the chunk held
    before it is dropped first, so the device holds at most one chunk of grids. Kernels handed
    out are arrays of their own and outlive their chunk. Callers go through the kernels in
    :meth:`residency` order (fits, Gram files), so each chunk is computed once per stage;
    validation and the test folds each compute the chunks they need.
    """

    def __init__(self, chunks: Sequence[GridChunk], compute: Callable[[GridChunk], GramGrid],
                 placement: Placement = "device"):
        super().__init__({}, placement)
        self.chunks = list(chunks)
        self._compute = compute
        self._index = {(chunk.source, pair): index for index, chunk in enumerate(self.chunks)
                       for pair in chunk.pairs}
        self._held: tuple[int, GramGrid] | None = None
        self._lock = threading.Lock()  # libsvm threads ask for kernels concurrently
        self.computed = 0
        self.seconds = 0.0

    def residency(self, key: RecurrentKernel) -> int:
        """1 + the index of the chunk holding ``key`` (0 is "always resident")."""
        return 1 + self._index[(key.grid_source(), (key.sigma_u, key.sigma_b))]

    def _grid(self, key: RecurrentKernel) -> GramGrid:
        index = self.residency(key) - 1
        with self._lock:
            if self._held is None or self._held[0] != index:
                self._held = None  # freed before the next chunk is computed
                start = time.perf_counter()
                self._held = (index, self._compute(self.chunks[index]))
                self.computed += 1
                self.seconds += time.perf_counter() - start
            return self._held[1]

    def release(self) -> None:
        """Drop the chunk held (the next request computes its chunk again)."""
        with self._lock:
            self._held = None

    def describe(self) -> dict[str, Any]:
        return {"chunks": len(self.chunks), "pairs_per_chunk": max(len(c.pairs) for c in self.chunks),
                "computed": self.computed, "seconds": round(self.seconds, 3)}


def pair_bytes(n_samples: int, layers: int, dtype: str) -> int:
    """Bytes of one (sigma_u, sigma_b) pair of a grid: 2 directions x 4 readouts x L x N x N."""
    return 2 * 4 * layers * n_samples * n_samples * np.dtype(dtype).itemsize


def grid_bytes(n_samples: int, kernels: Sequence[RecurrentKernel], config: EvaluationConfig) -> int:
    """Bytes of the grids ``kernels`` need: (sigma_u, sigma_b) pairs x :func:`pair_bytes` per
    distinct grid source, at its dtype."""
    pairs = len(set(config.sigma_u)) * len(set(config.sigma_b))
    return sum(pairs * pair_bytes(n_samples, max(config.layers), dtype)
               for _, _, dtype in dict.fromkeys(kernel.grid_source() for kernel in kernels))


def resolve_placement(requested: str, needed_bytes: int, *, backend: str | None = None,
                      free_bytes: int | None = None) -> Literal["host", "device"]:
    """Where the recurrent kernels live. ``auto``: on the device when the backend is not the
    CPU and ``needed_bytes`` (the grids, or their smallest chunk: :func:`grid_chunks`) take at
    most half its free memory (a quarter is for the solver's batches, the rest for the kernels
    formed from the grids); else on the host."""
    if check_choice(requested, "placement", PLACEMENTS) != "auto":
        return requested  # type: ignore[return-value]
    if backend is None:
        import jax

        backend = jax.default_backend()
    if backend == "cpu":
        return "host"  # the "device" is host memory: a device copy would only add one
    free = free_device_bytes() if free_bytes is None else free_bytes
    return "device" if 0 < needed_bytes <= free // 2 else "host"


def grid_chunks(n_samples: int, kernels: Sequence[RecurrentKernel], config: EvaluationConfig,
                budget: int) -> list[GridChunk] | None:
    """How the device holds the grids within ``budget`` bytes: None when all of them fit at
    once (or the budget is unknown, 0), else chunks of as many (sigma_u, sigma_b) pairs of
    one grid source as fit (at least one), in enumeration order."""
    if budget <= 0 or grid_bytes(n_samples, kernels, config) <= budget:
        return None
    pairs = list(itertools.product(sorted(set(config.sigma_u)), sorted(set(config.sigma_b))))
    chunks = []
    for source in dict.fromkeys(kernel.grid_source() for kernel in kernels):
        size = max(1, budget // pair_bytes(n_samples, max(config.layers), source[2]))
        chunks += [GridChunk(source, tuple(pairs[start:start + size]))
                   for start in range(0, len(pairs), size)]
    return chunks


def _family_kinds(spec: RecurrentFamily, config: EvaluationConfig) -> list[str]:
    wanted = spec.kinds if spec.kinds is not None else config.kinds
    kinds = [kind for kind in ("ck", "ntk") if kind in wanted]
    if not kinds:
        raise ValueError(f"kinds {config.kinds} leave nothing to evaluate")
    return kinds


def _step_variants(
    spec: RecurrentFamily, config: EvaluationConfig, n_steps: int
) -> list[tuple[tuple[int, ...] | None, str]]:
    """(order, direction) pairs in enumeration order: fwd, rev, then the user orders."""
    if not spec.permutations:
        return [(None, direction) for direction in spec.directions]
    forward = tuple(range(n_steps))
    variants: list[tuple[tuple[int, ...] | None, str]] = []
    for order in config.rnnp_orders_for(n_steps):
        if order == forward:
            variants.append((None, "fwd"))
        elif order == forward[::-1]:
            variants.append((None, "rev"))
        else:
            variants.append((order, "fwd"))
    return variants


def recurrent_candidates(
    family: str, config: EvaluationConfig, n_steps: int, dtype: str = "float32"
) -> list[Candidate]:
    """The family's configurations in the protocol's enumeration order.

    Outermost first: sigma_w, sigma_u, sigma_b, layers (each ascending), kind (ck, ntk),
    direction / order (RNN-P only), then C ascending. The model of each is a
    :class:`RecurrentKernel`.
    """
    spec = RECURRENT_SPECS[family]
    sigma_v = 1.0 / math.sqrt(n_steps) if spec.pool == "avg" and AVG_SCALING == "mean" else 1.0
    user_orders = config.rnnp_orders_for(n_steps)[2:] if spec.permutations else []
    candidates = []
    for sigma_w, sigma_u, sigma_b, layers, kind, (order, direction), C in itertools.product(
        sorted(config.sigma_w), sorted(config.sigma_u), sorted(config.sigma_b),
        sorted(config.layers), _family_kinds(spec, config), _step_variants(spec, config, n_steps),
        sorted(config.C),
    ):
        kernel = RecurrentKernel(sigma_w, order, kind, spec.pool, layers, direction,
                                 sigma_u, sigma_b, sigma_v, dtype)
        note = None if order is None else {"order": list(order), "order_index": user_orders.index(order)}
        candidates.append(Candidate(family, kernel.params(), C, kernel, note))
    return candidates


# --------------------------------------------------------------------------- progress


@dataclass
class Progress:
    """Where progress goes: tqdm bars on stderr and/or a callback, plus a cancel check."""

    bars: bool = False
    on_progress: Callable[[str, int, int], None] | None = None
    should_cancel: Callable[[], bool] | None = None

    def check(self) -> None:
        if self.should_cancel is not None and self.should_cancel():
            raise Cancelled("the evaluation was cancelled")

    def report(self, stage: str, done: int, total: int) -> None:
        """A stage without a bar (e.g. drawing the report): the callback only."""
        if self.on_progress is not None:
            self.on_progress(stage, done, total)


class _Phase:
    """One phase's counter: advances the bar, reports (stage, done, total), checks cancel."""

    def __init__(self, phase: str, total: int, progress: Progress, bar: tqdm) -> None:
        self.phase, self.total, self.done = phase, total, 0
        self.progress, self.bar = progress, bar

    def update(self, count: int = 1) -> None:
        self.done += count
        self.bar.update(count)
        if self.progress.on_progress is not None:
            self.progress.on_progress(self.phase, self.done, self.total)
        self.progress.check()


@contextmanager
def _bar(phase: str, total: int, progress: Progress) -> Iterator[_Phase]:
    bar = tqdm(total=total, desc=phase, unit="job", disable=not progress.bars, leave=True,
               dynamic_ncols=True)
    counter = _Phase(phase, total, progress, bar)
    try:
        counter.update(0)
        yield counter
    finally:
        bar.close()


def compute_grids(
    X: np.ndarray, lengths: np.ndarray | None, kernels: Sequence[RecurrentKernel],
    config: EvaluationConfig, on_done: Callable[[], None] | None = None,
    on_tile: Callable[[int, int], None] | None = None, memory_budget: int | None = None,
    placement: Placement = "host", grid_memory: int | None = None,
) -> KernelStore:
    """One :func:`gram_grid` call per distinct (sigma_w, order) among ``kernels``, kept on the
    device (``gram_grid(output="device")``) or brought to the host, as ``placement`` says
    (``auto``: :func:`resolve_placement`).

    On the device the grids may hold ``grid_memory`` bytes at once (default: half the free
    device memory; unknown on the CPU backend, where nothing is chunked). Grids larger than
    that are not computed here: a :class:`ChunkedKernelStore` computes them a chunk of sigma
    pairs at a time as the fits ask (:func:`grid_chunks`).
    """
    n_samples = X.shape[0]
    sources = list(dict.fromkeys(kernel.grid_source() for kernel in kernels))
    budget = free_device_bytes() // 2 if grid_memory is None else grid_memory
    chunks = grid_chunks(n_samples, kernels, config, budget)
    smallest = min(pair_bytes(n_samples, max(config.layers), chunk.source[2]) * len(chunk.pairs)
                   for chunk in chunks) if chunks else grid_bytes(n_samples, kernels, config)
    placement = resolve_placement(placement, smallest, free_bytes=2 * budget)

    def grid(source: tuple, pairs: Sequence[tuple[float, float]], output: str) -> GramGrid:
        sigma_w, order, dtype = source
        steps = X if order is None else X[:, list(order)]
        return gram_grid(steps, sigma_w=sigma_w, pairs=pairs, layers=max(config.layers), lengths=lengths,
                         dtype=dtype, on_tile=on_tile, memory_budget=memory_budget, output=output)

    if placement == "device" and chunks is not None:
        for _ in sources:
            if on_done:
                on_done()  # computed later, chunk by chunk, as the fits ask
        return ChunkedKernelStore(chunks, lambda chunk: grid(chunk.source, chunk.pairs, "device"))
    everything = list(itertools.product(sorted(set(config.sigma_u)), sorted(set(config.sigma_b))))
    grids = {}
    for source in sources:
        grids[source] = grid(source, everything, placement)
        if on_done:
            on_done()
    return KernelStore(grids, placement)


# --------------------------------------------------------------------------- candidates


@dataclass
class Plan:
    """Every family's candidates (enumeration order) and the models they fit."""

    candidates: dict[str, list[Candidate]]
    models: dict[Hashable, Any]
    store: KernelStore | None = None
    #: Where the kernels are (the recurrent ones and the RBF, POLY and MLP baselines'):
    #: ``"host"`` or ``"device"``.
    placement: str = "host"

    def residency(self, model: Hashable) -> int:
        """:meth:`KernelStore.residency` of a recurrent model; 0 (always there) for the others."""
        if self.store is None or not isinstance(model, RecurrentKernel):
            return 0
        return self.store.residency(model)


def check_families(families: Sequence[str]) -> list[str]:
    """Known, de-duplicated family names (config names plus the derived RNN-P-CK)."""
    unknown = [name for name in families if name not in FAMILY_NAMES]
    if unknown:
        raise ValueError(f"unknown families {', '.join(map(repr, unknown))}; allowed: {', '.join(FAMILY_NAMES)}")
    if not families:
        raise ValueError("no families to evaluate")
    return list(dict.fromkeys(families))


def _baseline(family: str, X: np.ndarray, lengths: np.ndarray | None, rows: np.ndarray,
              config: EvaluationConfig, max_iter: int, columns: np.ndarray,
              check: Callable[[], None] | None = None, device: bool = False):
    if family in ("1NN-ED", "1NN-DTW"):
        return nearest_family(family, X, lengths, rows, config, columns, check=check)
    if family == "RBF":
        return rbf_family(rows, config, max_iter=max_iter, device=device)
    if family == "POLY":
        return poly_family(rows, config, max_iter=max_iter, device=device)
    if family == "MLP":
        return mlp_family(rows, config, max_iter=max_iter, device=device)
    return rf_family(rows, config)


def build_plan(
    families: Sequence[str], X: np.ndarray, lengths: np.ndarray | None, config: EvaluationConfig,
    *, max_iter: int = -1, progress: Progress = Progress(), dtype: str = "float32",
    memory_budget: int | None = None, train_columns: np.ndarray | None = None,
    placement: Placement = "auto", grid_memory: int | None = None,
) -> Plan:
    """Candidates and models for ``families``; computes the recurrent grids and baseline kernels.

    The recurrent candidates are enumerated (and so validated, e.g. ``rnnp_orders`` against T)
    before the progress bar opens and any kernel is computed. Baselines see each sequence
    as one row; unequal lengths are first resampled to T (:func:`baseline_rows`), except by
    1NN-DTW, which compares them as they are. ``train_columns``: every index any training part
    uses (default all), the only columns 1-NN distances are computed for. ``placement``: where
    the kernels live and ``grid_memory`` what the recurrent grids may hold on the device
    (:func:`compute_grids`). The RBF, POLY and MLP kernels follow the recurrent ones (without
    any: the device when ``placement`` resolves there for one float64 N x N kernel).
    """
    recurrent = [name for name in families if name in RECURRENT_SPECS]
    baselines = [name for name in families if name not in RECURRENT_SPECS]
    candidates = {name: recurrent_candidates(name, config, X.shape[1], dtype) for name in recurrent}
    kernels = list(dict.fromkeys(c.model for name in recurrent for c in candidates[name]))
    if lengths is not None and any(kernel.order is not None for kernel in kernels):
        raise ValueError("rnnp_orders cannot be used with variable-length sequences")
    n_grids = len({kernel.grid_source() for kernel in kernels})
    models: dict[Hashable, Any] = {}
    store = None
    where = "host"
    with _bar("kernels", n_grids + len(baselines), progress) as bar:
        if kernels:
            store = compute_grids(X, lengths, kernels, config, on_done=bar.update,
                                  on_tile=lambda done, total: progress.check(),
                                  memory_budget=memory_budget, placement=placement,
                                  grid_memory=grid_memory)
            for kernel in kernels:
                models[kernel] = KernelModel(kernel.name(), functools.partial(store.kernel, kernel),
                                             max_iter=max_iter)
            where = store.placement
        elif baselines:
            where = resolve_placement(placement, 8 * X.shape[0] ** 2)
        rows = baseline_rows(X, lengths)
        columns = np.arange(X.shape[0]) if train_columns is None else train_columns
        for name in baselines:
            candidates[name], family_models = _baseline(name, X, lengths, rows, config, max_iter, columns,
                                                          check=progress.check, device=where == "device")
            models.update(family_models)
            bar.update()
    ordered = {name: candidates[name] for name in families}
    return Plan(ordered, models, store, where)


#: The report's note on how baselines see sequences of unequal lengths.
RESAMPLED_NOTE = ("sequences of unequal lengths are resampled to T = {steps} steps by linear "
                  "interpolation for the baselines that need equal lengths (RBF, POLY, MLP, RF, "
                  "1NN-ED); 1NN-DTW and the recurrent kernels use the true lengths")


def baseline_rows(X: np.ndarray, lengths: np.ndarray | None) -> np.ndarray:
    """(N, T * m) rows; unequal lengths are resampled to T by linear interpolation, so the
    front padding is never read as data."""
    if lengths is None:
        return X.reshape(X.shape[0], -1)
    from .nearest import resample

    return resample(X, lengths, X.shape[1]).reshape(X.shape[0], -1)


# --------------------------------------------------------------------------- fitting


FitCache = dict[tuple[str, Hashable, float | None], Fit]


def fit_splits(
    models: Mapping[Hashable, Any], y: np.ndarray,
    requests: Mapping[str, tuple[np.ndarray, np.ndarray, Mapping[Hashable, Sequence[float | None]]]],
    cache: FitCache, *, n_jobs: int | None = None, phase: str = "fits",
    progress: Progress = Progress(), solver: str = "libsvm",
    residency: Callable[[Hashable], int] | None = None,
) -> None:
    """Fit every requested (model, C) of every split once into ``cache``.

    ``requests`` maps a split name to (train, evaluate, {model: [C, ...]}). Each job slices one
    model's kernel once for its split and fits all of its Cs; fits already cached are skipped.
    ``solver`` is a resolved name (:func:`resolve_solver`): ``libsvm`` runs every job in
    threads; ``jax`` sends kernel models to the batched solver in one go (forests stay in
    threads); ``hybrid`` runs libsvm with an iteration cap, refits what did not converge
    with the JAX solver, and what still did not with libsvm. That last libsvm pass keeps the
    caller's limit (``max_iter``, none by default). ``residency`` (:meth:`Plan.residency`)
    orders the jobs, so those on one chunk of a chunked grid run together.
    """
    jobs: list[FitJob] = []
    for split, (train, evaluate, wanted) in requests.items():
        for model, Cs in wanted.items():
            Cs = [C for C in dict.fromkeys(Cs) if (split, model, C) not in cache]
            if Cs:
                jobs.append(FitJob((split, model), models[model], train, evaluate, tuple(Cs)))
    if residency is not None:
        jobs.sort(key=lambda job: residency(job.key[1]))  # stable: the same order within a chunk
    kernel_jobs = [job for job in jobs if isinstance(job.model, KernelModel)]
    jax_first = solver == "jax"
    if jax_first:
        threaded = [job for job in jobs if not isinstance(job.model, KernelModel)]
        batched = kernel_jobs
    else:
        threaded, batched = jobs, []
    cap = {}
    if solver == "hybrid":
        cap = {job.key: _capped(hybrid_iteration_cap(job.train.size), job.model.max_iter)
               for job in kernel_jobs}
    # On the JAX path the threads only run forests; without any, no (empty) bar is shown.
    show_threads = bool(threaded) or not jax_first
    label = phase if not jax_first or not batched else f"{phase}: forests"
    units = _thread_units(threaded, y, cap)
    _run_in_threads(units, cache, label, progress if show_threads else Progress(), n_jobs)
    if solver == "hybrid":
        batched = [FitJob(job.key, job.model, job.train, job.evaluate,
                          tuple(C for C in job.Cs if not cache[(*job.key, C)].converged))
                   for job in kernel_jobs]
        batched = [job for job in batched if job.Cs]
    if batched:
        label = phase if jax_first else f"{phase}: JAX refits of unconverged libsvm fits"
        with _bar(label, jax_work(batched, y), progress) as bar:
            refits = fit_with_jax(batched, y, check_cancel=progress.check, on_work=bar.update)
        for job, fits in zip(batched, refits):
            for C, fit in fits.items():
                cache[(*job.key, C)] = fit
    if solver == "hybrid" and batched:
        # The interior point can stall on numerically singular problems (a near-constant
        # kernel at C = 1e6); libsvm with the caller's limit (none by default) is slow there
        # but gets there.
        rest = [FitJob(job.key, job.model, job.train, job.evaluate,
                       tuple(C for C in job.Cs if not cache[(*job.key, C)].converged))
                for job in batched]
        rest = [job for job in rest if job.Cs]
        _run_in_threads(_thread_units(rest, y, {}), cache, f"{phase}: libsvm for unconverged JAX fits",
                        progress, n_jobs)


def _thread_units(jobs: Sequence[FitJob], y: np.ndarray, cap: Mapping[tuple, int]
                  ) -> list[tuple[tuple, Callable[[], dict]]]:
    """Thread-pool jobs: one per C of a kernel model (sharing its slice), one per other model."""
    units = []
    for job in jobs:
        limit = {"max_iter": cap[job.key]} if job.key in cap else {}
        if isinstance(job.model, KernelModel):
            units += [(job.key, unit) for unit in
                      job.model.fit_units(y, job.train, job.evaluate, list(job.Cs), **limit)]
        else:
            units.append((job.key, functools.partial(job.model.fit_predict, y, job.train,
                                                     job.evaluate, list(job.Cs), **limit)))
    return units


def _run_in_threads(units: Sequence[tuple[tuple, Callable[[], dict]]], cache: FitCache, label: str,
                    progress: Progress, n_jobs: int | None) -> None:
    """Run :func:`_thread_units` in the pool under one bar (cancel polled meanwhile); cache the fits."""
    with _bar(label, len(units), progress) as bar:
        results = run_parallel([unit for _, unit in units], n_jobs, on_done=bar.update,
                               check_cancel=progress.check)
    for (key, _), fits in zip(units, results):
        for C, fit in fits.items():
            cache[(*key, C)] = fit


def _capped(cap: int, limit: int) -> int:
    """The hybrid's first-pass limit, never above the caller's own libsvm limit."""
    return cap if limit < 0 else min(cap, limit)


def _wanted(candidates: Sequence[Candidate]) -> dict[Hashable, list[float | None]]:
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


def _selection_split(index: int, selection: Selection) -> str:
    """The fit cache's name for a selection pair: "validation", or "cv0", "cv1", ..."""
    return "validation" if selection.method == "holdout" else f"cv{index}"


def validate(plan: Plan, y: np.ndarray, selection: Selection, cache: FitCache,
             *, n_jobs: int | None, progress: Progress,
             solver: str = "libsvm") -> dict[str, FamilyOutcome]:
    """Score every candidate (its mean accuracy over the selection's pairs) and choose each
    family's ties.

    Baseline models are queued first: their large-C fits are the slowest (RBF at C = 1e6 takes
    over a minute on yeast, a recurrent kernel under a second), so they should not start last.
    """
    families = sorted(plan.candidates, key=lambda family: family in RECURRENT_SPECS)
    everything = [c for family in families for c in plan.candidates[family]]
    wanted = _wanted(everything)
    requests = {_selection_split(k, selection): (fit, score, wanted)
                for k, (fit, score) in enumerate(selection.pairs)}
    fit_splits(plan.models, y, requests, cache, n_jobs=n_jobs, phase="validation fits", progress=progress,
               solver=solver, residency=plan.residency)
    outcomes = {}
    for family, candidates in plan.candidates.items():
        scores = [
            float(np.mean([
                accuracy(cache[(_selection_split(k, selection), c.model, c.C)].predictions, y[score])
                for k, (_, score) in enumerate(selection.pairs)
            ]))
            for c in candidates
        ]
        outcomes[family] = FamilyOutcome(scores, select_ties(scores))
    return outcomes


def score_folds(plan: Plan, outcomes: Mapping[str, FamilyOutcome], y: np.ndarray, n_classes: int,
               folds: Sequence[tuple[np.ndarray, np.ndarray]], cache: FitCache,
               *, n_jobs: int | None, progress: Progress, solver: str = "libsvm") -> None:
    """Fit the chosen candidates on each fold, vote, and store the fold accuracies."""
    chosen = {family: [plan.candidates[family][i] for i in outcome.chosen]
              for family, outcome in outcomes.items()}
    everything = [c for family in chosen.values() for c in family]
    requests = {f"fold{k}": (train, test, _wanted(everything)) for k, (train, test) in enumerate(folds)}
    fit_splits(plan.models, y, requests, cache, n_jobs=n_jobs, phase="test folds", progress=progress,
               solver=solver, residency=plan.residency)
    for family, outcome in outcomes.items():
        outcome.fold_accuracies = []
        for k, (_, test) in enumerate(folds):
            votes = np.stack([cache[(f"fold{k}", c.model, c.C)].predictions for c in chosen[family]])
            outcome.fold_accuracies.append(accuracy(majority_vote(votes, n_classes), y[test]))


def non_converged(plan: Plan, outcomes: Mapping[str, FamilyOutcome], cache: FitCache,
                  n_folds: int, selection: Selection) -> list[dict]:
    """One entry per (family, configuration, split) whose SVM stopped before converging."""
    failed = {key for key, fit in cache.items() if not fit.converged}
    entries = []
    for family, candidates in plan.candidates.items():
        chosen = set(outcomes[family].chosen)
        for index, candidate in enumerate(candidates):
            splits = [_selection_split(k, selection) for k in range(len(selection.pairs))]
            splits += [f"fold{k}" for k in range(n_folds)] if index in chosen else []
            for split in splits:
                if (split, candidate.model, candidate.C) in failed:
                    entries.append({**_describe(candidate), "family": family, "split": split,
                                    "model": plan.models[candidate.model].name})
    return entries


# --------------------------------------------------------------------------- report


def solver_summary(requested: str, resolved: str, cache: FitCache, plan: Plan) -> dict[str, Any]:
    """What ran: the requested and resolved solver, where the kernels were (and the recurrent
    grids' chunks, if any), and fit counts per solver."""
    from .solvers.jax_svm import DEFAULT_TOL

    counts: dict[str, int] = defaultdict(int)
    for fit in cache.values():
        if fit.solver is not None:
            counts[fit.solver] += 1
    summary: dict[str, Any] = {"requested": requested, "used": resolved, "placement": plan.placement,
                               "fits": dict(counts),
                               "non_converged": sum(not fit.converged for fit in cache.values())}
    if resolved != "libsvm":
        summary["jax_tolerance"] = DEFAULT_TOL
    chunks = plan.store.describe() if plan.store is not None else None
    if chunks is not None:
        summary["grid_chunks"] = chunks
    if resolved == "hybrid":
        summary["libsvm_iteration_cap"] = "max(100000, 1000 * n_train)"
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


def _describe(candidate: Candidate) -> dict[str, Any]:
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
        {"family": family, **_describe(candidate), "validation_accuracy": score}
        for family, candidates in plan.candidates.items()
        for candidate, score in zip(candidates, outcomes[family].scores)
    ]
    families = {
        family: {
            "test_accuracy": outcome.test_accuracy,
            "fold_accuracies": outcome.fold_accuracies,
            "validation_accuracy": outcome.validation_accuracy,
            "chosen": [_describe(plan.candidates[family][i]) for i in outcome.chosen],
        }
        for family, outcome in outcomes.items()
    }
    return configurations, families


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
    entries: list[dict] = []
    stems: dict[RecurrentKernel, str] = {}
    used: set[str] = set()
    selected = selected_kernels(plan, outcomes, everything)
    for kernel, info in selected.items():
        order_index = info["note"]["order_index"] if info["note"] else None
        stem = base = kernel.name(info["family"], order_index)
        for copy in itertools.count(2):  # names round sigma_w to 4 digits: keep them distinct
            if stem not in used:
                break
            stem = f"{base}-{copy}"
        used.add(stem)
        stems[kernel] = stem
    first = None
    for kernel in sorted(selected, key=plan.residency):  # each chunk of a chunked grid once
        matrix = np.asarray(plan.store.kernel(kernel))  # one contiguous copy from the device
        (out_dir / "gram").mkdir(parents=True, exist_ok=True)
        np.save(out_dir / "gram" / f"{stems[kernel]}.npy", matrix)
        if kernel == next(iter(selected)):
            first = matrix
    for kernel, info in selected.items():
        stem = stems[kernel]
        entry = {"file": f"gram/{stem}.npy", "params": kernel.params(), "x_scale": x_scale,
                 "families": info["families"], "selected": info["selected"]}
        if kernel.order is not None:
            entry["order"] = list(kernel.order)
        if uses_lengths:
            entry["lengths"] = "the dataset's sequence lengths (pass lengths= to gram)"
        entries.append(entry)
    return entries, first


def _notes(dataset: Dataset, families: Sequence[str], selection: Selection) -> list[str]:
    notes = [selection.note] if selection.note else []
    equal_length_baselines = [name for name in families if name in BASELINE_FAMILIES and name != "1NN-DTW"]
    if dataset.lengths is not None and equal_length_baselines:
        notes.append(RESAMPLED_NOTE.format(steps=dataset.n_steps))
    return notes


def dataset_summary(dataset: Dataset) -> dict[str, Any]:
    summary = {"name": dataset.name, "format": dataset.format, "n_samples": dataset.n_samples,
               "n_steps": dataset.n_steps, "n_features": dataset.n_features,
               "n_classes": dataset.n_classes, "classes": [str(c) for c in dataset.classes]}
    if dataset.lengths is not None:
        summary["lengths"] = {"min": int(dataset.lengths.min()), "max": int(dataset.lengths.max())}
    return summary


def versions() -> dict[str, str]:
    import jax
    import sklearn

    return {"rntk": __version__, "jax": jax.__version__, "numpy": np.__version__,
            "scikit-learn": sklearn.__version__, "python": platform.python_version()}


def device_description() -> str:
    import jax

    device = jax.devices()[0]
    return f"{device.device_kind} ({device.platform}, {len(jax.devices())} device(s))"


def majority_class_accuracy(y: np.ndarray, folds: Sequence[tuple[np.ndarray, np.ndarray]]) -> float:
    """The test accuracy of always predicting each fold's most frequent training class."""
    scores = []
    for train, test in folds:
        majority = np.bincount(y[train]).argmax()
        scores.append(float(np.mean(y[test] == majority)))
    return float(np.mean(scores))


def split_digest(splits: Any) -> str:
    """sha256 over the split indices (``name:i,j,...`` lines in the order of ``Splits.parts``)."""
    digest = hashlib.sha256()
    for name, indices in splits.parts():
        digest.update(f"{name}:{','.join(map(str, np.asarray(indices).tolist()))}\n".encode())
    return digest.hexdigest()


def git_commit() -> str | None:
    """The source tree's git commit when it is a checkout (None for an installed wheel)."""
    root = Path(__file__).resolve().parents[2]
    try:
        run = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = run.stdout.strip()
    return commit if run.returncode == 0 and re.fullmatch(r"[0-9a-f]{40}", commit) else None


def _utc(moment: float) -> str:
    return datetime.fromtimestamp(moment, tz=timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def write_splits(out_dir: Path, dataset: Dataset, splits: Any, X: np.ndarray, x_scale: float) -> str:
    """``splits.npz``: the labels and every split's indices, rows in the Gram matrices' order.

    With the saved ``gram/*.npy`` (rows and columns in dataset order, ``sample_index``) this is
    enough to refit any fold: ``K[np.ix_(fold0_test, fold0_train)]`` is K(test, train).
    ``X`` is the normalised input the kernels were computed from.
    """
    arrays = {"y": dataset.y, "sample_index": np.arange(dataset.n_samples), "X": X,
              "x_scale": np.float64(x_scale), **dict(splits.parts())}
    (out_dir).mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out_dir / "splits.npz", **arrays)
    return "splits.npz"


def draw_figures(report: dict, gram: np.ndarray | None, labels: np.ndarray,
                 check: Callable[[], None] | None = None) -> dict:
    from .report.html import draw_figures as draw

    return draw(report, gram, labels, check)


def save_report(report: dict, out_dir: Path, gram: np.ndarray | None, labels: np.ndarray,
                drawn: dict | None = None) -> None:
    """report.json / .csv / .html (see :mod:`rntk_core.evaluation.report.writer`)."""
    from .report.writer import write_report

    write_report(report, out_dir, selected_gram=gram, labels=labels, drawn=drawn)


# --------------------------------------------------------------------------- orchestration


@contextmanager
def _timed(timings: dict[str, float], phase: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[phase] = timings.get(phase, 0.0) + time.perf_counter() - start


def evaluate_dataset(
    dataset: Dataset,
    config: EvaluationConfig,
    *,
    families: Sequence[str] | None = None,
    out_dir: str | Path | None = None,
    progress: bool = False,
    on_progress: Callable[[str, int, int], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    n_jobs: int | None = None,
    max_iter: int = -1,
    dtype: str = "float32",
    load_seconds: float = 0.0,
    grams: Literal["selected", "all", "none"] = "selected",
    memory_budget: int | None = None,
    provenance: Mapping[str, Any] | None = None,
    started_at: float | None = None,
    placement: Placement = "auto",
    grid_memory: int | None = None,
) -> dict[str, Any]:
    """Run the protocol on one dataset and return the report dict.

    Args:
        dataset: the loaded dataset.
        config: grids and protocol.
        families: overrides ``config.families``; may also name the derived ``"RNN-P-CK"``.
        out_dir: if given, writes ``gram/*.npy`` (the selected recurrent kernels) and
            report.json / report.csv / report.html there.
        progress: show tqdm bars (stderr) for the phases.
        on_progress: called with (stage, done, total) as each phase advances.
        should_cancel: polled between tiles, between DTW blocks, between interior-point
            chunks, every 0.5 s while libsvm fits run and between the report's figures; once
            it returns True the evaluation stops with :class:`Cancelled` (running libsvm fits
            are abandoned, not awaited, at nice 19).
        n_jobs: SVM worker threads (default: every core).
        max_iter: libsvm's iteration limit (-1: none); fits that hit it are reported.
        dtype: the recurrent kernels' precision, ``"float32"`` (the engine's default) or
            ``"float64"`` (about 2.5x the kernel time on CPU; removes float32's near-tie flips
            against the float64 reference table).
        load_seconds: time already spent loading, reported as ``timings["load"]``.
        grams: which recurrent Gram matrices ``out_dir/gram/`` gets: the selected ones, every
            one of the grid, or none (the report's picture then shows none either).
        memory_budget: device bytes for the engine's working set (default: the engine's).
        provenance: recorded in the report's ``reproducibility`` (e.g. ``dataset_sha256``,
            ``command`` or ``request``, ``job_id``).
        started_at: when the run began (epoch seconds; default: now minus ``load_seconds``).
        placement: where the kernels live (the recurrent ones, and RBF, POLY and MLP's):
            ``"device"`` keeps them there for the whole job (the JAX solver gathers, solves
            and predicts there; libsvm fits copy a kernel to the host once per fit job,
            ``gram/`` files once each), ``"host"`` brings every grid to the host, ``"auto"`` (:func:`resolve_placement`) the device on a
            GPU when the grids (or one chunk of them, see ``grid_memory``) fit half its free
            memory. Recorded as ``solver.placement``.
        grid_memory: device bytes the recurrent grids may hold at once (default: half the
            free device memory). Larger grids are computed, solved and dropped a chunk of
            (sigma_u, sigma_b) pairs at a time, again for the test folds' chosen kernels;
            recorded as ``solver.grid_chunks``. Only for kernels on the device.
    """
    start = time.perf_counter()
    started_at = time.time() - load_seconds if started_at is None else started_at
    timings = {"load": load_seconds}
    progress = Progress(bars=progress, on_progress=on_progress, should_cancel=should_cancel)
    names = check_families(list(families) if families is not None else list(config.families))
    splits, protocol = resolve_splits(dataset, config.protocol, config.seed)
    selection = selection_pairs(splits, dataset.y, dataset.classes, config.cv_folds, config.seed)
    train_columns = np.unique(np.concatenate(
        [fit for fit, _ in selection.pairs] + [train for train, _ in splits.folds]))
    X, x_scale = normalise(dataset.X, config.normalize)
    with _timed(timings, "kernels"):
        plan = build_plan(names, X, dataset.lengths, config, max_iter=max_iter, progress=progress,
                          dtype=dtype, memory_budget=memory_budget, train_columns=train_columns,
                          placement=placement, grid_memory=grid_memory)
    cache: FitCache = {}
    solver = resolve_solver(config.solver)
    with _timed(timings, "validation"):
        outcomes = validate(plan, dataset.y, selection, cache, n_jobs=n_jobs, progress=progress,
                            solver=solver)
    with _timed(timings, "test"):
        score_folds(plan, outcomes, dataset.y, dataset.n_classes, splits.folds, cache,
                    n_jobs=n_jobs, progress=progress, solver=solver)
    configurations, family_results = family_report(plan, outcomes)
    report = {
        "dataset": dataset_summary(dataset),
        "config": config.model_dump(mode="json"),
        "families_evaluated": names,
        "protocol": protocol,
        "selection": selection.describe(),
        "notes": _notes(dataset, names, selection),
        "x_scale": x_scale,
        "avg_scaling": AVG_SCALING,
        "configurations": configurations,
        "families": family_results,
        "grams": [],
        "non_converged": non_converged(plan, outcomes, cache, len(splits.folds), selection),
        "solver": solver_summary(config.solver, solver, cache, plan),
        "fits": fit_records(plan, cache),
        "timings": timings,
        "versions": versions(),
        "device": device_description(),
        "majority_class_accuracy": majority_class_accuracy(dataset.y, splits.folds),
        "reproducibility": {**dict(provenance or {}), "split_sha256": split_digest(splits),
                            "started_at": _utc(started_at), "rntk_version": __version__,
                            "git_commit": git_commit()},
    }
    gram = None
    if out_dir is not None:
        out = Path(out_dir)
        report["reproducibility"]["splits_file"] = write_splits(out, dataset, splits, X, x_scale)
        if grams != "none":
            report["grams"], gram = write_grams(plan, outcomes, out, x_scale,
                                                dataset.lengths is not None, grams == "all")
            if config.normalize == "standardize":  # X / x_scale alone would not reproduce them
                for entry in report["grams"]:
                    entry["inputs"] = ("protocol.standardize(X) / x_scale; splits.npz holds that X, "
                                       "so gram(splits['X'], **params) reproduces the file")
    if isinstance(plan.store, ChunkedKernelStore):
        plan.store.release()
        report["solver"]["grid_chunks"] = plan.store.describe()  # the Gram files' chunks too
    drawn = None
    if out_dir is not None:  # the figures are most of the report's time: drawn before the total
        progress.report("report", 0, 1)
        with _timed(timings, "report"):
            drawn = draw_figures(report, gram, dataset.classes[dataset.y], check=progress.check)
    timings["total"] = load_seconds + time.perf_counter() - start
    report["reproducibility"]["finished_at"] = _utc(time.time())
    # Typed once here, so a report that breaks the schema fails where it is made.
    report = Report.model_validate(json_safe(report)).model_dump(mode="json", exclude_unset=True)
    if out_dir is not None:
        save_report(report, Path(out_dir), gram, dataset.classes[dataset.y], drawn)
    return report


def evaluate_path(
    path: str | Path, config: EvaluationConfig, **options: Any
) -> dict[str, Any]:
    """Load a dataset (UCI folder / zip, CSV, NPZ) and :func:`evaluate_dataset` it."""
    start = time.perf_counter()
    dataset = load_dataset(path, features_per_step=config.features_per_step)
    with _bar("load", 1, Progress(bars=options.get("progress", False))) as bar:  # shown once it succeeded
        bar.update()
    provenance = {"dataset_sha256": content_sha256(path), **dict(options.pop("provenance", None) or {})}
    return evaluate_dataset(dataset, config, load_seconds=time.perf_counter() - start,
                            provenance=provenance, **options)
