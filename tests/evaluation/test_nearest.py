"""1-NN baselines: the archive's published accuracies and a brute-force DTW."""

from __future__ import annotations

import numpy as np
import pytest

from rntk_core.evaluation.datasets.ts import parse_ts
from rntk_core.evaluation.nearest import (
    dtw_band_note,
    dtw_distances,
    dtw_distances_to,
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


@pytest.mark.parametrize("backend", ["c", "jax"])
def test_both_dtw_backends_give_the_published_accuracies_and_the_same_distances(backend: str) -> None:
    train, test = split("GunPoint")
    distances = dtw_distances(test.values, train.values, backend=backend)
    dtw = nearest_neighbour_predict(distances, train.labels)
    assert int(np.sum(dtw == test.labels)) == 136
    if backend == "c":
        np.testing.assert_allclose(distances, dtw_distances(test.values, train.values, backend="jax"), rtol=1e-13)


def test_arrowhead_published_1nn_ed() -> None:
    train, test = split("ArrowHead")
    ed = nearest_neighbour_predict(euclidean_distances(test.values, train.values), train.labels)
    assert int(np.sum(ed == test.labels)) == 140  # 0.8000


def brute_dtw(x: np.ndarray, y: np.ndarray, band: float | None = None) -> float:
    """The textbook recursion over the band of ``dtw_distances``: half-width
    round(band * longer), widened by the length difference towards the longer series' end."""
    cost = np.full((len(x) + 1, len(y) + 1), np.inf)
    cost[0, 0] = 0.0
    width = np.inf if band is None else round(band * max(len(x), len(y)))
    low, high = width + max(0, len(x) - len(y)), width + max(0, len(y) - len(x))
    for i in range(len(x)):
        for j in range(len(y)):
            if -low <= j - i <= high:
                cost[i + 1, j + 1] = np.sum((x[i] - y[j]) ** 2) + min(
                    cost[i, j], cost[i, j + 1], cost[i + 1, j]
                )
    return cost[-1, -1]


def unequal_series(seed: int, lengths: list[int], steps: int = 9, features: int = 2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    values = rng.standard_normal((len(lengths), steps, features))
    for i, length in enumerate(lengths):
        values[i, : steps - length] = 0.0  # front padding
    return values


@pytest.mark.parametrize("backend", ["c", "jax"])
@pytest.mark.parametrize("window", [None, 0.3, 0.0, 0.1])
def test_dtw_matches_the_textbook_recursion_on_unequal_lengths(window: float | None, backend: str) -> None:
    steps = 9
    a_lengths, b_lengths = np.array([9, 5, 3, 7]), np.array([2, 9, 6])
    a, b = unequal_series(0, list(a_lengths)), unequal_series(1, list(b_lengths))
    got = dtw_distances(a, b, a_lengths, b_lengths, window=window, backend=backend)
    expected = [
        [brute_dtw(a[i, steps - a_lengths[i]:], b[j, steps - b_lengths[j]:], window) for j in range(3)]
        for i in range(4)
    ]
    assert np.all(np.isfinite(expected))  # the widened band always joins both ends
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


@pytest.mark.parametrize("features", [1, 3])
@pytest.mark.parametrize("window", [None, 0.05, 0.2])
def test_c_and_jax_agree_on_many_lengths_in_small_chunks(monkeypatch, window, features) -> None:
    # Many distinct lengths give many half-width runs; tiny chunks exercise the row blocks.
    from rntk_core.evaluation import nearest

    monkeypatch.setattr(nearest, "_C_CHUNK_CELLS", 2_000)
    rng = np.random.default_rng(2)
    steps = 40
    a_lengths, b_lengths = rng.integers(3, steps + 1, 13), rng.integers(3, steps + 1, 11)
    a = unequal_series(3, list(a_lengths), steps, features)
    b = unequal_series(4, list(b_lengths), steps, features)
    got = dtw_distances(a, b, a_lengths, b_lengths, window=window, backend="c")
    expected = dtw_distances(a, b, a_lengths, b_lengths, window=window, backend="jax")
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    checks = []
    columns = np.array([7, 2, 2, 9, 0, 11, 4])  # a subset with a repeat, out of order
    X = unequal_series(5, list(rng.integers(3, steps + 1, 12)), steps, features)
    lengths = np.count_nonzero(np.any(X != 0.0, axis=2), axis=1)
    square = dtw_distances_to(X, lengths, columns, window=window, check=lambda: checks.append(1))
    assert len(checks) > 1
    np.testing.assert_allclose(square, dtw_distances(X, X[columns], lengths, lengths[columns], window=window,
                                                     backend="jax"), rtol=1e-12)
    assert np.all(square[columns, np.arange(len(columns))] == 0.0)


def test_a_window_narrower_than_the_length_difference_is_widened_and_noted() -> None:
    a, b = unequal_series(6, [30], 30, 1), unequal_series(7, [10, 28], 30, 1)
    lengths = np.array([30, 10, 28])
    got = dtw_distances(a, b, lengths[:1], lengths[1:], window=0.1)  # half-width 3 < 20
    assert np.all(np.isfinite(got))
    note = dtw_band_note(lengths, None, 0.1)
    assert "widened by their length difference (up to 20 steps)" in note
    assert "for 4 of them the difference exceeds the window's half-width" in note  # (30,10), (10,30) ...
    assert dtw_band_note(lengths, None, None) is None  # the full window joins the ends anyway
    assert dtw_band_note(np.array([5, 5, 5]), None, 0.1) is None


def test_a_test_series_without_a_finite_distance_is_an_error() -> None:
    distances = np.array([[1.0, 2.0], [np.inf, np.nan], [np.nan, 3.0]])
    with pytest.raises(ValueError, match=r"1 of 3 test series \(rows 1\) have no finite distance"):
        nearest_neighbour_predict(distances, np.array(["a", "b"]))
    assert list(nearest_neighbour_predict(distances[[0, 2]], np.array(["a", "b"]))) == ["a", "b"]


def test_without_the_c_library_dtw_falls_back_to_jax_with_a_warning(monkeypatch, caplog) -> None:
    from rntk_core.evaluation import nearest

    assert nearest.dtw_backend("auto") == "c" and nearest.c_dtw_parallel()  # this machine: C, OpenMP
    monkeypatch.setattr(nearest, "_warned_missing_c", False)
    import dtaidistance.dtw

    monkeypatch.setattr(dtaidistance.dtw, "dtw_cc", None)
    with caplog.at_level("WARNING", logger="rntk_core.evaluation.nearest"):
        assert nearest.dtw_backend("auto") == "jax"
    assert "using the JAX DTW" in caplog.text
    a = unequal_series(8, [9, 4], 9, 1)
    np.testing.assert_allclose(dtw_distances(a, a, [9, 4], [9, 4]), [[0.0, brute_dtw(a[0], a[1, 5:])],
                                                                      [brute_dtw(a[1, 5:], a[0]), 0.0]], rtol=1e-12)
