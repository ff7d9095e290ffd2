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
from rntk_core.evaluation.evaluate import device_description, evaluate_dataset

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "uci"


def run(data: Path, names: list[str], solvers: list[str], families: list[str] | None) -> dict:
    results: dict = {"device": device_description(), "datasets": {}}
    for name in names:
        dataset = load_dataset(data / name)
        runs = {}
        for solver in solvers:
            config = EvaluationConfig(solver=solver)
            started = time.perf_counter()
            report = evaluate_dataset(dataset, config, families=families)
            timings = report["timings"]
            runs[solver] = {
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
            print(f"{name} N={dataset.n_samples} {solver:>6} ({r['used']}): kernels {r['kernel_seconds']:7.1f} s"
                  f"  SVMs {r['svm_seconds']:7.1f} s  fits {r['fits']}  non-converged {r['non_converged']}",
                  flush=True)
        reference = solvers[0]
        for solver in solvers[1:]:
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
                        choices=["libsvm", "auto", "jax"])
    parser.add_argument("--families", nargs="+", help="default: the config's default families")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    results = run(args.data, args.datasets, args.solvers, args.families)
    print(f"device: {results['device']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
