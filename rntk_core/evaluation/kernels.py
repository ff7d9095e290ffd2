"""Which kernels a job needs, where they live, and how they are computed.

- Candidates: every family's configurations in enumeration order
  (:func:`recurrent_candidates`, and the baselines of :mod:`rntk_core.evaluation.baselines`);
  :func:`build_plan` gathers them with the models they fit.
- Kernels: ONE :func:`rntk_core.gram_grid` call per (sigma_w, step order, dtype) over the
  whole normalised X (:func:`compute_grids`); every recurrent configuration is a
  :class:`RecurrentKernel`, a key of one of those grids.
- Placement: on the host or the device (:func:`resolve_placement`); grids too large for the
  device are computed a chunk of (sigma_u, sigma_b) pairs at a time (:func:`grid_chunks`,
  :class:`ChunkedKernelStore`).

The AVG families use the mean over steps (``sigma_v = 1/sqrt(T)``, recorded in their
params), as the spec's default: see :data:`AVG_SCALING`.
"""

from __future__ import annotations

import functools
import itertools
import math
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Literal, Mapping, Sequence

import numpy as np

from rntk_core.api import GramGrid, GridKey, gram_grid
from rntk_core.devices import free_device_bytes
from rntk_core.inputs import check_choice

from .baselines import mlp_family, nearest_family, poly_family, rbf_family, rf_family
from .config import BASELINE_FAMILIES, EvaluationConfig
from .progress import SILENT, Counter, Progress
from .protocol import Candidate
from .solvers.libsvm import KernelModel

__all__ = [
    "AVG_SCALING",
    "DERIVED_FAMILIES",
    "FAMILY_NAMES",
    "PLACEMENTS",
    "RECURRENT_SPECS",
    "ChunkedKernelStore",
    "GridChunk",
    "KernelStore",
    "Placement",
    "Plan",
    "RecurrentFamily",
    "RecurrentKernel",
    "baseline_rows",
    "build_plan",
    "check_families",
    "compute_grids",
    "grid_bytes",
    "grid_chunks",
    "pair_bytes",
    "place_grids",
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
    """One recurrent Gram matrix: its key in a grid, and the grid it comes from.

    ``key`` (a :class:`rntk_core.GridKey`) is the kernel's identity within its grid; its
    fields read through (``kernel.kind``, ``kernel.sigma_u``, ...). ``order`` is None for the
    dataset's own step order, else the user permutation applied to the steps (``X[:, order]``)
    before the grid was computed.
    """

    key: GridKey
    sigma_w: float
    order: tuple[int, ...] | None = None
    sigma_v: float = 1.0
    dtype: str = "float32"

    def __getattr__(self, name: str) -> Any:
        if name in GridKey._fields:
            return getattr(self.key, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def params(self) -> dict[str, Any]:
        """Exactly the keyword arguments of :func:`rntk_core.gram` that give this kernel.

        ``dtype`` appears only when it is not the engine's default, float32.
        """
        key = self.key
        params = {"kind": key.kind, "pool": key.pool, "layers": key.layers, "direction": key.direction,
                  "sigma_w": self.sigma_w, "sigma_u": key.sigma_u, "sigma_b": key.sigma_b,
                  "sigma_v": self.sigma_v}
        if self.dtype != "float32":
            params["dtype"] = self.dtype
        return params

    def grid_source(self) -> tuple:
        """What one :func:`gram_grid` call is made for: (sigma_w, order, dtype)."""
        return (self.sigma_w, self.order, self.dtype)

    def name(self, family: str | None = None, order_index: int | None = None) -> str:
        """A file-name-safe label, e.g. ``RNN-ntk-last-L2-fwd-sw1.414-su0.5-sb0.1``."""
        key = self.key
        parts = [family] if family else []
        parts += [key.kind, key.pool, f"L{key.layers}", key.direction]
        if self.order is not None:
            parts.append(f"order{order_index if order_index is not None else ''}")
        parts += [f"sw{self.sigma_w:.4g}", f"su{key.sigma_u:g}", f"sb{key.sigma_b:g}"]
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

    def residency(self, kernel: RecurrentKernel) -> int:
        """Kernels of equal residency are resident together; consumers that go through them
        in this order compute each chunk of a :class:`ChunkedKernelStore` once. Here: 0."""
        return 0

    def _grid(self, kernel: RecurrentKernel) -> GramGrid:
        return self.grids[kernel.grid_source()]

    def kernel(self, kernel: RecurrentKernel) -> Any:
        """The (N, N) Gram matrix of ``kernel`` (scaled by sigma_v**2 as :func:`gram` does)."""
        matrix = self._grid(kernel)[kernel.key]  # a new array on the device: no view of the grid
        if self.placement == "host":
            matrix = np.asarray(matrix)
        elif self.placement == "device":
            import jax.numpy as jnp

            matrix = jnp.asarray(matrix)
        if kernel.sigma_v != 1.0:
            matrix = matrix * kernel.sigma_v**2  # a new array either way: the grid is not scaled
        return matrix

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

    def residency(self, kernel: RecurrentKernel) -> int:
        """1 + the index of the chunk holding ``kernel`` (0 is "always resident")."""
        return 1 + self._index[(kernel.grid_source(), (kernel.key.sigma_u, kernel.key.sigma_b))]

    def _grid(self, kernel: RecurrentKernel) -> GramGrid:
        index = self.residency(kernel) - 1
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
        kernel = RecurrentKernel(GridKey(kind, spec.pool, layers, direction, sigma_u, sigma_b),
                                 sigma_w, order, sigma_v, dtype)
        note = None if order is None else {"order": list(order), "order_index": user_orders.index(order)}
        candidates.append(Candidate(family, kernel.params(), C, kernel, note))
    return candidates


def place_grids(n_samples: int, kernels: Sequence[RecurrentKernel], config: EvaluationConfig,
                placement: Placement, grid_memory: int | None) -> tuple[Literal["host", "device"],
                                                                     list[GridChunk] | None]:
    """Where the grids of ``kernels`` live (:func:`resolve_placement`), and on the device the
    chunks they are held in (:func:`grid_chunks`; None: all at once). ``grid_memory``: as
    for :func:`compute_grids`."""
    budget = free_device_bytes() // 2 if grid_memory is None else grid_memory
    chunks = grid_chunks(n_samples, kernels, config, budget)
    smallest = min(pair_bytes(n_samples, max(config.layers), chunk.source[2]) * len(chunk.pairs)
                   for chunk in chunks) if chunks else grid_bytes(n_samples, kernels, config)
    return resolve_placement(placement, smallest, free_bytes=2 * budget), chunks


def compute_grids(
    X: np.ndarray, lengths: np.ndarray | None, kernels: Sequence[RecurrentKernel],
    config: EvaluationConfig, progress: Counter | None = None, memory_budget: int | None = None,
    placement: Placement = "host", grid_memory: int | None = None,
) -> KernelStore:
    """One :func:`gram_grid` call per distinct (sigma_w, order) among ``kernels``, kept on the
    device (``gram_grid(output="device")``) or brought to the host, as ``placement`` says
    (``auto``: :func:`resolve_placement`). ``progress`` advances once per grid source and is
    checked for a cancel between tiles.

    On the device the grids may hold ``grid_memory`` bytes at once (default: half the free
    device memory; unknown on the CPU backend, where nothing is chunked). Grids larger than
    that are not computed here: a :class:`ChunkedKernelStore` computes them a chunk of sigma
    pairs at a time as the fits ask (:func:`grid_chunks`).
    """
    n_samples = X.shape[0]
    sources = list(dict.fromkeys(kernel.grid_source() for kernel in kernels))
    placement, chunks = place_grids(n_samples, kernels, config, placement, grid_memory)
    on_tile = (lambda done, total: progress.check()) if progress is not None else None

    directions = {source: [kernel.direction for kernel in kernels if kernel.grid_source() == source]
                  for source in sources}  # a source of forward kernels only costs one sweep

    def grid(source: tuple, pairs: Sequence[tuple[float, float]], output: str) -> GramGrid:
        sigma_w, order, dtype = source
        steps = X if order is None else X[:, list(order)]
        return gram_grid(steps, sigma_w=sigma_w, pairs=pairs, layers=max(config.layers), lengths=lengths,
                         dtype=dtype, on_tile=on_tile, memory_budget=memory_budget, output=output,
                         directions=directions[source])

    if placement == "device" and chunks is not None:
        for _ in sources if progress is not None else ():
            progress.update()  # each source counts as done: its chunks come as the fits ask
        return ChunkedKernelStore(chunks, lambda chunk: grid(chunk.source, chunk.pairs, "device"))
    everything = list(itertools.product(sorted(set(config.sigma_u)), sorted(set(config.sigma_b))))
    grids = {}
    for source in sources:
        grids[source] = grid(source, everything, placement)
        if progress is not None:
            progress.update()
    return KernelStore(grids, placement)


# --------------------------------------------------------------------------- the plan


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
    *, max_iter: int = -1, progress: Progress = SILENT, dtype: str = "float32",
    memory_budget: int | None = None, train_columns: np.ndarray | None = None,
    placement: Placement = "auto", grid_memory: int | None = None,
    grids: Callable[..., KernelStore] | None = None,
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
    ``grids``: what computes the recurrent grids, with :func:`compute_grids`'s arguments
    (default: it; :class:`.scale.dense.DenseBlocks` computes them as row blocks).
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
    with progress.stage("kernels", n_grids + len(baselines)) as counter:
        if kernels:
            store = (grids or compute_grids)(X, lengths, kernels, config, counter, memory_budget=memory_budget,
                                             placement=placement, grid_memory=grid_memory)
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
                                                          check=counter.check, device=where == "device")
            models.update(family_models)
            counter.update()
    ordered = {name: candidates[name] for name in families}
    return Plan(ordered, models, store, where)


def baseline_rows(X: np.ndarray, lengths: np.ndarray | None) -> np.ndarray:
    """(N, T * m) rows; unequal lengths are resampled to T by linear interpolation, so the
    front padding is never read as data."""
    if lengths is None:
        return X.reshape(X.shape[0], -1)
    from .nearest import resample

    return resample(X, lengths, X.shape[1]).reshape(X.shape[0], -1)
