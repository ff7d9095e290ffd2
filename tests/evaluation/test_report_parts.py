"""The report's parts beside the accuracies: grid edges, per-class accuracy and confusion
matrices, seconds per family, the spread over the folds that chose and tested, splits.npz."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rntk_core.evaluation.config import parse_config
from rntk_core.evaluation.datasets import load_dataset
from rntk_core.evaluation.evaluate import evaluate_dataset
from rntk_core.evaluation.report.diagnostics import confusion, extend_grid, grid_edges, per_class_accuracy
from rntk_core.evaluation.report.model import Report
from rntk_core.evaluation.report.timing import family_seconds
from tests.helpers import UCI

C_GRID = [0.01, 1.0, 100.0]


def _rows(family: str, grid: list[dict], Cs=C_GRID) -> list[dict]:
    return [{"family": family, "params": params, "C": C} for params in grid for C in Cs]


def test_a_chosen_c_at_the_grid_max_is_flagged_with_the_next_values():
    entries = _rows("RNN", [{"sigma_u": 0.25, "layers": 1}, {"sigma_u": 0.5, "layers": 1}])
    chosen = [{"params": {"sigma_u": 0.25, "layers": 1}, "C": 100.0}]
    edges = grid_edges(entries, chosen)
    # sigma_u = 0.25 is the grid's min; layers has a single value; C = 100 the max
    assert edges == [
        {"param": "sigma_u", "value": 0.25, "edge": "min", "grid": [0.25, 0.5], "suggest": [0.125, 0.0625]},
        {"param": "C", "value": 100.0, "edge": "max", "grid": C_GRID, "suggest": [10000.0, 1000000.0]},
    ]
    inside = [{"params": {"sigma_u": 0.5, "layers": 1}, "C": 1.0}]
    assert [edge["param"] for edge in grid_edges(entries, inside)] == ["sigma_u"]  # 0.5 is the max


def test_extensions_follow_the_grids_own_spacing_and_range():
    assert extend_grid([2.0**k for k in range(-5, 10, 2)], "max", param="gamma") == [2.0**11, 2.0**13]
    assert extend_grid([0.001, 0.1], "min", param="sigma_b") == [1e-5, 1e-7]
    assert extend_grid([1, 2, 3], "max", param="degree") == [4, 5]
    assert extend_grid([1, 2], "max", param="layers") == [3, 4]
    assert extend_grid([1, 2], "min", param="layers") == []  # no depth below 1
    assert extend_grid([0.0, 0.1], "min", param="sigma_b") == []  # sigma_b >= 0
    assert extend_grid([0.01, 1.0, 100.0, 1e4, 1e6], "max", param="C") == [1e8, 1e10]


def test_an_edge_the_range_cannot_pass_is_not_flagged_and_single_configurations_never_are():
    entries = _rows("RNN", [{"layers": 1}, {"layers": 2}], Cs=[1.0])
    assert grid_edges(entries, [{"params": {"layers": 1}, "C": 1.0}]) == []
    assert grid_edges([{"family": "1NN-DTW", "params": {"distance": "dtw", "window": "full"}}],
                      [{"params": {"distance": "dtw", "window": "full"}}]) == []


def test_confusion_matrix_sums_folds_and_per_class_accuracy_is_recall():
    matrix = confusion([np.array([0, 0, 1]), np.array([1, 2])], [np.array([0, 1, 1]), np.array([1, 0])], 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert per_class_accuracy(matrix, ["a", "b", "c"]) == {"a": 0.5, "b": 1.0, "c": 0.0}
    assert per_class_accuracy(np.zeros((2, 2), int), ["a", "b"]) == {"a": None, "b": None}


def test_family_seconds_divide_each_phase_and_split_shared_work():
    marks = [0.0, 3.0, 4.0, 4.5]  # one grid source (3 s), then RBF (1 s), then 1NN-DTW (0.5 s)
    fits = {("validation", "k"): 2.0, ("validation", "rbf"): 2.0, ("fold0", "k"): 1.0}
    users = {"validation": {"k": ["RNN", "RNN-P"], "rbf": ["RBF"]}, "test": {"k": ["RNN-P"]}}
    seconds = family_seconds(["RNN", "RNN-P", "RBF", "1NN-DTW"], ["RNN", "RNN-P"],
                             {"kernels": 4.5, "validation": 8.0, "test": 2.0}, marks, fits, users, ["validation"])
    assert seconds["RNN"] == {"kernels": 1.5, "validation": 2.0, "test": 0.0, "total": 3.5}
    assert seconds["RNN-P"] == {"kernels": 1.5, "validation": 2.0, "test": 2.0, "total": 5.5}
    assert seconds["RBF"]["kernels"] == 1.0 and seconds["RBF"]["validation"] == 4.0
    assert seconds["1NN-DTW"] == {"kernels": 0.5, "validation": 0.0, "test": 0.0, "total": 0.5}
    for phase, wall in (("kernels", 4.5), ("validation", 8.0), ("test", 2.0)):
        assert sum(entry[phase] for entry in seconds.values()) == pytest.approx(wall)


@pytest.fixture(scope="module")
def iris_small(tmp_path_factory):
    """The UCI protocol (one validation split, 4 test folds) on a grid whose C max wins."""
    out = tmp_path_factory.mktemp("iris")
    dataset = load_dataset(UCI / "iris")
    config = parse_config({"families": ["RNN", "RBF"], "kinds": ["ntk"], "sigma_u": [0.5], "sigma_b": [0.1],
                           "layers": [1], "C": [0.01, 1.0], "rbf_gamma": [0.5, 2.0]})
    return dataset, evaluate_dataset(dataset, config, out_dir=out), out


def test_uci_report_spreads_over_test_folds_and_flags_the_grid_edge(iris_small):
    dataset, report, out = iris_small
    assert report["testing"]["method"] == "folds" and report["testing"]["folds"] == 4
    rnn = report["families"]["RNN"]
    assert rnn["chosen"][0]["C"] == 1.0
    assert {"param": "C", "value": 1.0, "edge": "max", "grid": [0.01, 1.0], "suggest": [100.0, 10000.0]} \
        in rnn["grid_edges"]
    for outcome in report["families"].values():
        assert outcome["test_std"] == pytest.approx(np.std(outcome["fold_accuracies"]))
        assert outcome["selection_std"] is None and len(outcome["selection_fold_accuracies"]) == 1
        assert outcome["selection_fold_accuracies"][0] == pytest.approx(outcome["validation_accuracy"])
    page = (out / "report.html").read_text()
    assert 'id="grid-edges"' in page and "RNN: C = 1 is the largest value of its grid (0.01, 1)" in page
    assert "± std over 4 test folds" in page and "CV folds" not in page


def test_confusion_matrices_agree_with_the_test_accuracy(iris_small):
    dataset, report, _ = iris_small
    folds = dataset.splits.folds
    for family, outcome in report["families"].items():
        matrix = np.array(outcome["confusion_matrix"])
        assert matrix.shape == (3, 3) and matrix.sum() == sum(len(test) for _, test in folds)
        correct = [accuracy * len(test) for accuracy, (_, test) in zip(outcome["fold_accuracies"], folds)]
        assert np.trace(matrix) == pytest.approx(sum(correct))
        # every fold here has 37 test rows, so the pooled accuracy is the mean over folds
        assert np.trace(matrix) / matrix.sum() == pytest.approx(outcome["test_accuracy"])
        truth = np.bincount(np.concatenate([dataset.y[test] for _, test in folds]), minlength=3)
        assert matrix.sum(axis=1).tolist() == truth.tolist()
        recall = {label: matrix[i, i] / truth[i] for i, label in enumerate(report["dataset"]["classes"])}
        assert outcome["per_class_accuracy"] == pytest.approx(recall)


def test_seconds_per_family_add_up_to_the_phases(iris_small):
    _, report, out = iris_small
    assert "evenly" in report["seconds_attribution"]
    assert set(report["family_seconds"]) == set(report["families"])
    for phase in ("kernels", "validation", "test"):
        total = sum(seconds[phase] for seconds in report["family_seconds"].values())
        assert total == pytest.approx(report["timings"][phase], abs=1e-3)
    for seconds in report["family_seconds"].values():
        assert seconds["total"] == pytest.approx(seconds["kernels"] + seconds["validation"] + seconds["test"],
                                                 abs=1e-3)
    saved = Report.model_validate(json.loads((out / "report.json").read_text()))
    assert saved.family_seconds["RNN"]["total"] >= 0 and saved.families["RNN"].grid_edges[0].param == "C"
    page = (out / "report.html").read_text()
    assert 'id="seconds-attribution"' in page and '<td class="num seconds">' in page


def test_uci_splits_npz_names_the_holdout_and_the_test_folds(iris_small):
    dataset, report, out = iris_small
    with np.load(out / "splits.npz") as saved:
        keys = set(saved.files)
        np.testing.assert_array_equal(saved["holdout_fit"], dataset.splits.train)
        np.testing.assert_array_equal(saved["holdout_score"], dataset.splits.validation)
        np.testing.assert_array_equal(saved["train"], saved["holdout_fit"])  # the .npz dataset names, kept
        np.testing.assert_array_equal(saved["validation"], saved["holdout_score"])
        for k, (train, test) in enumerate(dataset.splits.folds):
            np.testing.assert_array_equal(saved[f"fold{k}_train"], train)
            np.testing.assert_array_equal(saved[f"fold{k}_test"], test)
    assert not any(key.startswith("cv") for key in keys)
    documented = {entry["key"] for entry in report["files"] if entry["file"] == "splits.npz"}
    assert documented == keys
