"""estimate_cost counts exactly what the evaluation enumerates."""

from __future__ import annotations

import pytest

from rntk_core.evaluation.config import parse_config
from rntk_core.evaluation.cost import N_FOLDS, estimate_cost
from rntk_core.evaluation.kernels import recurrent_candidates


def _recurrent_truth(config, steps: int) -> tuple[int, int, int]:
    """(grids, distinct kernels, distinct (kernel, C)) from the evaluation's own enumeration."""
    candidates = [c for family in config.families if family != "RBF"
                  for c in recurrent_candidates(family, config, steps)]
    kernels = {c.model for c in candidates}
    grids = {k.grid_source() for k in kernels}
    fits = {(c.model, c.C) for c in candidates}
    return len(grids), len(kernels), len(fits)


@pytest.mark.parametrize("data, steps", [
    ({}, 4),
    ({"families": ["RNN", "RNN-P"], "rnnp_orders": [[1, 0, 2, 3]], "layers": [1, 2, 3]}, 4),
    ({"families": ["BI-RNN-AVG"], "kinds": ["ntk"], "sigma_w": [1.0, 2.0], "C": [1]}, 7),
    ({"families": ["RNN-P"]}, 1),
])
def test_recurrent_counts_match_the_enumeration(data, steps):
    config = parse_config(data)
    estimate = estimate_cost(150, steps, config)
    grids, kernels, fits = _recurrent_truth(config, steps)
    assert (estimate.grids, estimate.kernels) == (grids, kernels)
    baseline_fits = 8 * len(config.C) if "RBF" in config.families else 0
    assert estimate.validation_fits == fits + baseline_fits
    assert estimate.test_fits == N_FOLDS * len(config.families)


def test_time_grows_with_n_and_t():
    config = parse_config({})
    small, large_n, large_t = (estimate_cost(n, t, config) for n, t in ((1000, 10), (3000, 10), (1000, 100)))
    assert large_n.kernel_seconds == pytest.approx(small.kernel_seconds * (3000 * 3001) / (1000 * 1001), rel=1e-2)
    assert large_t.kernel_seconds > 9 * small.kernel_seconds
    assert small.seconds < large_n.seconds
    assert "SVM fit(s)" in large_n.describe()


def test_rejects_empty_data():
    with pytest.raises(ValueError, match="N >= 1"):
        estimate_cost(0, 4, parse_config({}))


def test_overall_fraction_is_monotonic_over_the_stages():
    from rntk_core.evaluation.cost import STAGES, overall_fraction

    weights = estimate_cost(300, 10, parse_config({})).stage_seconds()
    points = [overall_fraction(weights, stage, done, 4) for stage in STAGES for done in range(5)]
    assert points == sorted(points)
    assert points[0] == 0.0 and points[-1] == pytest.approx(1.0)
    assert overall_fraction(weights, "queued", 0, 1) == 0.0


def test_eta_moves_from_the_estimate_to_the_pace():
    from rntk_core.evaluation.cost import eta_seconds

    assert eta_seconds(0.0, 0.0, 100.0) == 100.0
    assert eta_seconds(10.0, 0.5, 100.0) == pytest.approx(10.0)  # past 20%: pace only
