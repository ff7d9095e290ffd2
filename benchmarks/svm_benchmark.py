"""The SVM stage of the default protocol, per solver: seconds and agreement (``make bench-svm``).

For each dataset (default: yeast and abalone from ``../shared/data/uci``) and each solver
(default: libsvm, hybrid via ``auto`` on a CPU, jax), the whole default protocol runs once
through :func:`evaluate_dataset`; printed per run: kernel seconds, SVM-stage seconds
(validation + test fits), the solver's fit counts and non-converged fits. Then, against the
first solver, the ratio of SVM seconds, the fraction of configurations with the same
validation accuracy, the largest validation-accuracy difference, and each family's test
accuracy under both.

    python -m benchmarks.svm_benchmark [--data ../shared/data/uci] [--datasets yeast abalone]
        [--solvers libsvm auto jax] [--families RNN RBF ...] [--json out.json]

A run may also name where the kernels live, ``SOLVER@PLACEMENT[:GRID_MB]``: ``jax@host``,
``jax@device``, or ``jax@device:64`` (recurrent grids in chunks of at most 64 MB of sigma
pairs); the default is ``@auto``. The first run also pays JAX's compilations (tens of
seconds on a CPU): name a run twice (``auto auto@device auto``; the repeat is ``auto#2``) to
compare warm runs.

This is a benchmark, not a test: it prints numbers and asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from rntk_core.evaluation.config import EvaluationConfig
from rntk_core.evaluation.datasets import load_dataset
from rntk_core.evaluation.evaluate import evaluate_dataset
from rntk_core.evaluation.report.assemble import device_description

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "uci"


def parse_run(spec: str) -> dict:
    """``SOLVER[@PLACEMENT[:GRID_MB]]`` -> evaluate_dataset's solver, placement, grid_memory."""
    solver, _, where = spec.partition("@")
    placement, _, grid_mb = (where or "auto").partition(":")
    if solver not in ("libsvm", "auto", "jax") or placement not in ("auto", "host", "device") \
            or (grid_mb and not grid_mb.isdigit()):
        raise argparse.ArgumentTypeError(f"{spec!r}: expected SOLVER[@PLACEMENT[:GRID_MB]], e.g. jax@device:64")
    return {"solver": solver, "placement": placement, "grid_memory": int(grid_mb) << 20 if grid_mb else None}


def run(data: Path, names: list[str], solvers: list[str], families: list[str] | None) -> dict:
    results: dict = {"device": device_description(), "datasets": {}}
    for name in names:
        dataset = load_dataset(data / name)
        runs = {}
        for index, spec in enumerate(solvers):
            repeat = solvers[:index].count(spec)
            solver = f"{spec}#{repeat + 1}" if repeat else spec
            options = parse_run(spec)
            config = EvaluationConfig(solver=options.pop("solver"))
            started = time.perf_counter()
            report = evaluate_dataset(dataset, config, families=families, **options)
            timings = report["timings"]
            runs[solver] = {
                "placement": report["solver"]["placement"],
                "grid_chunks": report["solver"].get("grid_chunks"),
                "used": report["solver"]["used"],
                "fits": report["solver"]["fits"],
                "non_converged": report["solver"]["non_converged"],
                "kernel_seconds": timings["kernels"],
                "svm_seconds": timings["validation"] + timings["test"],
                "total_seconds": time.perf_counter() - started,
                "validation": [c["validation_accuracy"] for c in report["configurations"]],
                "test": {f: r["test_accuracy"] for f, r in report["families"].items()},
            }
            r = runs[solver]
            chunks = f"  grid chunks {r['grid_chunks']}" if r["grid_chunks"] else ""
            print(f"{name} N={dataset.n_samples} {solver:>6} ({r['used']}, {r['placement']}): kernels "
                  f"{r['kernel_seconds']:7.1f} s  SVMs {r['svm_seconds']:7.1f} s  fits {r['fits']}  "
                  f"non-converged {r['non_converged']}{chunks}", flush=True)
        labels = list(runs)
        reference = labels[0]
        for solver in labels[1:]:
            a = np.array(runs[reference]["validation"])
            b = np.array(runs[solver]["validation"])
            runs[solver]["vs_" + reference] = {
                "svm_speedup": runs[reference]["svm_seconds"] / runs[solver]["svm_seconds"],
                "same_validation_accuracy": float(np.mean(a == b)),
                "max_validation_difference": float(np.max(np.abs(a - b))),
            }
            summary = runs[solver]["vs_" + reference]
            print(f"  {solver} vs {reference}: SVM-stage speedup {summary['svm_speedup']:.2f}x, "
                  f"same validation accuracy on {100 * summary['same_validation_accuracy']:.1f}% of "
                  f"{a.size} configurations, max difference {100 * summary['max_validation_difference']:.2f} points")
            for family, accuracy in runs[solver]["test"].items():
                print(f"    {family:>12}: test {100 * runs[reference]['test'][family]:6.2f}% ({reference})"
                      f"  {100 * accuracy:6.2f}% ({solver})")
        results["datasets"][name] = runs
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--datasets", nargs="+", default=["yeast", "abalone"])
    parser.add_argument("--solvers", nargs="+", default=["libsvm", "auto", "jax"],
                        help="runs: SOLVER[@PLACEMENT[:GRID_MB]] (see above)")
    parser.add_argument("--families", nargs="+", help="default: the config's default families")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    for spec in args.solvers:
        try:
            parse_run(spec)
        except argparse.ArgumentTypeError as exc:
            parser.error(str(exc))
    results = run(args.data, args.datasets, args.solvers, args.families)
    print(f"device: {results['device']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
