"""1NN-DTW throughput: the project's DTW against dtaidistance called directly and the JAX scan.

`python -m benchmarks.dtw_benchmark` (options: --series, --train, --steps, --repeats).

Every method computes the same job on the same data, the one 1NN-DTW computes in an
evaluation: the distances from every series to the training series (the training series
among themselves once per pair, the test series against them). Throughput is counted in the
DP cells that job needs, ``sum over pairs of band width x length``
(:func:`rntk_core.evaluation.nearest.dtw_cells`), divided by the median of ``--repeats``
timed runs (the first, untimed, call compiles the JAX scan):

- ``project``: :func:`~rntk_core.evaluation.nearest.dtw_distances_to` with its default
  backend (dtaidistance's C on a CPU): per-pair lengths and bands, symmetry.
- ``dtaidistance``: one ``dtw.distance_matrix_fast`` call over the same pairs (training
  series first, ``block`` rows = the training series, upper triangle), one window for all
  pairs (from the longest series: the direct call cannot vary it per pair).
- ``jax``: the JAX scan (``backend="jax"``), the path before dtaidistance; it runs every
  pair over the longest length and the whole width, whatever the window.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import numpy as np

from rntk_core.evaluation.nearest import (
    band_half_widths,
    c_dtw_parallel,
    dtw_backend,
    dtw_cells,
    dtw_distances_to,
)


def sequences(n: int, steps: int, shortest: int | None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n, steps, 1) front-padded sums of sinusoids with noise, lengths in [shortest, steps]
    (all ``steps`` when ``shortest`` is None), and the lengths."""
    rng = np.random.default_rng(seed)
    lengths = np.full(n, steps) if shortest is None else rng.integers(shortest, steps + 1, n)
    values = np.zeros((n, steps, 1))
    for i, length in enumerate(lengths):
        t = np.linspace(0.0, 1.0, length)
        frequencies = rng.uniform(1.0, 12.0, 3)
        wave = sum(np.sin(2 * np.pi * (f * t + rng.uniform())) for f in frequencies)
        values[i, steps - length:, 0] = wave + 0.3 * rng.standard_normal(length)
    return values, lengths


def job_cells(lengths: np.ndarray, train: int, window: float | None) -> float:
    """Band cells of the job: training pairs (p < q) plus every test series x training series."""
    train_lengths, test_lengths = lengths[:train], lengths[train:]
    upper = np.triu(dtw_cells(train_lengths[:, None], train_lengths[None, :], window), k=1).sum()
    return float(upper + dtw_cells(test_lengths[:, None], train_lengths[None, :], window).sum())


def timed(fn: Callable[[], object], repeats: int) -> float:
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def direct_dtaidistance(values: np.ndarray, lengths: np.ndarray, train: int, window: float | None) -> np.ndarray:
    from dtaidistance import dtw

    total = values.shape[1]
    series = [np.ascontiguousarray(values[i, total - n:, 0]) for i, n in enumerate(lengths)]
    width = 0 if window is None else int(band_half_widths(lengths.max(), lengths.max(), window)) + 1
    return dtw.distance_matrix_fast(series, block=((0, train), (0, len(series))), compact=True,
                                    window=width, use_pruning=False)


def bench_case(values: np.ndarray, lengths: np.ndarray, train: int, window: float | None,
               repeats: int) -> dict[str, float]:
    columns = np.arange(train)
    cells = job_cells(lengths, train, window)
    project = lambda: dtw_distances_to(values, lengths, columns, window=window)  # noqa: E731
    direct = lambda: direct_dtaidistance(values, lengths, train, window)  # noqa: E731
    old = lambda: dtw_distances_to(values, lengths, columns, window=window, backend="jax")  # noqa: E731
    old()  # compile
    results = {"cells": cells}
    for name, fn in (("project", project), ("dtaidistance", direct), ("jax", old)):
        seconds = timed(fn, repeats)
        results[name] = seconds
    same = np.allclose(project(), old(), rtol=1e-12)
    results["agree"] = float(same)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=100, help="series in all (training ones first)")
    parser.add_argument("--train", type=int, default=50, help="training series")
    parser.add_argument("--steps", type=int, default=200, help="the longest length")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"project backend on this machine: {dtw_backend()} (OpenMP: {c_dtw_parallel()}); "
          f"{args.series} series, {args.train} training, up to {args.steps} steps, median of {args.repeats}")
    print(f"{'case':<34} {'cells':>9} {'project':>16} {'dtaidistance':>16} {'old JAX':>16}  same")
    cases = [
        ("equal lengths, full window", None, None),
        ("equal lengths, window 0.1", None, 0.1),
        (f"lengths {args.steps // 4}..{args.steps}, full window", args.steps // 4, None),
        (f"lengths {args.steps // 4}..{args.steps}, window 0.1", args.steps // 4, 0.1),
    ]
    for name, shortest, window in cases:
        values, lengths = sequences(args.series, args.steps, shortest)
        result = bench_case(values, lengths, args.train, window, args.repeats)
        cells = result["cells"]
        columns = [f"{cells / result[key]:9.3g}/s {result[key]:5.2f}s" for key in ("project", "dtaidistance", "jax")]
        print(f"{name:<34} {cells:9.3g} {columns[0]:>16} {columns[1]:>16} {columns[2]:>16}  "
              f"{'yes' if result['agree'] else 'NO'}")
    print("cells/s: the job's band cells (sum over pairs of band width x length) per second; "
          "dtaidistance direct uses one window for all pairs (exact only for equal lengths)")


if __name__ == "__main__":
    main()
