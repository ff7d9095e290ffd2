""".ts data end to end: the forms it comes in, the TRAIN/TEST protocol, 1-NN families, reports."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from rntk_core.evaluation.cli import main as cli_main
from rntk_core.evaluation.config import ConfigError, parse_config
from rntk_core.evaluation.datasets import DatasetError, load_dataset
from rntk_core.evaluation.datasets.common import Splits
from rntk_core.evaluation.evaluate import evaluate_dataset, evaluate_path
from rntk_core.evaluation.protocol import selection_pairs
from rntk_core.evaluation.uci_bench import run_bench
from tests.helpers import TS_DATA


def unzip(name: str, into: Path) -> Path:
    folder = into / name
    with zipfile.ZipFile(TS_DATA / f"{name}.zip") as archive:
        archive.extractall(folder)
    return folder


def test_a_folder_and_its_zip_give_the_predefined_split(tmp_path: Path) -> None:
    zipped = load_dataset(TS_DATA / "GunPoint.zip")
    folder = load_dataset(unzip("GunPoint", tmp_path))
    for dataset in (zipped, folder):
        assert (dataset.name, dataset.format, dataset.X.shape) == ("GunPoint", "ts", (200, 150, 1))
        assert dataset.lengths is None
        assert dataset.splits.selection == "cv"
        np.testing.assert_array_equal(dataset.splits.train, np.arange(50))
        np.testing.assert_array_equal(dataset.splits.folds[0][1], np.arange(50, 200))
    np.testing.assert_array_equal(zipped.X, folder.X)


def test_a_single_ts_file_gets_the_stratified_protocol(tmp_path: Path) -> None:
    folder = unzip("BasicMotions", tmp_path)
    dataset = load_dataset(folder / "BasicMotions_TRAIN.ts")
    assert dataset.splits is None and dataset.X.shape == (40, 100, 6)
    assert list(dataset.classes) == ["Badminton", "Running", "Standing", "Walking"]


def test_unequal_lengths_travel_as_lengths_with_front_padding() -> None:
    dataset = load_dataset(TS_DATA / "PickupGestureWiimoteZ.zip")
    assert dataset.X.shape == (100, 361, 1)
    assert (dataset.lengths.min(), dataset.lengths.max()) == (29, 361)
    for i in np.flatnonzero(dataset.lengths < 361)[:5]:
        assert not np.any(dataset.X[i, : 361 - dataset.lengths[i]])


@pytest.mark.parametrize(
    "files, message",
    [
        ({"X_TRAIN.ts": "@classLabel true a b\n@data\n1,2:a\n3,4:b\n"}, "has no X_TEST.ts"),
        (
            {"X_TRAIN.ts": "@classLabel true a b\n@data\n1,2:a\n3,4:b\n",
             "X_TEST.ts": "@classLabel true a b\n@data\n1,2:a\n1,?:b\n"},
            "X_TEST.ts, line 4: missing value '?' in dimension 1, position 2",
        ),
        (
            {"X_TRAIN.ts": "@classLabel true a b c\n@data\n1,2:a\n3,4:b\n",
             "X_TEST.ts": "@classLabel true a b c\n@data\n1,2:a\n1,3:c\n"},
            "class 'c' occurs in X_TEST.ts but not in X_TRAIN.ts",
        ),
    ],
)
def test_defective_pairs_are_refused_with_the_file_and_line(tmp_path: Path, files: dict, message: str) -> None:
    archive_path = tmp_path / "x.zip"
    with zipfile.ZipFile(archive_path, "w") as archive:
        for name, text in files.items():
            archive.writestr(f"X/{name}", text)
    with pytest.raises(DatasetError, match=message.replace("?", r"\?")):
        load_dataset(archive_path)


def test_selection_folds_stay_inside_train_and_shrink_for_small_classes() -> None:
    y = np.array([0] * 6 + [1] * 3 + [0, 1] * 5)
    train, test = np.arange(9), np.arange(9, 19)
    splits = Splits(train=train, validation=test, folds=[(train, test)], selection="cv")
    selection = selection_pairs(splits, y, np.array(["cat", "dog"]), folds=5, seed=0)
    assert len(selection.pairs) == 3
    assert selection.note == "3 folds instead of 5: class dog has only 3 training members"
    scored = np.concatenate([score for _, score in selection.pairs])
    np.testing.assert_array_equal(np.sort(scored), train)  # every TRAIN row scored once, no TEST row
    for fit, score in selection.pairs:
        assert not np.intersect1d(fit, score).size and set(y[score]) == {0, 1}


def test_gunpoint_end_to_end_reproduces_the_archive_1nn_accuracies(tmp_path: Path) -> None:
    config = parse_config({"families": ["1NN-ED", "1NN-DTW"]})
    report = evaluate_path(TS_DATA / "GunPoint.zip", config, out_dir=tmp_path)
    assert report["protocol"] == "predefined"
    assert report["selection"] == {"method": "cv", "folds": 5}
    # The archive's published 1-NN accuracies: ED 0.9133 (137/150), DTW full window 0.9067.
    assert report["families"]["1NN-ED"]["test_accuracy"] == pytest.approx(137 / 150, abs=1e-12)
    assert report["families"]["1NN-DTW"]["test_accuracy"] == pytest.approx(136 / 150, abs=1e-12)
    assert report["families"]["1NN-DTW"]["chosen"] == [{"params": {"distance": "dtw", "window": "full"}}]
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["dataset"]["classes"] == ["1", "2"]


def test_a_train_test_report_spreads_over_the_cv_folds_not_test_folds(tmp_path: Path) -> None:
    """One TEST part has no spread over test folds: the spread is over the 5 CV folds inside
    TRAIN that chose the hyperparameters, and splits.npz holds those folds by name."""
    config = parse_config({"families": ["1NN-ED", "RNN"], "kinds": ["ntk"], "sigma_u": [0.5], "sigma_b": [0.1],
                           "layers": [1], "C": [0.01, 1.0]})
    report = evaluate_path(TS_DATA / "GunPoint.zip", config, out_dir=tmp_path)
    assert report["testing"]["method"] == "train_test" and report["testing"]["folds"] == 1
    for outcome in report["families"].values():
        assert outcome["test_std"] is None and len(outcome["fold_accuracies"]) == 1
        folds = outcome["selection_fold_accuracies"]
        assert len(folds) == 5 and np.mean(folds) == pytest.approx(outcome["validation_accuracy"])
        assert outcome["selection_std"] == pytest.approx(np.std(folds))
        matrix = np.array(outcome["confusion_matrix"])
        assert matrix.sum() == 150 and np.trace(matrix) / 150 == pytest.approx(outcome["test_accuracy"])
        assert set(outcome["per_class_accuracy"]) == {"1", "2"}
    assert report["families"]["1NN-ED"]["test_accuracy"] == pytest.approx(137 / 150, abs=1e-12)
    assert set(report["family_seconds"]) == {"1NN-ED", "RNN"}

    with np.load(tmp_path / "splits.npz") as saved:
        keys = set(saved.files)
        train, test = saved["fold0_train"], saved["fold0_test"]
        np.testing.assert_array_equal(train, np.arange(50))
        np.testing.assert_array_equal(test, np.arange(50, 200))
        scored = np.sort(np.concatenate([saved[f"cv{k}_score"] for k in range(5)]))
        np.testing.assert_array_equal(scored, train)  # the CV folds cover TRAIN, never TEST
        for k in range(5):
            assert not np.intersect1d(saved[f"cv{k}_fit"], saved[f"cv{k}_score"]).size
            assert np.isin(saved[f"cv{k}_fit"], train).all()
    assert {f"cv{k}_{part}" for k in range(5) for part in ("fit", "score")} <= keys
    assert "validation" not in keys  # it held the TEST rows under a selection name
    assert {entry["key"] for entry in report["files"]} == keys

    page = (tmp_path / "report.html").read_text()
    table = page[page.index('<section id="families">'):]
    table = table[:table.index("</section>")]
    assert "± std over 5 CV folds" in table and "One train/test split: there is no spread over test folds" in table
    assert "test folds</th>" not in table and "mean over the test folds" not in table
    assert 'id="validation-single-1NN-ED"' in page and 'id="validation-heatmap-1NN-ED"' not in page
    assert 'id="confusion-RNN"' in page and "<code>cv4_score</code>" in page


def test_unequal_lengths_report_the_resampling_and_use_masks(tmp_path: Path) -> None:
    dataset = load_dataset(TS_DATA / "PickupGestureWiimoteZ.zip")
    config = parse_config({"families": ["RNN", "1NN-ED"], "kinds": ["ntk"], "sigma_u": [0.5],
                           "sigma_b": [0.1], "layers": [1], "C": [1.0], "cv_folds": 2})
    report = evaluate_dataset(dataset, config, out_dir=tmp_path)
    assert report["dataset"]["lengths"] == {"min": 29, "max": 361}
    assert any("resampled to T = 361 steps by linear interpolation" in note for note in report["notes"])
    assert report["grams"][0]["lengths"].startswith("the dataset's sequence lengths")
    assert 0.0 < report["families"]["RNN"]["test_accuracy"] <= 1.0


def test_string_labels_are_kept_as_names_in_reports(tmp_path: Path) -> None:
    config = parse_config({"families": ["1NN-DTW"], "cv_folds": 2})
    report = evaluate_path(TS_DATA / "BasicMotions.zip", config, out_dir=tmp_path)
    assert report["dataset"]["classes"] == ["Badminton", "Running", "Standing", "Walking"]
    html = (tmp_path / "report.html").read_text()
    assert "Badminton" in html


def test_rntk_evaluate_and_bench_take_ts_data(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"families": ["1NN-ED"]}))
    out = tmp_path / "out"
    assert cli_main(["evaluate", str(TS_DATA / "ItalyPowerDemand.zip"), "--out", str(out),
                     "--config", str(config)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["families"]["1NN-ED"]["test_accuracy"] == pytest.approx(983 / 1029, abs=1e-12)

    root = tmp_path / "archive"
    for name in ("GunPoint", "ArrowHead"):
        unzip(name, root)
    results = run_bench(root, tmp_path / "bench.json", parse_config({"families": ["1NN-ED"]}),
                        names=["GunPoint", "ArrowHead"], progress=False)
    assert results["errors"] == {}
    accuracies = {name: entry["families"]["1NN-ED"]["test_accuracy"]
                  for name, entry in results["datasets"].items()}
    assert accuracies == pytest.approx({"GunPoint": 137 / 150, "ArrowHead": 140 / 175}, abs=1e-12)


def test_a_zero_dtw_window_is_1nn_ed_end_to_end() -> None:
    config = parse_config({"families": ["1NN-DTW"], "dtw_window": 0.0, "cv_folds": 2})
    report = evaluate_path(TS_DATA / "GunPoint.zip", config)
    assert report["families"]["1NN-DTW"]["chosen"] == [{"params": {"distance": "dtw", "window": 0.0}}]
    assert report["families"]["1NN-DTW"]["test_accuracy"] == pytest.approx(137 / 150, abs=1e-12)


@pytest.mark.parametrize("field, value", [("cv_folds", 1), ("dtw_window", 1.5), ("dtw_window", -0.1)])
def test_time_series_options_are_checked(field: str, value: float) -> None:
    with pytest.raises(ConfigError, match=field):
        parse_config({field: value})
