"""Fixtures the evaluation tests share."""

from __future__ import annotations

import pytest

from rntk_core.evaluation.datasets import Dataset, load_dataset
from tests.helpers import UCI


@pytest.fixture(scope="module")
def iris() -> Dataset:
    """UCI iris (N = 150, T = 4, 3 classes, predefined splits), loaded once per test module."""
    return load_dataset(UCI / "iris")
