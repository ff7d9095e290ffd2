"""GPU checks of the engine: the grid kept on the device, and float32 accuracy.

1. ``gram_grid`` N=5000, T=64, L=2 (the paper grid, 64 kernels): end to end with
   ``output="device"`` (until the result is ready on the device), with ``output="host"``, and
   the device compute alone (every tile's ``fused_tile`` call, results dropped). Medians of
   timed repeats after a compiling run. On a GPU, the device compute again with the Pallas
   tile kernel (rntk_core/pallas_tile.py) in place of XLA's ``fused_tile``, and their ratio;
   the end-to-end ratios then refer to the path gram_grid takes (Pallas unless RNTK_PALLAS=0).
2. float32 against float64 on the device: relative Frobenius error of ``gram(X, Y)``, m = 3,
   for every kind / pool / direction at L = 2.

    python -m benchmarks.gpu_grid [--n 5000] [--steps 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import numpy as np

import rntk_core
from rntk_core.inputs import as_sequences
from rntk_core.pallas_tile import pallas_enabled, pallas_fused_tile
from rntk_core.recurrent import Sigmas, fused_tile
from rntk_core.tiling import (
    DEFAULT_MEMORY_BUDGET, _prepare, _round_up, _tile_origins, default_arccos, plan_tiles,
)

SIGMA_U = (0.25, 0.5)
SIGMA_B = (0.001, 0.1)


def median_seconds(fn, repeats: int) -> float:
    fn()  # compile
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def device_compute(X: np.ndarray, layers: int, tile=fused_tile) -> None:
    """The grid's tiles as gram_grid plans them, computed and dropped: the device's share.
    ``tile``: ``fused_tile`` (XLA) or ``pallas_fused_tile``."""
    x = as_sequences(X, None, "X")
    pairs = [(u, b) for u in SIGMA_U for b in SIGMA_B]
    dtype = np.dtype("float32")
    plan = plan_tiles(x.n, x.n, 2, len(pairs), layers, 4, DEFAULT_MEMORY_BUDGET, None)
    su = np.array([u for u, _ in pairs])
    sb = np.array([b for _, b in pairs])
    side = _prepare(x, ("fwd", "rev"), 2**0.5, su, sb, layers, _round_up(x.n, plan.side), dtype)
    sigmas = jax.device_put(Sigmas(np.asarray(2**0.5, dtype), su.astype(dtype), sb.astype(dtype)))
    arccos = default_arccos(dtype, jax.devices()[0].platform)
    results = []
    for r, c in _tile_origins(x.n, x.n, plan.side, True):
        rows = jax.device_put(side.rows(slice(r, r + plan.side)))
        cols = jax.device_put(side.rows(slice(c, c + plan.side)))
        results.append(tile(rows, cols, sigmas, layers=layers, masked=False, arccos_method=arccos))
    jax.block_until_ready(results)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()})", flush=True)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((args.n, args.steps)) / np.sqrt(args.steps)
    kwargs = dict(sigma_u=SIGMA_U, sigma_b=SIGMA_B, layers=args.layers)

    def on_device():
        grid = rntk_core.gram_grid(X, output="device", **kwargs)
        jax.block_until_ready(grid._readouts)

    compute = median_seconds(lambda: device_compute(X, args.layers), args.repeats)
    if jax.default_backend() == "gpu":
        try:
            pallas = median_seconds(lambda: device_compute(X, args.layers, pallas_fused_tile), args.repeats)
        except Exception as exc:  # a lowering/compile failure: report it, time the rest
            print(f"Pallas tile kernel failed: {type(exc).__name__}: {exc}", flush=True)
        else:
            print(f"device compute N={args.n} T={args.steps} L={args.layers}: XLA fused_tile {compute:.3f} s, "
                  f"Pallas {pallas:.3f} s (XLA / Pallas = {compute / pallas:.2f}x)", flush=True)
            if pallas_enabled(jax.devices()[0], np.float32):
                compute = pallas  # what gram_grid below runs
    else:
        print(f"no GPU ({jax.default_backend()}): skipping the Pallas vs XLA tile timing", flush=True)
    device = median_seconds(on_device, args.repeats)
    print(f"gram_grid N={args.n} T={args.steps} L={args.layers}: device compute {compute:.3f} s, "
          f"output='device' {device:.3f} s ({device / compute:.2f}x compute)", flush=True)
    host = median_seconds(lambda: rntk_core.gram_grid(X, **kwargs), max(1, args.repeats - 2))
    print(f"  output='host' {host:.3f} s ({host / compute:.2f}x compute)", flush=True)
    grid = rntk_core.gram_grid(X, output="device", **kwargs)
    key = ("ntk", "last", 2, "bi", 0.5, 0.1)
    started = time.perf_counter()
    copied = np.asarray(grid[key])
    print(f"  one bi kernel to the host: {time.perf_counter() - started:.3f} s "
          f"({copied.nbytes / 2**20:.0f} MiB)", flush=True)

    # float32 vs float64 on the device, K(X, Y) with m = 3.
    X3 = rng.standard_normal((600, 20, 3)) / np.sqrt(60)
    Y3 = rng.standard_normal((400, 20, 3)) / np.sqrt(60)
    worst = 0.0
    for kind in ("ck", "ntk"):
        for pool in ("last", "avg"):
            for direction in ("fwd", "bi"):
                params = dict(kind=kind, pool=pool, direction=direction, layers=2, sigma_u=0.5, sigma_b=0.1)
                k32 = rntk_core.gram(X3, Y3, dtype="float32", **params).astype(np.float64)
                k64 = rntk_core.gram(X3, Y3, dtype="float64", **params)
                error = float(np.linalg.norm(k32 - k64) / np.linalg.norm(k64))
                worst = max(worst, error)
                print(f"  float32 vs float64 {kind}-{pool}-{direction}: {error:.2e}")
    print(f"float32 worst relative error on {jax.default_backend()}: {worst:.2e} (bound 1e-4)", flush=True)


if __name__ == "__main__":
    main()
