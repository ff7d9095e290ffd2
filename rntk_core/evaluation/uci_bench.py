"""``rntk bench-uci``: the protocol over many UCI folders, and the paper's Table I metrics.

For each dataset the families are evaluated with :func:`rntk_core.evaluation.evaluate.evaluate_dataset`
(one kernel pass, shared SVM fits). The summary over datasets, per family (accuracies are
fractions in [0, 1]):

- ``mean_accuracy``: the mean test accuracy.
- ``p95``: the fraction of datasets where the family reaches at least 95% of the best
  family's accuracy on that dataset.
- ``pma``: the percentage of the maximum accuracy, as a fraction: the mean over datasets of
  accuracy / best accuracy on that dataset. (The paper's text calls it "the percentage of the
  datasets in which a classifier achieves the maximum accuracy", but its Table I values,
  96-98%, are the percentage of maximum accuracy of Fernandez-Delgado et al. and Arora et al.)
- ``friedman_rank``: the mean over datasets of the family's rank on that dataset (1 = best,
  tied accuracies share the average of their ranks).

The best accuracy of a dataset is taken over the families of the run.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from scipy.stats import rankdata
from tqdm import tqdm

from .config import EvaluationConfig
from .datasets import load_dataset
from .evaluate import evaluate_dataset
from .files import atomic_write_text
from .kernels import check_families

__all__ = ["format_table", "list_datasets", "run_bench", "table_metrics"]

#: Accuracies are rounded before they are compared, so equal fold counts always tie.
_DECIMALS = 12


def list_datasets(root: Path, names: Sequence[str] | None = None) -> list[str]:
    """The dataset names to run: ``names``, or every line of ``root/datasets.txt``.

    Raises:
        ValueError: no datasets.txt (and no names), or a name without a folder in ``root``.
    """
    if not root.is_dir():
        raise ValueError(f"{root}: not a folder")
    if not names:
        listing = root / "datasets.txt"
        if not listing.is_file():
            raise ValueError(f"{root}: no datasets.txt; name the datasets with --datasets")
        names = [line.strip() for line in listing.read_text(encoding="utf-8").splitlines() if line.strip()]
    missing = [name for name in names if not (root / name).is_dir()]
    if missing:
        raise ValueError(f"{root}: no dataset folder for {', '.join(missing)}")
    return list(dict.fromkeys(names))


def bench_dataset(
    path: Path, config: EvaluationConfig, families: Sequence[str], *, n_jobs: int | None = None,
    dtype: str = "float32", placement: str = "auto", grid_memory: int | None = None,
) -> dict[str, Any]:
    """One dataset's entry of the results: N, T, per-family outcome, seconds."""
    dataset = load_dataset(path, features_per_step=config.features_per_step)
    report = evaluate_dataset(dataset, config, families=families, n_jobs=n_jobs, dtype=dtype,
                              placement=placement, grid_memory=grid_memory)
    outcomes = {
        family: {key: result[key] for key in ("test_accuracy", "validation_accuracy", "chosen")}
        for family, result in report["families"].items()
    }
    timings = report["timings"]
    return {
        "N": dataset.n_samples,
        "T": dataset.n_steps,
        "families": outcomes,
        "seconds": {"kernels": timings["kernels"], "svm": timings["validation"] + timings["test"]},
        "non_converged": len(report["non_converged"]),
        "solver": report["solver"]["used"],
    }


def table_metrics(accuracies: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """Table I's metrics from {dataset: {family: test accuracy}}; every dataset needs every family.

    Returns:
        {family: {mean_accuracy, p95, pma, friedman_rank}}.
    """
    if not accuracies:
        return {}
    families = list(next(iter(accuracies.values())))
    table = np.array([[round(float(row[family]), _DECIMALS) for family in families]
                      for row in accuracies.values()])  # (datasets, families)
    best = table.max(axis=1, keepdims=True)
    ratio = np.divide(table, best, out=np.ones_like(table), where=best > 0)
    ranks = np.vstack([rankdata(-row, method="average") for row in table])
    return {
        family: {
            "mean_accuracy": float(table[:, j].mean()),
            "p95": float(np.mean(table[:, j] >= 0.95 * best[:, 0])),
            "pma": float(ratio[:, j].mean()),
            "friedman_rank": float(ranks[:, j].mean()),
        }
        for j, family in enumerate(families)
    }


def format_table(summary: Mapping[str, Mapping[str, float]], n_datasets: int) -> str:
    """Table I as text: one column per family, rows Acc. mean / P95 / PMA / Friedman rank."""
    families = list(summary)
    width = max([len(name) for name in families] + [8]) + 2
    rows = [("Acc. mean", "mean_accuracy", True), ("P95", "p95", True), ("PMA", "pma", True),
            ("Friedman rank", "friedman_rank", False)]
    lines = [f"Table I over {n_datasets} dataset(s)",
             "".ljust(15) + "".join(name.rjust(width) for name in families)]
    for label, key, percent in rows:
        cells = [f"{100 * summary[f][key]:.2f}%" if percent else f"{summary[f][key]:.2f}" for f in families]
        lines.append(label.ljust(15) + "".join(cell.rjust(width) for cell in cells))
    return "\n".join(lines)


def run_bench(
    root: str | Path,
    out: str | Path,
    config: EvaluationConfig,
    *,
    names: Sequence[str] | None = None,
    families: Sequence[str] | None = None,
    n_jobs: int | None = None,
    progress: bool = True,
    dtype: str = "float32",
    placement: str = "auto",
    grid_memory: int | None = None,
    resume: bool = False,
) -> dict[str, Any]:
    """Run every dataset, write ``out`` (JSON) and return the results.

    A dataset that fails (bad files, too few samples) is recorded under ``errors`` and left
    out of the summary; the run goes on. ``out`` is rewritten (atomically) after every
    dataset, with ``"complete": false`` until the last, so a long run that is stopped keeps
    what it finished. With ``resume``, the datasets an earlier run wrote to ``out`` are kept
    and not run again; ``seconds`` then adds this run's time to the earlier one's.

    Raises:
        ValueError: ``resume`` and ``out`` holds another run's families, or is not a results file.
    """
    root = Path(root)
    out = Path(out)
    datasets = list_datasets(root, names)
    families = check_families(list(families) if families else list(config.families))
    results: dict[str, Any] = {"datasets": {}, "summary": {}, "errors": {}, "families": families,
                               "complete": False}
    earlier_seconds = 0.0
    if resume and out.is_file():
        earlier = _earlier_results(out, families)
        results["datasets"] = {name: entry for name, entry in earlier["datasets"].items() if name in datasets}
        earlier_seconds = float(earlier.get("seconds", 0.0))
    todo = [name for name in datasets if name not in results["datasets"]]
    start = time.perf_counter()
    if not todo:
        _finish(results, families, earlier_seconds, complete=True)
        atomic_write_text(out, json.dumps(results, indent=2) + "\n")
    for index, name in enumerate(tqdm(todo, desc="datasets", unit="dataset", disable=not progress)):
        try:
            results["datasets"][name] = bench_dataset(root / name, config, families, n_jobs=n_jobs, dtype=dtype,
                                                      placement=placement, grid_memory=grid_memory)
        except ValueError as exc:
            results["errors"][name] = str(exc)
        _finish(results, families, earlier_seconds + time.perf_counter() - start,
                complete=index == len(todo) - 1)
        atomic_write_text(out, json.dumps(results, indent=2) + "\n")
    return results


def _finish(results: dict[str, Any], families: Sequence[str], seconds: float, *, complete: bool) -> None:
    accuracies = {name: {family: entry["families"][family]["test_accuracy"] for family in families}
                  for name, entry in results["datasets"].items()}
    results["summary"] = table_metrics(accuracies)
    results["seconds"] = seconds
    results["complete"] = complete


def _earlier_results(out: Path, families: Sequence[str]) -> dict[str, Any]:
    try:
        earlier = json.loads(out.read_text(encoding="utf-8"))
        done = earlier["datasets"]
        if not isinstance(done, dict):
            raise TypeError("datasets is not an object")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{out}: cannot resume, not a bench-uci results file ({exc})") from None
    if list(earlier.get("families", [])) != list(families):
        raise ValueError(f"{out}: cannot resume, it holds families {', '.join(earlier.get('families', []))}, "
                         f"this run asks for {', '.join(families)}")
    return earlier
