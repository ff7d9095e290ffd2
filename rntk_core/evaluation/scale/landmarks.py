"""Landmark (Nystrom) features: RNTK on more sequences than a dense Gram matrix can hold.

With M landmark sequences Z drawn from the training data, a kernel K is approximated by

    K ~ K(X, Z) K(Z, Z)^+ K(Z, X) = Phi Phi',   Phi = K(X, Z) U L^(-1/2),

from the eigendecomposition K(Z, Z) = U L U'. Eigenvalues below ``floor`` times the largest
are dropped (their directions are noise at float precision), so Phi has at most M columns.
A linear C-SVM on Phi (:mod:`.solvers.linear_svm`) is then a C-SVM on the approximated
kernel, at O(N M) memory and O(N M^2) time per iteration instead of O(N^2) and O(N^3).

How landmarks are chosen (training rows only, never test rows):

- ``"stratified"``: uniform within each class, classes in proportion (at least one each).
- ``"kmeans++"``: k-means++ seeding in input space (D^2 sampling over the flattened
  sequences): spread-out landmarks that cover the data's modes; measured against the
  stratified baseline by ``benchmarks.scale_benchmark``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Iterator, Literal

import numpy as np

__all__ = ["DEFAULT_FLOOR", "LandmarkMethod", "NystromMap", "choose_landmarks", "nystrom_map",
           "relative_error", "stratified_sample"]

LandmarkMethod = Literal["stratified", "kmeans++"]
#: Relative eigenvalue floor of K(Z, Z): below it a direction is dropped.
DEFAULT_FLOOR = 1e-10


def choose_landmarks(y: np.ndarray, count: int, *, seed: int = 0, method: LandmarkMethod = "stratified",
                     X: np.ndarray | None = None) -> np.ndarray:
    """Sorted indices of ``count`` landmark rows among the rows labelled ``y`` (all of them
    when ``count`` >= len(y)).

    ``X`` (the rows' inputs, any shape with rows first) is needed by ``"kmeans++"``.
    """
    y = np.asarray(y)
    n = y.size
    if count >= n:
        return np.arange(n)
    if count < 1:
        raise ValueError(f"landmarks must be at least 1; got {count}")
    rng = np.random.default_rng(seed)
    if method == "stratified":
        return _stratified(y, count, rng)
    if method == "kmeans++":
        if X is None:
            raise ValueError("kmeans++ landmarks need the inputs X")
        return _kmeans_plus_plus(np.asarray(X, np.float64).reshape(n, -1), count, rng)
    raise ValueError(f"unknown landmark method {method!r}; allowed: stratified, kmeans++")


def stratified_sample(y: np.ndarray, count: int, *, seed: int = 0) -> np.ndarray:
    """Sorted indices of a stratified uniform sample of ``count`` rows (all when count >= n)."""
    y = np.asarray(y)
    if count >= y.size:
        return np.arange(y.size)
    return _stratified(y, count, np.random.default_rng(seed))


def _stratified(y: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    classes, counts = np.unique(y, return_counts=True)
    # Largest remainders, at least one per class (when count allows).
    share = counts / counts.sum() * count
    quota = np.minimum(np.maximum(np.floor(share).astype(int), 1 if count >= classes.size else 0), counts)
    for index in np.argsort(-(share - np.floor(share)), kind="stable"):
        if quota.sum() >= count:
            break
        if quota[index] < counts[index]:
            quota[index] += 1
    while quota.sum() > count:  # the at-least-one rule overshot: trim the largest classes
        quota[np.argmax(quota)] -= 1
    chosen = [rng.choice(np.flatnonzero(y == label), size=q, replace=False)
              for label, q in zip(classes, quota) if q > 0]
    return np.sort(np.concatenate(chosen))


def _kmeans_plus_plus(X: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding (Arthur & Vassilvitskii): each next landmark drawn with probability
    proportional to its squared distance to the nearest landmark so far."""
    n = X.shape[0]
    norms = np.einsum("ij,ij->i", X, X)
    chosen = [int(rng.integers(n))]
    nearest = np.maximum(norms - 2.0 * X @ X[chosen[0]] + norms[chosen[0]], 0.0)
    for _ in range(1, count):
        total = nearest.sum()
        pick = int(rng.choice(n, p=nearest / total)) if total > 0 else int(
            rng.choice(np.setdiff1d(np.arange(n), chosen)))
        chosen.append(pick)
        nearest = np.minimum(nearest, np.maximum(norms - 2.0 * X @ X[pick] + norms[pick], 0.0))
        nearest[chosen] = 0.0
    return np.sort(np.asarray(chosen))


@dataclass(frozen=True)
class NystromMap:
    """``Phi(x) = K(x, Z) @ projection``; ``rank`` directions kept of ``landmarks``."""

    projection: np.ndarray  # (M, rank)
    eigenvalues: np.ndarray  # (rank,) kept, descending
    landmarks: int

    @property
    def rank(self) -> int:
        return self.projection.shape[1]

    def features(self, k_xz: np.ndarray, rows: np.ndarray | None = None, rows_per_step: int = 16384) -> np.ndarray:
        """(n, rank) float64 features of rows whose kernel against the landmarks is ``k_xz``
        (n, M, any float dtype), or of its ``rows`` only. A float32 K is widened a slice of
        rows at a time, never whole, and ``rows`` are read a slice at a time, never copied."""
        rows = np.arange(k_xz.shape[0]) if rows is None else np.asarray(rows)
        out = np.empty((rows.size, self.rank))
        with _projector(self.projection) as project:
            for start in range(0, rows.size, rows_per_step):
                part = rows[start:start + rows_per_step]
                out[start:start + part.size] = project(np.asarray(k_xz[part], np.float64))
        return out


@contextlib.contextmanager
def _projector(projection: np.ndarray) -> Iterator[Callable[[np.ndarray], np.ndarray]]:
    """``K @ projection`` in float64: by NumPy on a CPU backend, else on the accelerator (the
    projection sent once, a slice of K at a time: an N x M by M x M product is the landmark
    path's largest, and a GPU's float64 rate is a host's many times)."""
    import jax

    if jax.default_backend() == "cpu":
        yield lambda part: part @ projection
        return
    import jax.numpy as jnp

    with jax.enable_x64(True):
        on_device = jax.device_put(projection)
        yield lambda part: np.asarray(jnp.matmul(jax.device_put(part), on_device,
                                                 precision=jax.lax.Precision.HIGHEST))


def nystrom_map(k_zz: np.ndarray, *, floor: float = DEFAULT_FLOOR) -> NystromMap:
    """The map ``U L^(-1/2)`` from K(Z, Z) (symmetrised, float64), eigenvalues below
    ``floor`` times the largest dropped."""
    k_zz = np.asarray(k_zz, np.float64)
    values, vectors = np.linalg.eigh(0.5 * (k_zz + k_zz.T))
    order = np.argsort(values)[::-1]
    values, vectors = values[order], vectors[:, order]
    top = values[0] if values.size else 0.0
    if not np.isfinite(top) or top <= 0:
        raise ValueError("the landmarks' kernel K(Z, Z) has no positive eigenvalue")
    keep = values > floor * top
    return NystromMap(projection=vectors[:, keep] / np.sqrt(values[keep]), eigenvalues=values[keep],
                      landmarks=k_zz.shape[0])


def relative_error(exact: np.ndarray, rows: np.ndarray, columns: np.ndarray) -> float:
    """``||K_SR - Phi_S Phi_R'||_F / ||K_SR||_F`` for an exact block K_SR and the features of
    its rows (S) and columns (R)."""
    exact = np.asarray(exact, np.float64)
    approximation = np.asarray(rows, np.float64) @ np.asarray(columns, np.float64).T
    scale = np.linalg.norm(exact)
    return float(np.linalg.norm(exact - approximation) / scale) if scale > 0 else 0.0
