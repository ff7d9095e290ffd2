"""float32 holds the spec's 1e-4 (relative Frobenius vs float64) on long real sequences.

Real UCR/UEA series are the hard case: many pairs are nearly parallel (c near 1) for
hundreds of steps, where an angle formed from a float32 covariance lost its digits and the
NTK's long sums carried the error (before the complement form in dual.py: 2e-1 on ACSF1 at
T = 1460, 3e-4 on PickupGestureWiimoteZ). Every variant of the grid is checked, with masks
for unequal lengths and on rectangular K(X, Y).
"""

from __future__ import annotations

import numpy as np

import rntk_core
from rntk_core.evaluation.datasets.ts import TsData, parse_ts
from tests.helpers import archive_ts_lines, relative_error
TOLERANCE = 1e-4
GRID = dict(sigma_u=(0.25, 1.0), sigma_b=(0.0, 0.1), layers=2)


def load(name: str, part: str) -> TsData:
    return parse_ts(archive_ts_lines(name, part), part)


def worst_error(X, Y=None, **kwargs) -> float:
    single = rntk_core.gram_grid(X, Y, dtype="float32", **GRID, **kwargs)
    double = rntk_core.gram_grid(X, Y, dtype="float64", **GRID, **kwargs)
    return max(relative_error(single[key], double[key]) for key in double)


def test_length_1460_acsf1() -> None:
    data = load("ACSF1", "TRAIN")
    picks = [int(np.flatnonzero(data.labels == label)[0]) for label in sorted(set(data.labels))][:8]
    assert data.values.shape[1] == 1460
    assert worst_error(data.values[picks]) < TOLERANCE


def test_unequal_lengths_with_masks_square_and_rectangular() -> None:
    train, test = load("PickupGestureWiimoteZ", "TRAIN"), load("PickupGestureWiimoteZ", "TEST")
    steps = max(train.values.shape[1], test.values.shape[1])

    def padded(data: TsData, rows: np.ndarray) -> np.ndarray:
        return np.pad(data.values[rows], ((0, 0), (steps - data.values.shape[1], 0), (0, 0)))

    rows = np.argsort(-train.lengths)[:24]  # the longest, up to 361
    cols = np.argsort(test.lengths)[:12]  # the shortest
    assert train.lengths[rows].max() == 361 and test.lengths[cols].min() < 50
    assert worst_error(padded(train, rows), lengths=train.lengths[rows]) < TOLERANCE
    assert worst_error(
        padded(train, rows), padded(test, cols),
        lengths=train.lengths[rows], y_lengths=test.lengths[cols],
    ) < TOLERANCE


def test_multivariate_unequal_lengths() -> None:
    data = load("JapaneseVowels", "TRAIN")
    rows = np.arange(0, 270, 10)
    assert worst_error(data.values[rows], lengths=data.lengths[rows]) < TOLERANCE


def test_nearly_parallel_raw_series() -> None:
    # GunPoint's raw first steps are near-constant, one sign, m = 1: with sigma_b = 0 every
    # pair's c stays within 1e-6 of 1 while the variances differ (the worst case measured).
    data = load("GunPoint", "TRAIN")
    assert worst_error(data.values[:24, :24]) < TOLERANCE
