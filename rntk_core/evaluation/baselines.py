"""The baselines the paper compares against, as models for the shared selection protocol.

Each ``*_family`` function returns the family's candidates in enumeration order and the
models they use, keyed so that the orchestrator can fit each (model, C) once per split:

- RBF: ``exp(-gamma * |x - x'|^2)``; candidates gamma ascending, then C ascending.
- POLY: ``(scale * <x, x'> + offset) ** degree``; degree, scale, offset ascending, then C.
- MLP: the ReLU MLP NTK / CK of Arora et al. (:mod:`rntk_core.mlp`); depth ascending, fixed
  layers ascending, kind (ck then ntk), then C (``config.mlp_C``).
- RF: ``RandomForestClassifier`` seeded with ``config.seed``; n_estimators ascending, then
  max_features in the config's order. It has no C.
- 1NN-ED, 1NN-DTW: one candidate each, no C (:mod:`rntk_core.evaluation.nearest`).

All take X as (N, d) rows, already normalised by the orchestrator (sequences of unequal
lengths resampled to a common length first); 1NN-DTW takes the sequences and their lengths.

With ``device=True`` the kernel families' models hand out float64 JAX arrays: RBF and POLY
send their distances or inner products to the device once and form each kernel there, MLP
sends each kernel when it is asked for. The JAX solver then gathers its blocks there, like
the recurrent kernels of ``placement="device"``.
"""

from __future__ import annotations

import functools
import itertools
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Sequence

import numpy as np
from sklearn.ensemble import RandomForestClassifier

from .config import EvaluationConfig
from .protocol import Candidate
from .solvers.fit import Fit
from .solvers.libsvm import KernelModel, default_jobs

__all__ = [
    "ForestModel", "NearestModel", "mlp_family", "nearest_family", "poly_family", "rbf_family",
    "rf_family", "squared_distances",
]

Family = tuple[list[Candidate], dict[Hashable, Any]]


def squared_distances(X: np.ndarray) -> np.ndarray:
    """(N, N) squared Euclidean distances between the rows of X, exact zeros on the diagonal."""
    norms = np.einsum("ij,ij->i", X, X)
    distances = norms[:, None] + norms[None, :] - 2.0 * (X @ X.T)
    np.maximum(distances, 0.0, out=distances)
    np.fill_diagonal(distances, 0.0)
    return distances


def _svm_candidates(
    family: str, models: dict[Hashable, KernelModel], params: dict[Hashable, dict], Cs: Sequence[float]
) -> list[Candidate]:
    """One candidate per (model, C), models in their given order, then C ascending."""
    return [
        Candidate(family=family, params=params[key], C=C, model=key)
        for key in models for C in sorted(Cs)
    ]


def _elementwise(base: np.ndarray, device: bool) -> Callable[[Callable[[Any, Any], Any]], Callable[[], Any]]:
    """Kernels formed elementwise from one (N, N) ``base`` (distances, inner products):
    ``make(f)`` gives a function returning ``f(xp, base)``, NumPy on the host, or float64 on
    the device from one device copy of ``base`` shared by every kernel."""
    if not device:
        return lambda f: functools.partial(f, np, base)
    import jax
    import jax.numpy as jnp

    with jax.enable_x64(True):
        held = jnp.asarray(base)

    def make(f: Callable[[Any, Any], Any]) -> Callable[[], Any]:
        def kernel() -> Any:
            with jax.enable_x64(True):
                return f(jnp, held)
        return kernel

    return make


def rbf_family(X: np.ndarray, config: EvaluationConfig, *, max_iter: int = -1, device: bool = False) -> Family:
    """RBF SVMs over ``config.rbf_gamma`` x ``config.C``."""
    make = _elementwise(squared_distances(X), device)
    models: dict[Hashable, KernelModel] = {}
    params: dict[Hashable, dict] = {}
    for gamma in sorted(config.rbf_gamma):
        key = ("rbf", gamma)
        models[key] = KernelModel(f"rbf-gamma{gamma:g}", make(functools.partial(_scaled_exp, gamma)),
                                  max_iter=max_iter)
        params[key] = {"gamma": gamma}
    return _svm_candidates("RBF", models, params, config.C), models


def _scaled_exp(gamma: float, xp: Any, distances: Any) -> Any:
    return xp.exp(-gamma * distances)


def poly_family(X: np.ndarray, config: EvaluationConfig, *, max_iter: int = -1, device: bool = False) -> Family:
    """Polynomial-kernel SVMs over degree x scale x offset x ``config.C``."""
    make = _elementwise(X @ X.T, device)
    models: dict[Hashable, KernelModel] = {}
    params: dict[Hashable, dict] = {}
    for degree, scale, offset in itertools.product(
        sorted(config.poly_degree), sorted(config.poly_scale), sorted(config.poly_offset)
    ):
        key = ("poly", degree, scale, offset)
        name = f"poly-d{degree}-s{scale:g}-o{offset:g}"
        models[key] = KernelModel(name, make(functools.partial(_polynomial, degree, scale, offset)),
                                  max_iter=max_iter)
        params[key] = {"degree": degree, "scale": scale, "offset": offset}
    return _svm_candidates("POLY", models, params, config.C), models


def _polynomial(degree: int, scale: float, offset: float, xp: Any, inner: Any) -> Any:
    return (scale * inner + offset) ** degree


def _to_device(kernel: np.ndarray) -> Callable[[], Any]:
    """A host kernel sent to the device (float64) each time it is asked for, not held there."""
    def send() -> Any:
        import jax
        import jax.numpy as jnp

        with jax.enable_x64(True):
            return jnp.asarray(kernel)
    return send


def _mlp_kernels() -> Callable[..., dict]:
    try:
        from rntk_core.mlp import mlp_kernels
    except ImportError as exc:
        raise ValueError(
            f"the MLP family needs rntk_core.mlp.mlp_kernels, which is not available ({exc})"
        ) from exc
    return mlp_kernels


def mlp_family(
    X: np.ndarray, config: EvaluationConfig, *, max_iter: int = -1, kinds: Sequence[str] | None = None,
    device: bool = False,
) -> Family:
    """MLP NTK / CK SVMs over depth x fixed layers x kind x ``config.mlp_C``.

    ``config.mlp_fixed_layers=None`` means every 0..depth-1; the CK does not depend on the
    fixed layers, so it appears once per depth.
    """
    kinds = tuple(kind for kind in ("ck", "ntk") if kind in (kinds or config.kinds))
    kernels = _mlp_kernels()(X, max_depth=max(config.mlp_layers))
    models: dict[Hashable, KernelModel] = {}
    params: dict[Hashable, dict] = {}
    for depth in sorted(config.mlp_layers):
        fixed = range(depth) if config.mlp_fixed_layers is None else sorted(
            k for k in config.mlp_fixed_layers if k < depth)
        for fixed_layers, kind in itertools.product(fixed, kinds):
            if kind == "ck" and fixed_layers != min(fixed, default=0):
                continue  # the CK ignores fixed layers: one candidate per depth
            kernel = kernels[(kind, depth, fixed_layers if kind == "ntk" else 0)]
            key = ("mlp", kind, depth, fixed_layers)
            models[key] = KernelModel(f"mlp-{kind}-d{depth}-f{fixed_layers}",
                                      _to_device(kernel) if device else kernel, max_iter=max_iter)
            params[key] = {"kind": kind, "depth": depth, "fixed_layers": fixed_layers}
    if not models:
        raise ValueError("the MLP grid is empty: mlp_fixed_layers must hold a value below some mlp_layers")
    return _svm_candidates("MLP", models, params, config.mlp_C), models


@dataclass(frozen=True)
class ForestModel:
    """A seeded random forest on the raw (N, d) rows; ``Cs`` must be ``[None]``."""

    X: np.ndarray
    n_estimators: int
    max_features: str | float
    seed: int
    name: str = "rf"

    def fit_predict(
        self, y: np.ndarray, train: np.ndarray, evaluate: np.ndarray, Cs: Sequence[float | None]
    ) -> dict[float | None, Fit]:
        forest = RandomForestClassifier(
            n_estimators=self.n_estimators, max_features=self.max_features,
            random_state=self.seed, n_jobs=default_jobs(),
        ).fit(self.X[train], y[train])
        predictions = forest.predict(self.X[evaluate]).astype(np.int64)
        return {C: Fit(predictions) for C in Cs}


def rf_family(X: np.ndarray, config: EvaluationConfig) -> Family:
    """Random forests over n_estimators x max_features, no C."""
    models: dict[Hashable, Any] = {}
    candidates: list[Candidate] = []
    for n_estimators, max_features in itertools.product(sorted(config.rf_n_estimators), config.rf_max_features):
        key = ("rf", n_estimators, max_features)
        name = f"rf-n{n_estimators}-{max_features}"
        models[key] = ForestModel(X, n_estimators, max_features, config.seed, name)
        params = {"n_estimators": n_estimators, "max_features": max_features}
        candidates.append(Candidate(family="RF", params=params, C=None, model=key))
    return candidates, models


@dataclass
class NearestModel:
    """1-NN on a distance: each evaluated point takes the label of its nearest training point
    (the first one on ties, as the archive's reference code does).

    Distances from every point to ``columns`` (the union of all training parts) are computed
    once, on first use; ``Cs`` must be ``[None]``.
    """

    distance: Callable[[np.ndarray], np.ndarray]
    n_samples: int
    columns: np.ndarray
    name: str
    _matrix: np.ndarray | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def distances(self) -> np.ndarray:
        with self._lock:  # fits run in threads; compute once
            if self._matrix is None:
                self._matrix = self.distance(self.columns)
            return self._matrix

    def fit_predict(
        self, y: np.ndarray, train: np.ndarray, evaluate: np.ndarray, Cs: Sequence[float | None]
    ) -> dict[float | None, Fit]:
        from .nearest import nearest_neighbour_predict

        position = np.full(self.n_samples, -1)
        position[self.columns] = np.arange(len(self.columns))
        if np.any(position[train] < 0):
            raise ValueError(f"{self.name}: a training index lies outside the precomputed columns")
        block = self.distances()[np.ix_(evaluate, position[train])]
        predictions = nearest_neighbour_predict(block, y[train]).astype(np.int64)
        return {C: Fit(predictions) for C in Cs}


def nearest_family(
    family: str, X: np.ndarray, lengths: np.ndarray | None, rows: np.ndarray,
    config: EvaluationConfig, columns: np.ndarray, check: Callable[[], None] | None = None,
) -> Family:
    """1NN-ED on the (N, d) ``rows``, or 1NN-DTW on the (N, T, m) sequences ``X`` (front-padded,
    ``lengths`` or None); distances to ``columns`` only. ``check``: a cancel check between
    DTW blocks."""
    from .nearest import dtw_band_note, dtw_distances_to, euclidean_distances

    if family == "1NN-ED":
        def distance(cols: np.ndarray) -> np.ndarray:
            return euclidean_distances(rows, rows[cols])
        params: dict[str, Any] = {"distance": "euclidean"}
    else:
        def distance(cols: np.ndarray) -> np.ndarray:
            return dtw_distances_to(X, lengths, cols, window=config.dtw_window, check=check)
        params = {"distance": "dtw", "window": config.dtw_window if config.dtw_window is not None else "full"}
        note = dtw_band_note(lengths, columns, config.dtw_window)  # the report's chosen params show it
        if note:
            params["dtw_note"] = note
    key = ("nearest", family)
    model = NearestModel(distance, X.shape[0], np.asarray(columns), family.lower())
    return [Candidate(family=family, params=params, C=None, model=key)], {key: model}
