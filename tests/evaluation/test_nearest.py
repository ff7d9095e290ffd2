"""1-NN baselines: the archive's published accuracies and a brute-force DTW."""

from __future__ import annotations

import numpy as np
import pytest

from rntk_core.evaluation.datasets.ts import parse_ts
from rntk_core.evaluation.nearest import (
    dtw_distances,
    euclidean_distances,
    nearest_neighbour_predict,
    resample,
)
from tests.helpers import archive_ts_lines


def split(name: str):
    return [parse_ts(archive_ts_lines(name, part), part) for part in ("TRAIN", "TEST")]


# Correct test predictions of the UCR archive's published 1-NN accuracies (ED; DTW, full window).
@pytest.mark.parametrize(
    "name, ed_correct, dtw_correct, n_test",
    [
        ("GunPoint", 137, 136, 150),          # 0.9133, 0.9067
        ("ItalyPowerDemand", 983, 978, 1029),  # 0.9553, 0.9504
    ],
)
def test_published_1nn_accuracies(name: str, ed_correct: int, dtw_correct: int, n_test: int) -> None:
    train, test = split(name)
    assert len(test.labels) == n_test
    ed = nearest_neighbour_predict(euclidean_distances(test.values, train.values), train.labels)
    assert int(np.sum(ed == test.labels)) == ed_correct
    dtw = nearest_neighbour_predict(dtw_distances(test.values, train.values), train.labels)
    assert int(np.sum(dtw == test.labels)) == dtw_correct


def test_arrowhead_published_1nn_ed() -> None:
    train, test = split("ArrowHead")
    ed = nearest_neighbour_predict(euclidean_distances(test.values, train.values), train.labels)
    assert int(np.sum(ed == test.labels)) == 140  # 0.8000


def brute_dtw(x: np.ndarray, y: np.ndarray, band: float | None = None) -> float:
    cost = np.full((len(x) + 1, len(y) + 1), np.inf)
    cost[0, 0] = 0.0
    width = np.inf if band is None else round(band * max(len(x), len(y)))
    for i in range(len(x)):
        for j in range(len(y)):
            if abs(i - j) <= width:
                cost[i + 1, j + 1] = np.sum((x[i] - y[j]) ** 2) + min(
                    cost[i, j], cost[i, j + 1], cost[i + 1, j]
                )
    return cost[-1, -1]


@pytest.mark.parametrize("window", [None, 0.3])
def test_dtw_matches_the_textbook_recursion_on_unequal_lengths(window: float | None) -> None:
    rng = np.random.default_rng(0)
    steps, features = 9, 2
    a_lengths, b_lengths = np.array([9, 5, 3, 7]), np.array([2, 9, 6])
    a = rng.standard_normal((4, steps, features))
    b = rng.standard_normal((3, steps, features))
    for values, lengths in ((a, a_lengths), (b, b_lengths)):
        for i, length in enumerate(lengths):
            values[i, : steps - length] = 0.0  # front padding
    got = dtw_distances(a, b, a_lengths, b_lengths, window=window)
    expected = [
        [brute_dtw(a[i, steps - a_lengths[i]:], b[j, steps - b_lengths[j]:], window) for j in range(3)]
        for i in range(4)
    ]
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_dtw_with_a_zero_window_is_the_euclidean_distance() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((5, 12, 3)), rng.standard_normal((4, 12, 3))
    np.testing.assert_allclose(dtw_distances(a, b, window=0.0), euclidean_distances(a, b), rtol=1e-12)


def test_resample_interpolates_each_valid_part_linearly() -> None:
    values = np.zeros((2, 5, 1))
    values[0, :, 0] = [0, 1, 2, 3, 4]
    values[1, 3:, 0] = [10, 20]  # length 2, front-padded
    out = resample(values, np.array([5, 2]), 9)
    np.testing.assert_allclose(out[0, :, 0], np.linspace(0, 4, 9))
    np.testing.assert_allclose(out[1, :, 0], np.linspace(10, 20, 9))


def test_ties_go_to_the_first_training_series() -> None:
    distances = np.array([[1.0, 0.5, 0.5], [2.0, 2.0, 3.0]])
    assert list(nearest_neighbour_predict(distances, np.array(["a", "b", "c"]))) == ["b", "a"]
