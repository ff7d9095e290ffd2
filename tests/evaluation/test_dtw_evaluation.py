"""1NN-DTW in an evaluation: the C path, unequal lengths under a window, and the report's note."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rntk_core.evaluation.config import parse_config
from rntk_core.evaluation.datasets import load_dataset
from rntk_core.evaluation.evaluate import evaluate_dataset
from rntk_core.evaluation.nearest import dtw_distances, nearest_neighbour_predict
from tests.helpers import TS_DATA


def test_a_narrow_window_on_unequal_lengths_is_widened_and_noted(tmp_path: Path) -> None:
    dataset = load_dataset(TS_DATA / "PickupGestureWiimoteZ.zip")  # lengths 29..361
    config = parse_config({"families": ["1NN-DTW"], "dtw_window": 0.05, "cv_folds": 2})
    report = evaluate_dataset(dataset, config, out_dir=tmp_path)
    params = report["families"]["1NN-DTW"]["chosen"][0]["params"]
    assert params["window"] == 0.05
    assert "widened by their length difference" in params["dtw_note"]
    assert "exceeds the window's half-width" in params["dtw_note"]
    # Every test series has a finite nearest neighbour, so the accuracy is a real one.
    train, test = dataset.splits.train, dataset.splits.folds[0][1]
    distances = dtw_distances(dataset.X[test], dataset.X[train], dataset.lengths[test], dataset.lengths[train],
                              window=0.05)
    assert np.all(np.isfinite(distances))
    predicted = nearest_neighbour_predict(distances, dataset.y[train])
    assert report["families"]["1NN-DTW"]["test_accuracy"] == np.mean(predicted == dataset.y[test])
