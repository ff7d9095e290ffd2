"""`make bench`: one fused `gram_grid` call against the paper-style baseline, same process.

The baseline (benchmarks/naive_rntk.py) runs one jitted lax.scan per configuration on
the full N x N: 4 sigma pairs x L in {1, 2} x CK/NTK x last/avg x fwd/rev = 64 calls.
Both sides are compiled before timing; medians of the timed repeats are reported.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

import rntk_core
from rntk_core.dual import relu_dual_complement
from rntk_core.tiling import default_arccos

from .naive_rntk import naive_grid, naive_gram

SIGMA_W = 2**0.5
SIGMA_U = (0.25, 0.5)
SIGMA_B = (0.001, 0.1)


def timed(fn, repeats: int) -> tuple[float, list[float], object]:
    seconds, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), seconds, result


def dual_throughput(elements: int = 1 << 22) -> float:
    """Dual activations (Vphi and Vphi') per second, as the engine evaluates them."""
    platform = jax.devices()[0].platform
    method = default_arccos(np.dtype(np.float32), platform)
    rng = np.random.default_rng(0)
    side = int(elements**0.5)
    # Unit variances, so the distance (a + b)/2 - s = 1 - c spans c in [-1, 1].
    dist = jnp.asarray(rng.uniform(0, 2, (side, side)).astype(np.float32))
    scale = jnp.ones((side, 1), jnp.float32)
    fn = jax.jit(lambda c, s: relu_dual_complement(c, s, s.T, s, s.T, method))
    jax.block_until_ready(fn(dist, scale))
    median, _, _ = timed(lambda: jax.block_until_ready(fn(dist, scale)), 5)
    return side * side / median


def data(n: int, steps: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, steps))
    return x / np.linalg.norm(x, axis=1).max()  # the UCI protocol's normalisation


def bench_grid(n: int, steps: int, repeats: int, baseline_repeats: int) -> dict:
    x = data(n, steps)
    kwargs = dict(sigma_w=SIGMA_W, sigma_u=SIGMA_U, sigma_b=SIGMA_B, layers=2)
    rntk_core.gram_grid(x, **kwargs)  # compile
    stats: dict = {}

    def ours():
        stats.clear()
        return rntk_core.gram_grid(x, **kwargs, stats=stats)

    ours_median, ours_all, grid = timed(ours, repeats)
    report = {"N": n, "T": steps, "fused_seconds": ours_median, "fused_all": ours_all,
              "phases": {k: v for k, v in stats.items() if k.startswith("seconds")},
              "plan": {k: v for k, v in stats.items() if not k.startswith("seconds")}}
    if baseline_repeats:
        # Compile each distinct baseline program once on the same shape.
        for depth in (1, 2):
            for kind in ("ck", "ntk"):
                for pool in ("last", "avg"):
                    naive_gram(jnp.asarray(x), SIGMA_W, 0.5, 0.1, layers=depth, kind=kind, pool=pool).block_until_ready()
        base_median, base_all, base = timed(
            lambda: naive_grid(x, SIGMA_W, SIGMA_U, SIGMA_B, 2), baseline_repeats
        )
        error = max(np.linalg.norm(grid[k] - v) / np.linalg.norm(v) for k, v in base.items())
        report.update(baseline_seconds=base_median, baseline_all=base_all,
                      baseline_calls=len(base), ratio=base_median / ours_median,
                      max_rel_frobenius_vs_baseline=float(error))
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline-repeats", type=int, default=1)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    device = jax.devices()[0]
    results = {"device": f"{device.platform}: {device.device_kind} x{len(jax.devices())}",
               "jax": jax.__version__}
    print(f"device: {results['device']}  (jax {jax.__version__})")
    results["dual_activations_per_second"] = dual_throughput()
    print(f"dual activation throughput: {results['dual_activations_per_second']:.3e} elements/s")

    grid = bench_grid(args.n, args.steps, args.repeats, args.baseline_repeats)
    results["grid"] = grid
    print(f"paper grid N={grid['N']} T={grid['T']} (4 sigma pairs x L 1..2 x CK/NTK x last/avg x fwd/rev/bi)")
    print(f"  fused gram_grid: median {grid['fused_seconds']:.2f} s of {len(grid['fused_all'])} runs "
          f"{[round(s, 2) for s in grid['fused_all']]}")
    print("  phases: " + ", ".join(f"{k[8:]} {v:.2f} s" for k, v in grid["phases"].items()))
    print(f"  plan: {grid['plan']}")
    if "ratio" in grid:
        print(f"  baseline, {grid['baseline_calls']} jitted lax.scan calls: median "
              f"{grid['baseline_seconds']:.2f} s of {[round(s, 2) for s in grid['baseline_all']]}")
        print(f"  max relative Frobenius difference to the baseline: {grid['max_rel_frobenius_vs_baseline']:.1e}")
        print(f"  SPEEDUP (baseline / fused): {grid['ratio']:.1f}x")

    if device.platform == "gpu":
        big = bench_grid(5000, 64, 3, 0)
        results["gpu_large"] = big
        print(f"GPU N=5000 T=64 L=2 grid: median {big['fused_seconds']:.2f} s, phases {big['phases']}")

    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
