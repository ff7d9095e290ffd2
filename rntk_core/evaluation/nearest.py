"""1-nearest-neighbour classifiers, the time-series archives' reference baselines.

- ``1NN-ED``: squared Euclidean distance over every step and feature (equal lengths).
- ``1NN-DTW``: dynamic time warping with the squared pointwise cost (summed over a step's
  features), full window unless a Sakoe-Chiba band (a fraction of the longer series' length)
  is given. DTW compares series of different lengths natively; a band is widened by a pair's
  length difference so that it joins both ends (:func:`dtw_distances`).

Both follow the archive's reference implementation: ties go to the first training series
(``argmin``), so published 1-NN accuracies are reproduced exactly. A test series with no
finite distance is an error, never the first label.

Series of unequal lengths cannot be compared step by step; :func:`resample` stretches each
series to a common length by linear interpolation (the standard treatment, as aeon's
``Resizer`` and tslearn's ``TimeSeriesResampler`` do) for ED and for the RBF baseline.

Inputs here use the engine's layout: (N, T, m) values, front-padded, with per-series lengths.

Two DTW implementations give the same distances (:func:`dtw_backend` chooses):

- On a CPU, dtaidistance's C library (OpenMP threads over pairs): each pair costs its own
  lengths and only its band, and a square matrix only its upper triangle. Series of one
  half-width (a pair's half-width follows its longer length) go in one call, sorted by length.
  It returns the square root of the summed costs; squaring it back differs by an ulp at most.
- On an accelerator, JAX: row i of the DP table follows from row i-1 by
  ``D[i, j] = min(a_j, c_ij + D[i, j-1])`` with ``a_j = c_ij + min(D[i-1, j-1], D[i-1, j])``:
  a (min, +) linear recurrence, so each row is one associative scan over all (test, train)
  pairs at once instead of T sequential steps. Every pair runs over the longest length.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Callable, Literal

import numpy as np

# JAX is imported where the JAX DTW runs: the cost model (and so the API process) imports
# this module for the band's definition.

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


#: Which DTW implementation runs: "auto" picks dtaidistance's C when JAX's default backend is
#: the CPU (and the extension is there), the JAX scan otherwise (a GPU runs it fastest).
DtwBackend = Literal["auto", "c", "jax"]
DTW_BACKENDS: tuple[str, ...] = ("auto", "c", "jax")

# Cells of one C call between cancel checks: about 0.5 s on a 2-core CPU (2e8 cells/s).
_C_CHUNK_CELLS = 100_000_000
# Blocks of fewer (upper-bound) cells run single-threaded: about 20 ms of work.
_C_SERIAL_CELLS = 4_000_000

_log = logging.getLogger(__name__)
_warned_missing_c = False


def _dtaidistance() -> Any | None:
    """dtaidistance's ``dtw`` module when its compiled C library loads, else None (warned once)."""
    global _warned_missing_c
    try:
        from dtaidistance import dtw
    except ImportError as error:  # pragma: no cover - a dependency; only a broken install lacks it
        reason = f"dtaidistance is not installed ({error})"
    else:
        if dtw.dtw_cc is not None and dtw.try_import_c(verbose=False):
            return dtw
        reason = "dtaidistance's C extension did not load"
    if not _warned_missing_c:
        _log.warning("1NN-DTW: %s; using the JAX DTW (much slower on a CPU)", reason)
        _warned_missing_c = True
    return None


def c_dtw_parallel() -> bool:
    """Whether dtaidistance's C DTW runs its distance matrices over OpenMP threads."""
    dtw = _dtaidistance()
    return bool(dtw is not None and dtw.dtw_cc_omp is not None and dtw.dtw_cc_omp.is_openmp_supported())


def dtw_backend(requested: str = "auto") -> str:
    """The DTW implementation to run: ``"c"`` (dtaidistance) or ``"jax"``.

    ``"auto"``: C when JAX's default backend is the CPU, JAX on an accelerator. C asked for
    but missing falls back to JAX with a logged warning.
    """
    if requested not in DTW_BACKENDS:
        raise ValueError(f"unknown DTW backend {requested!r}; allowed: {', '.join(DTW_BACKENDS)}")
    if requested == "jax":
        return "jax"
    if requested == "auto":
        import jax

        if jax.default_backend() != "cpu":
            return "jax"
    return "c" if _dtaidistance() is not None else "jax"


def band_half_widths(len_a: np.ndarray, len_b: np.ndarray, window: float | None) -> np.ndarray:
    """The Sakoe-Chiba half-width of each pair, ``round(window * max(len_a, len_b))`` (rounding
    half to even), broadcast over ``len_a`` and ``len_b``; ``inf`` for the full window."""
    longer = np.maximum(np.asarray(len_a), np.asarray(len_b)).astype(np.float64)
    if window is None:
        return np.full(longer.shape, np.inf)
    return np.round(float(window) * longer)


def dtw_cells(len_a: np.ndarray, len_b: np.ndarray, window: float | None) -> np.ndarray:
    """Cells of the DP table each pair fills (band width x length), broadcast like
    :func:`band_half_widths`: the longer length times the band's width, at most the shorter
    length. The band is ``2 h + 1 + |len_a - len_b|`` wide (see :func:`dtw_distances`)."""
    len_a, len_b = np.asarray(len_a, np.float64), np.asarray(len_b, np.float64)
    shorter, longer = np.minimum(len_a, len_b), np.maximum(len_a, len_b)
    width = 2.0 * band_half_widths(len_a, len_b, window) + 1.0 + (longer - shorter)
    return longer * np.minimum(shorter, width)


def dtw_band_note(
    lengths: np.ndarray | None, columns: np.ndarray | None, window: float | None
) -> str | None:
    """What a window did to unequal lengths, for the report (None when it changed nothing).

    ``lengths``: every series' length (None: all equal); ``columns``: the training series
    compared against (default all). Bands of unequal-length pairs are widened by the length
    difference (see :func:`dtw_distances`); the note counts them and those whose difference
    exceeds the window's half-width, which a band of fixed half-width would leave at an
    infinite distance.
    """
    if window is None or lengths is None:
        return None
    lengths = np.asarray(lengths)
    targets = lengths if columns is None else lengths[np.asarray(columns)]
    values_a, counts_a = np.unique(lengths, return_counts=True)
    values_b, counts_b = np.unique(targets, return_counts=True)
    unequal = beyond = 0
    largest = 0
    for start in range(0, len(values_a), 256):  # bounded memory for many distinct lengths
        a, weight = values_a[start:start + 256, None], counts_a[start:start + 256, None] * counts_b[None, :]
        difference = np.abs(a - values_b[None, :])
        over = difference > band_half_widths(a, values_b[None, :], window)
        unequal += int(np.sum(weight * (difference > 0)))
        beyond += int(np.sum(weight * over))
        largest = max(largest, int(difference.max(initial=0)))
    if unequal == 0:
        return None
    total = len(lengths) * len(targets)
    note = (f"dtw_window {window:g} on series of unequal lengths: the band of each of {unequal:,} of "
            f"{total:,} pairs of unequal lengths was widened by their length difference (up to "
            f"{largest} steps) so that it joins both series' ends")
    if beyond:
        note += (f"; for {beyond:,} of them the difference exceeds the window's half-width, where a "
                 "band of that half-width alone would give no finite distance")
    return note


def _unpadded(values: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
    """Each series' valid (end-aligned) steps, C-contiguous float64: (T_i,) for one feature,
    (T_i, m) for several."""
    total = values.shape[1]
    if values.shape[2] == 1:
        return [np.ascontiguousarray(values[i, total - n:, 0], dtype=np.float64) for i, n in enumerate(lengths)]
    return [np.ascontiguousarray(values[i, total - n:], dtype=np.float64) for i, n in enumerate(lengths)]


def _window_groups(lengths: np.ndarray, window: float | None) -> list[tuple[int, int, int]]:
    """(shortest, longest, dtaidistance window) per run of lengths whose pairs share one
    half-width: a pair's half-width depends only on its longer length, monotonically.

    dtaidistance's ``window`` w admits ``|i - j| < w`` around the two diagonals, so a
    half-width h is ``w = h + 1``; 0 is its full window.
    """
    distinct = np.unique(lengths)
    if window is None:
        return [(int(distinct[0]), int(distinct[-1]), 0)]
    half = band_half_widths(distinct, distinct, window).astype(np.int64)
    starts = np.flatnonzero(np.r_[True, half[1:] != half[:-1]])
    stops = np.r_[starts[1:], len(distinct)] - 1
    return [(int(distinct[s]), int(distinct[e]), int(half[s]) + 1) for s, e in zip(starts, stops)]


class _CBlocks:
    """dtaidistance calls over blocks of one list of series, each result handed to ``put``."""

    def __init__(self, series: list[np.ndarray], lengths: np.ndarray, features: int,
                 check: Callable[[], None] | None) -> None:
        self.dtw = _dtaidistance()
        self.series, self.lengths, self.features, self.check = series, lengths, features, check
        self.parallel = c_dtw_parallel()

    def run(self, rows: tuple[int, int], cols: tuple[int, int], window: int,
            put: Callable[[np.ndarray, np.ndarray, np.ndarray], None]) -> None:
        """Distances of series rows[0]:rows[1] to cols[0]:cols[1] (only pairs with col > row:
        dtaidistance's upper-triangle blocks), in row chunks of about ``_C_CHUNK_CELLS``;
        ``put(row_index, col_index, squared_distance)``."""
        (r0, r1), (c0, c1) = rows, cols
        if r1 <= r0 or c1 <= c0:
            return
        lengths = np.concatenate([self.lengths[r0:r1], self.lengths[c0:c1]])
        longest, spread = float(lengths.max()), float(lengths.max() - lengths.min())
        per_pair = longest * (longest if window == 0 else min(longest, 2.0 * window - 1.0 + spread))
        step = max(1, int(_C_CHUNK_CELLS // max(1.0, per_pair * (c1 - c0))))
        for start in range(r0, r1, step):
            stop = min(start + step, r1)
            block = ((start, stop), (c0, c1))
            # Waking the OpenMP threads costs milliseconds: small blocks run on this thread.
            parallel = self.parallel and per_pair * (stop - start) * (c1 - c0) > _C_SERIAL_CELLS
            if self.features == 1:
                found = self.dtw.distance_matrix_fast(
                    self.series, block=block, compact=True, parallel=parallel, window=window,
                    use_pruning=False)
            else:
                from dtaidistance import dtw_ndim

                found = dtw_ndim.distance_matrix_fast(
                    self.series, ndim=self.features, block=block, compact=True, parallel=parallel,
                    window=window)
            row_index, col_index = _triu_block_indices(start, stop, c0, c1)
            values = np.asarray(found, dtype=np.float64)
            # dtaidistance returns sqrt of the summed squared costs; the project's DTW is the sum.
            put(row_index, col_index, values * values)
            if self.check is not None:
                self.check()


def _triu_block_indices(r0: int, r1: int, c0: int, c1: int) -> tuple[np.ndarray, np.ndarray]:
    """The (row, col) pairs of block rows r0:r1 x cols c0:c1 with col > row, row-major (the
    order of dtaidistance's compact output)."""
    rows = np.arange(r0, r1)
    first = np.maximum(rows + 1, c0)
    counts = np.maximum(c1 - first, 0)
    row_index = np.repeat(rows, counts)
    offsets = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    return row_index, np.repeat(first, counts) + offsets


def _unsorted(matrix: np.ndarray, row_order: np.ndarray, col_order: np.ndarray) -> np.ndarray:
    """``matrix`` of rows and columns taken in ``*_order`` back in the original orders."""
    identity = lambda order: bool(np.all(order == np.arange(len(order))))  # noqa: E731
    if identity(row_order) and identity(col_order):
        return matrix
    return matrix[np.ix_(np.argsort(row_order), np.argsort(col_order))]


def _c_rectangle(a: np.ndarray, b: np.ndarray, len_a: np.ndarray, len_b: np.ndarray,
                 window: float | None, check: Callable[[], None] | None) -> np.ndarray:
    """(M, N) squared DTW of every (a, b) pair by dtaidistance; both sides sorted by length so
    that each run of equal half-widths is two rectangles."""
    order_a, order_b = np.argsort(len_a, kind="stable"), np.argsort(len_b, kind="stable")
    sorted_a, sorted_b = len_a[order_a], len_b[order_b]
    series = _unpadded(a[order_a], sorted_a) + _unpadded(b[order_b], sorted_b)
    shift = len(order_a)
    out = np.full((len(a), len(b)), np.nan)  # in the sorted orders

    def put(rows: np.ndarray, cols: np.ndarray, values: np.ndarray) -> None:
        out[rows, cols - shift] = values

    blocks = _CBlocks(series, np.concatenate([sorted_a, sorted_b]), a.shape[2], check)
    for shortest, longest, width in _window_groups(np.concatenate([len_a, len_b]), window):
        a_lo, a_hi = np.searchsorted(sorted_a, shortest, side="left"), np.searchsorted(sorted_a, longest, side="right")
        b_lo, b_hi = np.searchsorted(sorted_b, shortest, side="left"), np.searchsorted(sorted_b, longest, side="right")
        # The longer series of the pair is in a (a's length in the run, b's at most its end) ...
        blocks.run((a_lo, a_hi), (shift, shift + b_hi), width, put)
        # ... or in b (b's length in the run, a's below its start).
        blocks.run((0, a_lo), (shift + b_lo, shift + b_hi), width, put)
    return _unsorted(out, order_a, order_b)


def _c_square(values: np.ndarray, lengths: np.ndarray, window: float | None,
              check: Callable[[], None] | None) -> np.ndarray:
    """(N, N) squared DTW among the series by dtaidistance, upper triangle only (DTW and its
    band are symmetric), mirrored; 0 on the diagonal."""
    order = np.argsort(lengths, kind="stable")
    ordered = lengths[order]
    out = np.zeros((len(order), len(order)))  # in the sorted order, upper triangle first

    def put(rows: np.ndarray, cols: np.ndarray, found: np.ndarray) -> None:
        out[rows, cols] = found

    blocks = _CBlocks(_unpadded(values[order], ordered), ordered, values.shape[2], check)
    for shortest, longest, width in _window_groups(lengths, window):
        # With lengths ascending, pair (p < q) has the longer series q.
        lo, hi = np.searchsorted(ordered, shortest, side="left"), np.searchsorted(ordered, longest, side="right")
        blocks.run((0, hi), (lo, hi), width, put)
    out += out.T  # the lower triangle and the diagonal are 0 so far
    return _unsorted(out, order, order)


def dtw_distances(
    test: np.ndarray,
    train: np.ndarray,
    test_lengths: np.ndarray | None = None,
    train_lengths: np.ndarray | None = None,
    window: float | None = None,
    check: Callable[[], None] | None = None,
    backend: str = "auto",
) -> np.ndarray:
    """DTW distances (M, N) with the squared pointwise cost (summed over features), in float64.

    test: (M, T, m), train: (N, T', m) front-padded with optional lengths. ``window``: None
    (full) or the Sakoe-Chiba half-width h as a fraction in [0, 1] of the longer series of a
    pair, ``h = round(window * max(T_a, T_b))``. Step i of a (length T_a) may meet step j of
    b (length T_b) when ``-h - max(0, T_a - T_b) <= j - i <= h + max(0, T_b - T_a)``: for
    equal lengths ``|i - j| <= h``; for unequal lengths the band is widened by the length
    difference towards the longer series' end, so it joins both series' ends and every
    distance is finite (the band of dtaidistance and tslearn). ``check`` is called after each
    block (a cancel check: a large archive's DTW runs for minutes). ``backend``: see
    :func:`dtw_backend`.
    """
    test_lengths = np.full(len(test), test.shape[1]) if test_lengths is None else np.asarray(test_lengths)
    train_lengths = np.full(len(train), train.shape[1]) if train_lengths is None else np.asarray(train_lengths)
    if len(test) == 0 or len(train) == 0:
        return np.empty((len(test), len(train)))
    if dtw_backend(backend) == "c":
        return _c_rectangle(test, train, test_lengths, train_lengths, window, check)
    return _jax_dtw(test, train, test_lengths, train_lengths, window, check)


def dtw_distances_to(
    X: np.ndarray,
    lengths: np.ndarray | None,
    columns: np.ndarray,
    window: float | None = None,
    check: Callable[[], None] | None = None,
    backend: str = "auto",
) -> np.ndarray:
    """(N, len(columns)) DTW distances from every series of X to the series ``columns``.

    The same values as ``dtw_distances(X, X[columns], lengths, lengths[columns], ...)``; the
    C backend computes the columns among themselves once per pair (upper triangle) and the
    other series against them as a rectangle.
    """
    columns = np.asarray(columns)
    lengths = np.full(len(X), X.shape[1]) if lengths is None else np.asarray(lengths)
    if dtw_backend(backend) != "c":
        return dtw_distances(X, X[columns], lengths, lengths[columns], window, check, backend="jax")
    unique = np.unique(columns)
    inside = _c_square(X[unique], lengths[unique], window, check)  # (U, U)
    if len(unique) == len(X) and np.array_equal(columns, unique):
        return inside  # every series, in order: the usual cross-validation case
    out = np.empty((len(X), len(columns)))
    position = np.searchsorted(unique, columns)  # each column's index in unique
    out[unique] = inside[:, position]
    others = np.setdiff1d(np.arange(len(X)), unique)
    if len(others):
        out[others] = _c_rectangle(X[others], X[unique], lengths[others], lengths[unique], window,
                                   check)[:, position]
    return out


def _jax_dtw(test: np.ndarray, train: np.ndarray, test_lengths: np.ndarray, train_lengths: np.ndarray,
             window: float | None, check: Callable[[], None] | None) -> np.ndarray:
    """The JAX DTW: every (test, train) pair over the longest length, in blocks of rows."""
    import jax

    block = _compiled_dtw_block()
    a = _back_aligned(test, test_lengths)
    b = _back_aligned(train, train_lengths)
    band = -1.0 if window is None else float(window)
    rows = max(1, _DTW_CHUNK_CELLS // max(1, len(b) * b.shape[1]))
    out = np.empty((len(a), len(b)))
    with jax.enable_x64(True):
        for start in range(0, len(a), rows):
            stop = start + rows
            out[start:stop] = np.asarray(block(
                a[start:stop], b, test_lengths[start:stop], train_lengths, band
            ))
            if check is not None:
                check()
    return out


@functools.cache
def _compiled_dtw_block() -> Callable:
    import jax

    return jax.jit(_dtw_block)


def _dtw_block(a: Any, b: Any, len_a: Any, len_b: Any, band: float) -> Any:
    """(Ma, N) DTW distances: a (Ma, Ta, m), b (N, Tb, m) back-aligned; band < 0 = full.

    The band of :func:`dtw_distances`: offsets j - i from -(h + max(0, Ta - Tb)) to
    h + max(0, Tb - Ta) per pair.
    """
    import jax
    import jax.numpy as jnp

    a = jnp.asarray(a, jnp.float64)
    b = jnp.asarray(b, jnp.float64)
    steps_b = b.shape[1]
    inf = jnp.inf
    cols = jnp.arange(steps_b)
    longer = jnp.maximum(len_a[:, None], len_b[None, :]).astype(jnp.float64)  # (Ma, N)
    half_width = jnp.where(band < 0, jnp.inf, jnp.round(band * longer))
    # The band widened by the length difference towards the longer series' end.
    below = (half_width + jnp.maximum(len_a[:, None] - len_b[None, :], 0))[:, :, None]
    above = (half_width + jnp.maximum(len_b[None, :] - len_a[:, None], 0))[:, :, None]
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
        offset = (cols - i)[None, None, :]
        in_band = (offset >= -below) & (offset <= above)
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
    """Each test series' label from its nearest training series (first one on ties).

    A NaN distance is no neighbour. A test series with no finite distance to any training
    series is an error (ValueError), never the first training label.
    """
    distances = np.asarray(distances)
    finite = np.isfinite(distances)
    if distances.shape[1] == 0:
        raise ValueError("1-NN: there are no training series to compare with")
    missing = np.flatnonzero(~finite.any(axis=1))
    if len(missing):
        raise ValueError(
            f"1-NN: {len(missing)} of {len(distances)} test series (rows {', '.join(map(str, missing[:5]))}"
            f"{', ...' if len(missing) > 5 else ''}) have no finite distance to any of the "
            f"{distances.shape[1]} training series (NaN or infinite values in the data?)")
    if not finite.all():
        distances = np.where(np.isnan(distances), np.inf, distances)
    return np.asarray(train_labels)[np.argmin(distances, axis=1)]
