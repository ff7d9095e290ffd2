"""The evaluation pipeline end to end: report fields, gram files, fit sharing, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import rntk_core
from rntk_core.evaluation import cli
from rntk_core.evaluation import evaluate as evaluation
from rntk_core.evaluation import kernels
from rntk_core.evaluation.config import EvaluationConfig
from rntk_core.evaluation.datasets import load_dataset
from tests.helpers import SHARED

UCI = SHARED / "data" / "uci"
RNTK = [sys.executable, "-m", "rntk_core.evaluation.cli"]

REPORT_KEYS = {"dataset", "config", "protocol", "x_scale", "configurations", "families", "grams",
               "non_converged", "timings", "versions", "device"}


@pytest.fixture(scope="module")
def iris_run(iris, tmp_path_factory):
    """One evaluation of iris with every recurrent variant, a user order and RF."""
    out = tmp_path_factory.mktemp("iris")
    config = EvaluationConfig(
        families=["RNN", "RNN-P", "BI-RNN", "RNN-AVG", "BI-RNN-AVG", "RF"],
        rnnp_orders=[[2, 0, 3, 1]], rf_n_estimators=[50],
    )
    report = evaluation.evaluate_dataset(iris, config, families=[*config.families, "RNN-P-CK"], out_dir=out,
                                         provenance={"command": "rntk evaluate iris"})
    return report, out


def test_report_fields(iris_run):
    report, out = iris_run
    assert REPORT_KEYS <= set(report)
    assert report["dataset"] == {"name": "iris", "format": "uci", "n_samples": 150, "n_steps": 4,
                                 "n_features": 1, "n_classes": 3, "classes": ["0", "1", "2"]}
    assert report["protocol"] == "predefined"
    assert report["selection"] == {"method": "holdout", "folds": 1}
    assert report["x_scale"] == pytest.approx(np.linalg.norm(load_dataset(UCI / "iris").X[:, :, 0], axis=1).max())
    assert set(report["timings"]) == {"load", "kernels", "validation", "test", "report", "total"}
    assert report["timings"]["total"] >= sum(v for k, v in report["timings"].items() if k != "total")
    assert set(report["versions"]) == {"rntk", "jax", "numpy", "scikit-learn", "python"}
    assert report["config"]["rnnp_orders"] == [[2, 0, 3, 1]]
    assert list(report["families"]) == ["RNN", "RNN-P", "BI-RNN", "RNN-AVG", "BI-RNN-AVG", "RF", "RNN-P-CK"]
    for family, outcome in report["families"].items():
        assert len(outcome["fold_accuracies"]) == 4
        assert outcome["test_accuracy"] == pytest.approx(np.mean(outcome["fold_accuracies"]))
        assert 0.8 <= outcome["test_accuracy"] <= 1 and 0.8 <= outcome["validation_accuracy"] <= 1
        assert len(outcome["chosen"]) % 2 == 1
        scores = [c["validation_accuracy"] for c in report["configurations"] if c["family"] == family]
        assert max(scores) == outcome["validation_accuracy"]
    counts = {family: sum(c["family"] == family for c in report["configurations"]) for family in report["families"]}
    assert counts == {"RNN": 80, "RNN-P": 240, "BI-RNN": 80, "RNN-AVG": 80, "BI-RNN-AVG": 80, "RF": 1,
                      "RNN-P-CK": 120}
    assert report["non_converged"] == []
    written = json.loads((out / "report.json").read_text())
    assert REPORT_KEYS <= set(written) and written["families"]["RNN"]["chosen"] == report["families"]["RNN"]["chosen"]
    assert (out / "report.csv").is_file() and (out / "report.html").is_file()


def test_reproducibility_and_splits(iris_run, iris):
    report, out = iris_run
    y = iris.y
    folds = iris.splits.folds
    majority = np.mean([np.mean(y[test] == np.bincount(y[train]).argmax()) for train, test in folds])
    assert report["majority_class_accuracy"] == pytest.approx(majority)
    assert 0.2 < majority < 0.5  # iris: three balanced classes
    repro = report["reproducibility"]
    assert repro["command"] == "rntk evaluate iris" and len(repro["split_sha256"]) == 64
    assert repro["started_at"] <= repro["finished_at"] and repro["rntk_version"]
    assert repro["splits_file"] == "splits.npz"
    with np.load(out / "splits.npz") as saved:
        assert np.array_equal(saved["y"], y) and np.array_equal(saved["sample_index"], np.arange(len(y)))
        for name, indices in iris.splits.parts():
            assert np.array_equal(saved[name], indices), name
        assert saved["x_scale"] == pytest.approx(report["x_scale"])
        assert np.allclose(saved["X"], iris.X / report["x_scale"])


def test_each_gram_file_is_reproduced_by_gram(iris_run, iris):
    report, out = iris_run
    files = sorted(path.name for path in (out / "gram").iterdir())
    assert files == sorted(Path(entry["file"]).name for entry in report["grams"])
    assert len(files) == len({json.dumps([e["params"], e.get("order")]) for e in report["grams"]})
    chosen = {json.dumps([c["params"], c.get("order")]) for family, outcome in report["families"].items()
              if family != "RF" for c in outcome["chosen"]}
    assert chosen == {json.dumps([e["params"], e.get("order")]) for e in report["grams"]}
    assert any("order" in entry for entry in report["grams"]) or all(
        "order" not in c for c in report["families"]["RNN-P"]["chosen"])
    for entry in report["grams"]:
        assert set(entry["params"]) == {"kind", "pool", "layers", "direction", "sigma_w", "sigma_u",
                                        "sigma_b", "sigma_v"}
        X = iris.X / entry["x_scale"]
        if "order" in entry:
            X = X[:, entry["order"]]
        expected = rntk_core.gram(X, **entry["params"])
        saved = np.load(out / entry["file"])
        assert np.linalg.norm(saved - expected) <= 1e-5 * np.linalg.norm(expected), entry["file"]


def test_avg_families_use_the_mean_over_steps(iris_run, iris):
    report, out = iris_run
    entry = next(e for e in report["grams"] if e["params"]["pool"] == "avg")
    assert entry["params"]["sigma_v"] == pytest.approx(1 / np.sqrt(iris.n_steps))
    summed = rntk_core.gram(iris.X / entry["x_scale"], **{**entry["params"], "sigma_v": 1.0})
    np.testing.assert_allclose(np.load(out / entry["file"]), summed / iris.n_steps, rtol=1e-5)


def test_one_gram_grid_call_per_sigma_w_and_order(monkeypatch, iris):
    calls = []
    real = kernels.gram_grid

    def counting(X, **kwargs):
        calls.append((kwargs["sigma_w"], tuple(X[0, :, 0])))
        return real(X, **kwargs)

    monkeypatch.setattr(kernels, "gram_grid", counting)
    config = EvaluationConfig(families=["RNN", "RNN-P", "BI-RNN-AVG"], sigma_w=[1.0, 1.5], sigma_u=[0.5],
                              sigma_b=[0.1], layers=[1], C=[1.0], rnnp_orders=[[3, 2, 0, 1]])
    report = evaluation.evaluate_dataset(iris, config, families=[*config.families, "RNN-P-CK"])
    assert len(calls) == 4 and len(set(calls)) == 4  # {1.0, 1.5} x {as given, the user order}
    assert {entry["params"]["sigma_w"] for entry in report["configurations"]} == {1.0, 1.5}


def test_non_converged_fits_are_recorded(iris):
    # max_iter is libsvm's limit; the automatic solvers would refit such fits with JAX.
    config = EvaluationConfig(families=["RNN"], sigma_u=[0.5], sigma_b=[0.1], layers=[1], C=[1e6],
                              solver="libsvm")
    report = evaluation.evaluate_dataset(iris, config, max_iter=1)
    assert report["non_converged"], "max_iter=1 must stop the solver early"
    entry = report["non_converged"][0]
    assert entry["family"] == "RNN" and entry["C"] == 1e6 and entry["split"] in {"validation", "fold0"}
    assert {"kind", "pool", "layers"} <= set(entry["params"])


def test_stratified_protocol_on_a_csv_is_seeded(tmp_path):
    rng = np.random.default_rng(3)
    y = np.repeat([0, 1], 30)
    X = rng.standard_normal((60, 5)) + 3 * y[:, None]
    rows = ["f1,f2,f3,f4,f5,label"] + [",".join(map(str, [*x, "ab"[label]])) for x, label in zip(X, y)]
    (tmp_path / "toy.csv").write_text("\n".join(rows) + "\n")
    config = EvaluationConfig(families=["RNN", "RBF"], seed=5, sigma_u=[0.5], layers=[1])
    first = evaluation.evaluate_path(tmp_path / "toy.csv", config)
    again = evaluation.evaluate_path(tmp_path / "toy.csv", config)
    assert first["protocol"] == "stratified" and first["dataset"]["format"] == "csv"
    assert first["families"] == again["families"]
    assert first["families"]["RNN"]["test_accuracy"] > 0.9


def test_mlp_and_poly_baselines(iris):
    config = EvaluationConfig(families=["POLY", "MLP"], mlp_layers=[1, 2], C=[1.0, 100.0], mlp_C=[1.0, 100.0])
    report = evaluation.evaluate_dataset(iris, config)
    assert report["families"]["POLY"]["test_accuracy"] > 0.85
    assert report["families"]["MLP"]["test_accuracy"] > 0.85
    mlp = [c["params"] for c in report["configurations"] if c["family"] == "MLP"]
    assert {(p["kind"], p["depth"], p["fixed_layers"]) for p in mlp} == {
        ("ck", 1, 0), ("ntk", 1, 0), ("ck", 2, 0), ("ntk", 2, 0), ("ntk", 2, 1)}


def test_mlp_without_its_module_is_a_clear_error(monkeypatch, iris):
    monkeypatch.setitem(sys.modules, "rntk_core.mlp", None)
    with pytest.raises(ValueError, match="rntk_core.mlp"):
        evaluation.evaluate_dataset(iris, EvaluationConfig(families=["MLP"]))


def test_unknown_family_is_rejected(iris):
    with pytest.raises(ValueError, match="unknown families 'RNN-Q'"):
        evaluation.evaluate_dataset(iris, EvaluationConfig(), families=["RNN-Q"])


# --------------------------------------------------------------------------- the CLI


def test_cli_evaluate_iris_end_to_end(tmp_path):
    out = tmp_path / "out"
    run = subprocess.run(RNTK + ["evaluate", str(UCI / "iris"), "--out", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "validation fits" in run.stderr and "test folds" in run.stderr  # the progress bars
    report = json.loads((out / "report.json").read_text())
    assert REPORT_KEYS <= set(report)
    assert list(report["families"]) == ["RNN", "RNN-P", "BI-RNN", "RNN-AVG", "BI-RNN-AVG", "RBF"]
    assert report["families"]["BI-RNN"]["test_accuracy"] == pytest.approx(0.9865, abs=1e-4)
    assert all((out / entry["file"]).is_file() for entry in report["grams"])
    assert (out / "report.csv").read_text().count("\n") == len(report["configurations"]) + 1
    assert (out / "report.html").is_file()


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path):
    run = subprocess.run(RNTK + ["evaluate", str(tmp_path / "missing"), "--out", str(tmp_path / "o")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [f"rntk evaluate: error: {tmp_path / 'missing'}: no such file or folder"]


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["evaluate", str(UCI / "iris"), "--out", "{tmp}/o", "--config", "{tmp}/bad.json"], "C[0]"),
        (["evaluate", "{tmp}/toy.txt", "--out", "{tmp}/o"], "unsupported dataset type"),
        (["bench-uci", str(UCI), "--datasets", "no-such-set", "--out", "{tmp}/r.json"], "no-such-set"),
        (["bench-uci", str(UCI), "--datasets", "iris", "--families", "RNN-Q", "--out", "{tmp}/r.json"], "RNN-Q"),
    ],
)
def test_cli_errors_in_process(tmp_path, capsys, arguments, message):
    (tmp_path / "bad.json").write_text('{"C": [-1]}')
    (tmp_path / "toy.txt").write_text("1,2\n")
    assert cli.main([a.replace("{tmp}", str(tmp_path)) for a in arguments]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err and err.startswith("rntk ")


def test_cli_bench_uci(tmp_path):
    out = tmp_path / "results.json"
    run = subprocess.run(RNTK + ["bench-uci", str(UCI), "--datasets", "iris", "seeds", "--families",
                                 "RNN", "RNN-P-CK", "--out", str(out), "--quiet"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "Friedman rank" in run.stdout and "RNN-P-CK" in run.stdout
    results = json.loads(out.read_text())
    iris = results["datasets"]["iris"]
    assert (iris["N"], iris["T"]) == (150, 4) and set(iris["seconds"]) == {"kernels", "svm"}
    assert set(iris["families"]) == {"RNN", "RNN-P-CK"}
    assert iris["families"]["RNN"]["test_accuracy"] == pytest.approx(0.9797, abs=1e-4)
    assert {"test_accuracy", "validation_accuracy", "chosen"} <= set(iris["families"]["RNN-P-CK"])
    assert set(results["summary"]["RNN"]) == {"mean_accuracy", "p95", "pma", "friedman_rank"}
    assert results["complete"] is True


def test_bench_uci_keeps_finished_datasets_when_stopped(tmp_path, monkeypatch):
    from rntk_core.evaluation import uci_bench

    finish = uci_bench.bench_dataset

    def stop_at_seeds(path, *args, **kwargs):
        if path.name == "seeds":
            raise KeyboardInterrupt  # the user's Ctrl-C, half way through
        return finish(path, *args, **kwargs)

    monkeypatch.setattr(uci_bench, "bench_dataset", stop_at_seeds)
    out = tmp_path / "results.json"
    config = EvaluationConfig(families=["RNN"], sigma_u=[0.5], sigma_b=[0.1], layers=[1], C=[1.0])
    with pytest.raises(KeyboardInterrupt):
        uci_bench.run_bench(UCI, out, config, names=["iris", "seeds"], progress=False)
    results = json.loads(out.read_text())
    assert list(results["datasets"]) == ["iris"] and results["complete"] is False
    assert results["summary"]["RNN"]["mean_accuracy"] == pytest.approx(
        results["datasets"]["iris"]["families"]["RNN"]["test_accuracy"], abs=1e-12)


def test_bench_uci_resume_runs_only_the_datasets_not_yet_done(tmp_path, monkeypatch):
    from rntk_core.evaluation import uci_bench

    out = tmp_path / "results.json"
    config = EvaluationConfig(families=["RNN"], sigma_u=[0.5], sigma_b=[0.1], layers=[1], C=[1.0])
    uci_bench.run_bench(UCI, out, config, names=["iris"], progress=False)
    first = json.loads(out.read_text())
    ran = []
    finish = uci_bench.bench_dataset
    monkeypatch.setattr(uci_bench, "bench_dataset", lambda path, *a, **k: ran.append(path.name) or finish(path, *a, **k))
    results = uci_bench.run_bench(UCI, out, config, names=["iris", "seeds"], progress=False, resume=True)
    assert ran == ["seeds"] and results["complete"] is True
    assert results["datasets"]["iris"] == first["datasets"]["iris"]
    assert results["seconds"] > first["seconds"] and set(results["datasets"]) == {"iris", "seeds"}
    with pytest.raises(ValueError, match="families RNN, this run asks for BI-RNN"):
        uci_bench.run_bench(UCI, out, config, names=["iris"], families=["BI-RNN"], progress=False, resume=True)


def test_float64_kernels_are_recorded_in_params(iris, tmp_path):
    config = EvaluationConfig(families=["BI-RNN"], sigma_u=[0.5], sigma_b=[0.1], layers=[1], C=[1.0, 100.0])
    report = evaluation.evaluate_dataset(iris, config, out_dir=tmp_path, dtype="float64")
    entry = report["grams"][0]
    assert entry["params"]["dtype"] == "float64"
    expected = rntk_core.gram(iris.X / entry["x_scale"], **entry["params"])
    np.testing.assert_allclose(np.load(tmp_path / entry["file"]), expected, rtol=1e-12)


def test_standardize_grams_are_reproduced_from_splits(iris, tmp_path):
    config = EvaluationConfig(families=["RNN"], normalize="standardize", kinds=["ntk"], sigma_u=[0.5],
                              sigma_b=[0.1], layers=[1], C=[1.0])
    report = evaluation.evaluate_dataset(iris, config, out_dir=tmp_path)
    entry = report["grams"][0]
    assert "standardize" in entry["inputs"]
    with np.load(tmp_path / "splits.npz") as saved:
        X = saved["X"]
    assert np.allclose(X[:, :, 0].std(axis=0), X[:, :, 0].std(axis=0)[0])  # every feature one scale
    K = rntk_core.gram(X, **entry["params"])
    assert np.allclose(K, np.load(tmp_path / entry["file"]), rtol=1e-5, atol=1e-6)


def test_uci_results_page_and_csv_from_a_partial_bench(tmp_path):
    """benchmarks.uci_results: docs/results.csv has a dataset column and one column per family;
    results.md puts this run's Table I beside the paper's and says when the run is partial."""
    from benchmarks.uci_results import main

    entry = lambda accuracies: {"N": 10, "T": 3, "families": {f: {"test_accuracy": a} for f, a in accuracies.items()}}
    results = {"families": ["RNN", "RBF"], "complete": False, "seconds": 7200.0, "errors": {},
               "datasets": {"a": entry({"RNN": 0.9, "RBF": 0.8}), "b": entry({"RNN": 0.5, "RBF": 0.6})}}
    source = tmp_path / "bench.json"
    source.write_text(json.dumps(results))
    main([str(source), "--out", str(tmp_path / "docs")])
    rows = (tmp_path / "docs" / "results.csv").read_text().splitlines()
    assert rows == ["dataset,N,T,RNN,RBF", "a,10,3,90.00,80.00", "b,10,3,50.00,60.00"]
    page = (tmp_path / "docs" / "results.md").read_text()
    assert "partial: 2 of 90 datasets" in page and "| Acc. mean ↑ | 70.00% | 70.00% |" in page
    assert "| Friedman rank ↓ | 1.50 | 1.50 |" in page and "82.34%" in page  # the paper's RNN-P
    assert "RNN -11.73, RBF -11.03" in page  # this run's mean minus the paper's, per family
    assert "Partial runs" in page and "so far" in page


def test_uci_results_page_of_a_complete_bench_compares_with_the_reference_table(tmp_path):
    """A complete run is labelled complete, and the twelve datasets of PROTOCOL-uci.md's
    reference table are compared with this run's accuracies per family."""
    from benchmarks.uci_results import main, reference_accuracies

    reference = reference_accuracies()
    assert len(reference) == 12 and reference["iris"]["RNN"] == 97.97 and reference["yeast"]["RBF"] == 60.18
    datasets = {f"set{k}": {"N": 10, "T": 3, "families": {"RNN": {"test_accuracy": 0.5}}} for k in range(90)}
    datasets["iris"] = {"N": 150, "T": 4, "families": {"RNN": {"test_accuracy": 0.9797}}}
    datasets["wine"] = {"N": 178, "T": 13, "families": {"RNN": {"test_accuracy": 0.9686}}}  # reference 98.86
    del datasets["set0"], datasets["set1"]
    source = tmp_path / "bench.json"
    source.write_text(json.dumps({"families": ["RNN"], "complete": True, "seconds": 3600.0, "errors": {},
                                  "datasets": datasets}))
    main([str(source), "--out", str(tmp_path / "docs")])
    page = (tmp_path / "docs" / "results.md").read_text()
    assert "complete: all 90 datasets ran" in page and "Partial runs" not in page and "so far" not in page
    assert "| RNN | 2 | 1.00 | wine (-2.00) |" in page
