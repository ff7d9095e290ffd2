"""Tiles, symmetry, the memory budget and devices.

Entry (i, j) of every kernel depends only on x_i, x_j and their per-sample variance
sequences, so tiles are independent once those diagonals are known (O(N T L)).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import deque
from dataclasses import dataclass
from functools import partial
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .inputs import Sequences
from .pallas_tile import tile_function
from .recurrent import Operand, Sigmas, sample_variances, variance_scales

#: The working set's default device memory; callers pass their own ``memory_budget``.
DEFAULT_MEMORY_BUDGET = 1024 * 2**20
# Measured on 2 cores at N=1000: 128-wide tiles run 4x faster than 512 (cache, and
# more symmetric savings); 64 loses to per-tile overhead.
DEFAULT_MAX_TILE_CPU = 128
TILE_MULTIPLE = 8
MIN_TILE = 32


@dataclass(frozen=True)
class TilePlan:
    """Tile side and how many sigma pairs go through one tile call."""

    side: int
    group_size: int
    bytes_per_pair: int

    @property
    def peak_bytes(self) -> int:
        return self.side * self.side * self.bytes_per_pair


def working_bytes_per_pair(directions: int, groups: int, layers: int, itemsize: int) -> int:
    """Device bytes one sample pair costs inside ``fused_tile``.

    Per layer 5 carried arrays, double-buffered by the scan, plus the 4 readouts; about
    16 more arrays of temporaries per (direction, pair) in the step body.
    """
    return itemsize * directions * groups * (14 * layers + 16)


def plan_tiles(
    n: int,
    m: int,
    directions: int,
    groups: int,
    layers: int,
    itemsize: int,
    memory_budget: int,
    max_tile: int | None,
) -> TilePlan:
    """Largest square tile within the budget, batching as many sigma pairs as fit."""
    longest = _round_up(max(n, m), TILE_MULTIPLE)
    cap = min(longest, max_tile) if max_tile else longest
    group_size = groups
    while True:
        per_pair = working_bytes_per_pair(directions, group_size, layers, itemsize)
        side = int(math.isqrt(max(memory_budget // per_pair, 0)))
        side = min(cap, side // TILE_MULTIPLE * TILE_MULTIPLE)
        if side >= min(cap, MIN_TILE * 4) or group_size == 1:
            break
        group_size = max(1, group_size // 2)
    if side < TILE_MULTIPLE:
        raise ValueError(
            f"memory_budget={memory_budget} bytes is too small: one {TILE_MULTIPLE}x{TILE_MULTIPLE} "
            f"tile needs {per_pair * TILE_MULTIPLE**2} bytes"
        )
    return TilePlan(side=side, group_size=group_size, bytes_per_pair=per_pair)


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _pad_samples(array: np.ndarray, axis: int, size: int) -> np.ndarray:
    pad = [(0, 0)] * array.ndim
    pad[axis] = (0, size - array.shape[axis])
    return np.pad(array, pad)


def _prepare(
    seqs: Sequences,
    directions: Sequence[str],
    sigma_w: float,
    sigma_u: np.ndarray,
    sigma_b: np.ndarray,
    layers: int,
    padded: int,
    dtype: np.dtype,
) -> Operand:
    """One operand, time-major, its sample axis zero-padded to ``padded``."""
    oriented = [seqs if d == "fwd" else seqs.reversed() for d in directions]
    values = np.stack([s.values for s in oriented])  # (D, N, T, m)
    started = np.stack([s.started() for s in oriented])  # (D, N, T)
    variances = sample_variances(values, started, sigma_w, sigma_u, sigma_b, layers)
    roots, inv_roots = variance_scales(variances, dtype)  # (D, G, L, T, N)
    return Operand(
        values=_pad_samples(np.transpose(values, (2, 0, 1, 3)).astype(dtype), 2, padded),
        roots=_pad_samples(np.transpose(roots, (3, 0, 1, 2, 4)), 4, padded),
        inv_roots=_pad_samples(np.transpose(inv_roots, (3, 0, 1, 2, 4)), 4, padded),
        started=_pad_samples(np.transpose(started, (2, 0, 1)).astype(dtype), 2, padded),
    )


def default_arccos(dtype: np.dtype, platform: str) -> str:
    # XLA's CPU arccos costs ~40x a polynomial; its error (~5e-7) is fine for float32 only.
    return "polynomial" if platform == "cpu" and dtype == np.float32 else "native"


def compute_readouts(
    x: Sequences,
    y: Sequences | None,
    *,
    directions: Sequence[str],
    sigma_w: float,
    sigma_u: Sequence[float],
    sigma_b: Sequence[float],
    layers: int,
    dtype: str,
    memory_budget: int | None = None,
    max_tile: int | None = None,
    devices: Sequence[jax.Device] | None = None,
    stats: dict | None = None,
    on_tile: Callable[[int, int], None] | None = None,
    output: str = "host",
    tiles_as: tuple[int, int] | None = None,
) -> np.ndarray | jax.Array:
    """All readouts for all (sigma_u[g], sigma_b[g]) pairs, with sigma_v = 1.

    ``stats``, if given, receives the tile plan, tile counts and per-phase seconds.
    ``on_tile(done, total)`` runs after each tile; an exception from it stops the work.
    ``tiles_as``: plan the tiles as for an (n_rows, n_cols) computation, e.g. a row block of
    K(X, X) with the whole's tiles: XLA compiles each tile size apart, and tiles of another
    size can round differently in float32.

    Returns (D, 4, L, G, N, M) in ``dtype``: directions as given, readouts in
    ``recurrent.READOUTS`` order, the l-layer kernel at index l - 1.
    For K(X, X) (``y is None``) only tiles on or above the diagonal are computed.
    """
    np_dtype = np.dtype(dtype)
    x64 = jax.enable_x64(True) if np_dtype == np.float64 else contextlib.nullcontext()
    with x64:
        devices = list(devices or jax.devices())
        platform = devices[0].platform
        budget = memory_budget or DEFAULT_MEMORY_BUDGET
        if max_tile is None and platform == "cpu":
            max_tile = DEFAULT_MAX_TILE_CPU
        symmetric = y is None
        n_rows, n_cols = x.n, (x.n if symmetric else y.n)
        groups = len(sigma_u)
        plan = plan_tiles(
            *(tiles_as or (n_rows, n_cols)), len(directions), groups, layers, np_dtype.itemsize, budget, max_tile
        )
        side = plan.side
        sigma_u = np.asarray(sigma_u, dtype=np.float64)
        sigma_b = np.asarray(sigma_b, dtype=np.float64)
        arccos_method = default_arccos(np_dtype, platform)
        masked = x.lengths is not None or (y is not None and y.lengths is not None)

        on_device = output == "device"
        if on_device:
            # Assembled where it is computed: tiles are written into one padded device array
            # (donated, so in place), mirrored once at the end; nothing goes to the host.
            n_chunks = -(-groups // plan.group_size)
            out = _DeviceCanvas(
                (len(directions), 4, layers, n_chunks * plan.group_size,
                 _round_up(n_rows, side), _round_up(n_cols, side)), np_dtype, devices[0])
        else:
            out = np.empty((len(directions), 4, layers, groups, n_rows, n_cols), dtype=np_dtype)
        stats = {} if stats is None else stats
        stats.update(
            tile_side=side, sigma_pairs_per_call=plan.group_size, working_bytes=plan.peak_bytes,
            devices=[str(d) for d in devices], arccos=arccos_method,
            seconds_prepare=0.0, seconds_tiles=0.0, tiles_computed=0,
        )
        chunks = range(0, groups, plan.group_size)
        tiles_per_chunk = len(_tile_origins(n_rows, n_cols, side, symmetric))
        progress = _TileProgress(on_tile, len(chunks) * tiles_per_chunk)
        for g0 in chunks:
            g1 = min(groups, g0 + plan.group_size)
            # Every group chunk gets the same shape, so one compilation serves them all.
            su = np.concatenate([sigma_u[g0:g1], np.full(plan.group_size - (g1 - g0), sigma_u[g0])])
            sb = np.concatenate([sigma_b[g0:g1], np.full(plan.group_size - (g1 - g0), sigma_b[g0])])
            started = time.perf_counter()
            side_x = _prepare(x, directions, sigma_w, su, sb, layers, _round_up(n_rows, side), np_dtype)
            side_y = side_x if symmetric else _prepare(
                y, directions, sigma_w, su, sb, layers, _round_up(n_cols, side), np_dtype
            )
            block = out.chunk(g0) if on_device else out[:, :, :, g0:g1]
            stats["seconds_prepare"] += time.perf_counter() - started
            started = time.perf_counter()
            sigmas = Sigmas(np.asarray(sigma_w, np_dtype), su.astype(np_dtype), sb.astype(np_dtype))
            _run_tiles(
                side_x, side_y, sigmas, block, side=side, symmetric=symmetric, devices=devices,
                used_groups=g1 - g0, layers=layers, masked=masked, arccos_method=arccos_method,
                on_collected=progress.advance,
            )
            stats["seconds_tiles"] += time.perf_counter() - started
            if not on_device:
                _require_finite(bool(np.isfinite(block).all()), sigma_w, x.steps, np_dtype)
        stats["tiles_computed"] = progress.done
        if on_device:
            result = out.finish(groups, n_rows, n_cols, symmetric)
            _require_finite(bool(jnp.isfinite(result).all()), sigma_w, x.steps, np_dtype)
            return result
        return out


def _require_finite(finite: bool, sigma_w: float, steps: int, dtype: np.dtype) -> None:
    """Inputs are finite (checked), so a non-finite kernel is an overflow of ``dtype``: with
    sigma_w > sqrt(2) the recursion grows like (sigma_w**2 / 2) ** T."""
    if finite:
        return
    growth = f"sigma_w = {sigma_w:g} > sqrt(2) grows the kernel like (sigma_w**2 / 2)**T over T = {steps} steps"
    cause = growth if sigma_w**2 > 2.0 else f"the kernel exceeds the range of {dtype.name}"
    hint = ("use float64 (dtype='float64'; `rntk evaluate --dtype float64`) or a smaller sigma_w"
            if dtype != np.float64 else "use a smaller sigma_w")
    raise ValueError(f"the kernel overflowed {dtype.name} (non-finite values): {cause}; {hint}")


class _DeviceCanvas:
    """The (D, 4, L, G, N, M) readouts as one device array, written tile by tile in place."""

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype, device: jax.Device) -> None:
        self.array = jax.device_put(jnp.zeros(shape, dtype), device)
        self.device = device
        self.shape = shape

    def chunk(self, g0: int) -> "_DeviceChunk":
        return _DeviceChunk(self, g0)

    def finish(self, groups: int, n_rows: int, n_cols: int, symmetric: bool) -> jax.Array:
        return _mirror_and_crop(self.array, groups, n_rows, n_cols, symmetric)


@dataclass
class _DeviceChunk:
    """The slice of a canvas that one sigma-pair chunk's tiles go to (``out`` of ``_run_tiles``)."""

    canvas: _DeviceCanvas
    g0: int

    @property
    def shape(self) -> tuple[int, ...]:
        return self.canvas.shape

    def place(self, result: jax.Array, r: int, c: int) -> None:
        result = jax.device_put(result, self.canvas.device)
        self.canvas.array = _place_tile(self.canvas.array, result, self.g0, r, c)


@partial(jax.jit, donate_argnums=0)
def _place_tile(out: jax.Array, block: jax.Array, g0, r, c) -> jax.Array:
    return jax.lax.dynamic_update_slice(out, block.astype(out.dtype), (0, 0, 0, g0, r, c))


@partial(jax.jit, static_argnums=(1, 2, 3, 4))
def _mirror_and_crop(out: jax.Array, groups: int, n_rows: int, n_cols: int, symmetric: bool) -> jax.Array:
    out = out[:, :, :, :groups, :n_rows, :n_cols]
    if symmetric:
        # Only tiles on or above the diagonal were computed: keep the upper triangle
        # (diagonal tiles computed both; one is kept so K is exactly symmetric).
        upper = jnp.arange(n_rows)[:, None] <= jnp.arange(n_cols)[None, :]
        out = jnp.where(upper, out, jnp.swapaxes(out, -1, -2))
    return out


def _tile_origins(n_rows: int, n_cols: int, side: int, symmetric: bool) -> list[tuple[int, int]]:
    """Top-left corners of the tiles to compute; only those on or above the diagonal for K(X, X)."""
    return [
        (r, c)
        for r in range(0, n_rows, side)
        for c in range(0, n_cols, side)
        if not symmetric or c >= r
    ]


@dataclass
class _TileProgress:
    callback: Callable[[int, int], None] | None
    total: int
    done: int = 0

    def advance(self) -> None:
        self.done += 1
        if self.callback is not None:
            self.callback(self.done, self.total)


def _run_tiles(
    side_x: Operand,
    side_y: Operand,
    sigmas: Sigmas,
    out: np.ndarray,
    *,
    side: int,
    symmetric: bool,
    devices: list[jax.Device],
    used_groups: int,
    layers: int,
    masked: bool,
    arccos_method: str,
    on_collected: Callable[[], None],
) -> None:
    """Compute the tiles into ``out``."""
    n_rows, n_cols = out.shape[-2:]
    if isinstance(out, _DeviceChunk):  # padded sizes; the tiles exactly cover them
        n_rows, n_cols = side_x.values.shape[2], side_y.values.shape[2]
    tiles = _tile_origins(n_rows, n_cols, side, symmetric)
    placed = {device: jax.device_put(sigmas, device) for device in devices}
    # A bounded window of tiles in flight keeps every device busy and memory bounded.
    in_flight: deque = deque()
    window = 2 * len(devices)  # >= 2: the host collects one tile while the next runs

    def collect() -> None:
        (r, c), result = in_flight.popleft()
        if isinstance(out, _DeviceChunk):
            out.place(result, r, c)
            on_collected()
            return
        block = np.asarray(result)[:, :, :, :used_groups]
        rows, cols = min(side, n_rows - r), min(side, n_cols - c)
        if symmetric and c == r:
            # Both triangles of a diagonal tile were computed; keep one, so K is exactly symmetric.
            upper = np.triu(block, 1)
            block = np.triu(block) + np.swapaxes(upper, -1, -2)
        out[..., r : r + rows, c : c + cols] = block[..., :rows, :cols]
        if symmetric and c != r:
            out[..., c : c + cols, r : r + rows] = np.swapaxes(block[..., :rows, :cols], -1, -2)
        on_collected()

    for index, (r, c) in enumerate(tiles):
        device = devices[index % len(devices)]
        rows = jax.device_put(side_x.rows(slice(r, r + side)), device)
        cols = jax.device_put(side_y.rows(slice(c, c + side)), device)
        # fused_tile, or on a GPU in float32 its Pallas kernel (pallas_tile.py; RNTK_PALLAS=0: off).
        tile = tile_function(device, side_x.values.dtype)
        result = tile(rows, cols, placed[device], layers=layers, masked=masked, arccos_method=arccos_method)
        in_flight.append(((r, c), result))
        if len(in_flight) >= window:
            collect()
    while in_flight:
        collect()
