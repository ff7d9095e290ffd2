"""1-nearest-neighbour classifiers, the time-series archives' reference baselines.

- ``1NN-ED``: squared Euclidean distance over every step and feature (equal lengths).
- ``1NN-DTW``: dynamic time warping with the squared pointwise cost, full window unless a
  Sakoe-Chiba band (a fraction of the longer series' length) is given. DTW compares series
  of different lengths natively.

Both follow the archive's reference implementation: ties go to the first training series
(``argmin``), so published 1-NN accuracies are reproduced exactly.

Series of unequal lengths cannot be compared step by step; :func:`resample` stretches each
series to a common length by linear interpolation (the standard treatment, as aeon's
``Resizer`` and tslearn's ``TimeSeriesResampler`` do) for ED and for the RBF baseline.

Inputs here use the engine's layout: (N, T, m) values, front-padded, with per-series lengths.

DTW is written in JAX rather than taken from aeon/tslearn/sktime: each brings numba and
llvmlite (tens of MB) plus pandas for one function. Row i of the DP table follows from row
i-1 by ``D[i, j] = min(a_j, c_ij + D[i, j-1])`` with ``a_j = c_ij + min(D[i-1, j-1],
D[i-1, j])``: a (min, +) linear recurrence, so each row is one associative scan over all
(test, train) pairs at once instead of T sequential steps.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

# Pairs x steps per DTW chunk: bounds the working set (a few float64 rows of this size).
_DTW_CHUNK_CELLS = 1 << 22


def resample(values: np.ndarray, lengths: np.ndarray | None, steps: int) -> np.ndarray:
    """Each series' valid (end-aligned) part linearly interpolated to ``steps`` steps.

    values: (N, T, m) front-padded; lengths: (N,) or None (all T). Returns (N, steps, m).
    """
    n, total, features = values.shape
    if lengths is None:
        lengths = np.full(n, total)
    out = np.empty((n, steps, features), dtype=np.float64)
    for i, length in enumerate(np.asarray(lengths)):
        series = values[i, total - length:]
        if length == steps:
            out[i] = series
            continue
        grid = np.linspace(0.0, length - 1.0, steps)
        for f in range(features):
            out[i, :, f] = np.interp(grid, np.arange(length), series[:, f])
    return out


def euclidean_distances(test: np.ndarray, train: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances (M, N) between equal-length (M, T, m) and (N, T, m) series."""
    a = test.reshape(len(test), -1).astype(np.float64)
    b = train.reshape(len(train), -1).astype(np.float64)
    # Direct differences, not |a|^2 + |b|^2 - 2ab: the expanded form's cancellation can
    # reorder near neighbours and so change the archive's published accuracies.
    out = np.empty((len(a), len(b)))
    for start in range(0, len(a), 64):
        diff = a[start:start + 64, None, :] - b[None, :, :]
        out[start:start + 64] = np.einsum("ijk,ijk->ij", diff, diff)
    return out


def _back_aligned(values: np.ndarray, lengths: np.ndarray | None) -> np.ndarray:
    """Front-padded series moved to start at step 0 (DTW reads prefixes)."""
    if lengths is None:
        return values
    total = values.shape[1]
    positions = np.arange(total)[None, :] + (total - np.asarray(lengths))[:, None]
    gathered = np.take_along_axis(values, np.minimum(positions, total - 1)[:, :, None], axis=1)
    return gathered * (np.arange(total)[None, :, None] < np.asarray(lengths)[:, None, None])


def dtw_distances(
    test: np.ndarray,
    train: np.ndarray,
    test_lengths: np.ndarray | None = None,
    train_lengths: np.ndarray | None = None,
    window: float | None = None,
    check: Callable[[], None] | None = None,
) -> np.ndarray:
    """DTW distances (M, N) with the squared pointwise cost, in float64.

    test: (M, T, m), train: (N, T', m) front-padded with optional lengths. ``window``: None
    (full) or the Sakoe-Chiba half-width as a fraction in [0, 1] of the longer series of a pair.
    ``check`` is called after each block of rows (a cancel check: a large archive's DTW runs
    for minutes).
    """
    test_lengths = np.full(len(test), test.shape[1]) if test_lengths is None else np.asarray(test_lengths)
    train_lengths = np.full(len(train), train.shape[1]) if train_lengths is None else np.asarray(train_lengths)
    a = _back_aligned(test, test_lengths)
    b = _back_aligned(train, train_lengths)
    band = -1.0 if window is None else float(window)
    rows = max(1, _DTW_CHUNK_CELLS // max(1, len(b) * b.shape[1]))
    out = np.empty((len(a), len(b)))
    with jax.enable_x64(True):
        for start in range(0, len(a), rows):
            stop = start + rows
            out[start:stop] = np.asarray(_dtw_block(
                a[start:stop], b, test_lengths[start:stop], train_lengths, band
            ))
            if check is not None:
                check()
    return out


@jax.jit
def _dtw_block(
    a: jnp.ndarray, b: jnp.ndarray, len_a: jnp.ndarray, len_b: jnp.ndarray, band: float
) -> jnp.ndarray:
    """(Ma, N) DTW distances: a (Ma, Ta, m), b (N, Tb, m) back-aligned; band < 0 = full."""
    a = jnp.asarray(a, jnp.float64)
    b = jnp.asarray(b, jnp.float64)
    steps_b = b.shape[1]
    inf = jnp.inf
    cols = jnp.arange(steps_b)
    longer = jnp.maximum(len_a[:, None], len_b[None, :]).astype(jnp.float64)  # (Ma, N)
    half_width = jnp.where(band < 0, jnp.inf, jnp.round(band * longer))
    last_a = len_a - 1  # row whose value is kept, per test series
    last_b = len_b - 1

    def combine(first, second):
        # f(x) = min(a, c + x); second after first: min(a2, c2 + a1), c2 + c1.
        a1, c1 = first
        a2, c2 = second
        return jnp.minimum(a2, c2 + a1), c2 + c1

    def row(carry, inputs):
        prev, kept = carry
        i, x_i = inputs  # x_i: (Ma, m)
        cost = jnp.sum((x_i[:, None, None, :] - b[None, :, :, :]) ** 2, axis=-1)  # (Ma, N, Tb)
        in_band = jnp.abs(cols[None, None, :] - i) <= half_width[:, :, None]
        cost = jnp.where(in_band, cost, inf)
        diag = jnp.concatenate([jnp.where(i == 0, 0.0, inf) * jnp.ones_like(prev[..., :1]), prev[..., :-1]], axis=-1)
        best_above = jnp.minimum(diag, prev)
        start = cost + best_above
        current, _ = jax.lax.associative_scan(combine, (start, cost), axis=-1)
        kept = jnp.where((i == last_a)[:, None, None], current, kept)
        return (current, kept), None

    shape = (a.shape[0], b.shape[0], steps_b)
    first = (jnp.full(shape, inf), jnp.full(shape, inf))
    (_, kept), _ = jax.lax.scan(row, first, (jnp.arange(a.shape[1]), jnp.moveaxis(a, 1, 0)))
    return jnp.take_along_axis(kept, last_b[None, :, None].repeat(a.shape[0], 0), axis=-1)[..., 0]


def nearest_neighbour_predict(distances: np.ndarray, train_labels: np.ndarray) -> np.ndarray:
    """Each test series' label from its nearest training series (first one on ties)."""
    return np.asarray(train_labels)[np.argmin(distances, axis=1)]
