"""The JAX solver's validation stage with the recurrent kernels on the host vs on the device.

For each dataset, in one process: the plan (grids and models) is built once per placement
(``placement="host"``: NumPy kernels sliced on the host; ``"device"``: JAX kernels, gathered,
solved and predicted on the device), then the validation fits of every candidate run with
``solver="jax"``: one untimed warm-up (compilation), then ``--repeats`` timed runs, each
with an empty fit cache. Printed: the median seconds per placement, host / device, and how
many fits' predictions differ between the two (expected 0).

    python -m benchmarks.placement_benchmark [--data ../shared/data/uci] [--datasets ecoli]
        [--families RNN BI-RNN] [--repeats 3] [--json out.json]

This is a benchmark, not a test: it prints numbers and asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from rntk_core.evaluation.config import EvaluationConfig
from rntk_core.evaluation.datasets import load_dataset
from rntk_core.evaluation.kernels import build_plan
from rntk_core.evaluation.protocol import normalise, resolve_splits, selection_pairs, wanted_fits
from rntk_core.evaluation.report.assemble import device_description
from rntk_core.evaluation.solvers.fit import FitCache
from rntk_core.evaluation.solvers.strategy import fit_splits

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "uci"
PLACEMENTS = ("host", "device")


def validation_requests(dataset, config: EvaluationConfig, plan) -> dict:
    splits, _ = resolve_splits(dataset, config.protocol, config.seed)
    selection = selection_pairs(splits, dataset.y, dataset.classes, config.cv_folds, config.seed)
    wanted = wanted_fits([c for candidates in plan.candidates.values() for c in candidates])
    return {f"v{k}": (fit, score, wanted) for k, (fit, score) in enumerate(selection.pairs)}


def run(data: Path, names: list[str], families: list[str], repeats: int) -> dict:
    results: dict = {"device": device_description(), "datasets": {}}
    for name in names:
        dataset = load_dataset(data / name)
        config = EvaluationConfig(solver="jax", families=families)
        X, _ = normalise(dataset.X, config.normalize)
        seconds: dict[str, list[float]] = {}
        predictions: dict[str, dict] = {}
        for placement in PLACEMENTS:
            started = time.perf_counter()
            plan = build_plan(families, X, dataset.lengths, config, placement=placement)
            kernel_seconds = time.perf_counter() - started
            requests = validation_requests(dataset, config, plan)
            seconds[placement] = []
            for repeat in range(repeats + 1):  # the first run compiles: not timed
                cache: FitCache = {}
                started = time.perf_counter()
                fit_splits(plan.models, dataset.y, requests, cache, solver="jax")
                if repeat:
                    seconds[placement].append(time.perf_counter() - started)
            predictions[placement] = {key: fit.predictions for key, fit in cache.items()}
            print(f"{name} N={dataset.n_samples} {placement:>6}: kernels {kernel_seconds:6.1f} s, "
                  f"{len(cache)} validation fits, JAX solver stage median "
                  f"{statistics.median(seconds[placement]):7.2f} s of {seconds[placement]}", flush=True)
            del plan
        host, device = (statistics.median(seconds[p]) for p in PLACEMENTS)
        differing = sum(not np.array_equal(predictions["host"][key], predictions["device"][key])
                        for key in predictions["host"])
        print(f"  host / device: {host / device:.2f}x; fits whose predictions differ: {differing}", flush=True)
        results["datasets"][name] = {"seconds": seconds, "median": {"host": host, "device": device},
                                     "host_over_device": host / device, "differing_fits": differing,
                                     "fits": len(predictions["host"])}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--datasets", nargs="+", default=["ecoli"])
    parser.add_argument("--families", nargs="+", default=["RNN", "BI-RNN"],
                        help="recurrent families (baselines' kernels are NumPy under both placements)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    results = run(args.data, args.datasets, args.families, args.repeats)
    print(f"device: {results['device']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
