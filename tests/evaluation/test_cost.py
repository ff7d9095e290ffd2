"""estimate_cost counts exactly what the evaluation enumerates."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rntk_core.evaluation.config import parse_config
from rntk_core.evaluation.cost import N_FOLDS, estimate_cost
from rntk_core.evaluation.kernels import recurrent_candidates
from tests.helpers import REPO, UCI


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


def test_a_landmark_jobs_stages_weigh_its_blocks_in_the_order_it_runs_them():
    """Selection (kernels, validation), then every row's K(X, Z) blocks, then the test folds:
    the names the landmark path reports ("validation", "blocks", "test") advance the fraction."""
    from rntk_core.evaluation.cost import LANDMARK_STAGES, overall_fraction

    estimate = estimate_cost(100_000, 32, parse_config({"families": ["RNN"], "landmarks": 512}))
    weights = estimate.stage_seconds()
    assert tuple(weights) == LANDMARK_STAGES
    assert weights["blocks"] > 0 and weights["kernels"] + weights["blocks"] == pytest.approx(estimate.kernel_seconds)
    reported = ("loading", "kernels", "validation", "blocks", "test", "report", "writing")
    points = [overall_fraction(weights, stage, done, 4) for stage in reported for done in range(5)]
    assert points == sorted(points) and len(set(points)) > len(reported)
    assert points[0] == 0.0 and points[-1] == pytest.approx(1.0)
    assert overall_fraction(weights, "blocks", 2, 4) < overall_fraction(weights, "blocks", 3, 4)


def test_more_landmarks_than_samples_cost_what_every_row_as_a_landmark_costs():
    """M past N runs with every row as a landmark: iris with 5,000 was refused for 21.6 GB."""
    config = {"families": ["RNN"], "sigma_u": [0.5], "sigma_b": [0.1], "layers": [1]}
    many, all_rows = (estimate_cost(150, 4, parse_config({**config, "landmarks": m})) for m in (5000, 150))
    assert many.host_bytes == all_rows.host_bytes < 2 << 30
    assert many.seconds == all_rows.seconds


@pytest.mark.parametrize("landmarks", [0, 64])
def test_an_archives_one_test_fold_and_cv_selection_are_costed_as_they_run(landmarks):
    """A TRAIN/TEST archive: 1 test fold fitted on TRAIN, and each configuration fitted on k CV
    pairs; the defaults stay the UCI protocol's (4 folds, one holdout)."""
    from rntk_core.evaluation.datasets import load_dataset
    from rntk_core.evaluation.protocol import protocol_shape
    from tests.helpers import TS_DATA

    config = parse_config({"families": ["RNN", "RBF"], "sigma_u": [0.5], "sigma_b": [0.1], "layers": [1],
                           "C": [1, 100], "landmarks": landmarks})
    dataset = load_dataset(TS_DATA / "GunPoint.zip")
    shape = protocol_shape(dataset, config)
    assert shape == {"test_folds": 1, "selection_pairs": config.cv_folds, "train_samples": 50}
    uci = estimate_cost(dataset.n_samples, dataset.n_steps, config)
    assert uci == estimate_cost(dataset.n_samples, dataset.n_steps, config, test_folds=4, selection_pairs=1)
    archive = estimate_cost(dataset.n_samples, dataset.n_steps, config, **shape)
    assert archive.test_fits == 2 and uci.test_fits == 8
    assert archive.validation_fits == config.cv_folds * uci.validation_fits
    if landmarks:  # one fold's K(X, Z) blocks, not four; RNN's only (RBF's K(X, Z) is not in blocks)
        assert archive.block_seconds == pytest.approx(uci.block_seconds / 4, abs=1e-3) and archive.block_seconds > 0
        rnn_only = estimate_cost(dataset.n_samples, dataset.n_steps, config.model_copy(update={"families": ["RNN"]}))
        assert uci.block_seconds == rnn_only.block_seconds
    iris_shape = protocol_shape(load_dataset(UCI / "iris"), config)
    assert iris_shape == {"test_folds": 4, "selection_pairs": 1, "train_samples": None}


def test_a_dense_jobs_blocks_and_forests_count_as_their_stages():
    from rntk_core.evaluation.cost import STAGES, overall_fraction

    weights = estimate_cost(300, 10, parse_config({})).stage_seconds()
    assert tuple(weights) == STAGES and "blocks" not in weights
    assert overall_fraction(weights, "blocks", 1, 2) == overall_fraction(weights, "kernels", 1, 2)
    assert overall_fraction(weights, "test folds: forests", 1, 2) == overall_fraction(weights, "test folds", 1, 2)


def test_eta_moves_from_the_estimate_to_the_pace():
    from rntk_core.evaluation.cost import eta_seconds

    assert eta_seconds(0.0, 0.0, 100.0) == 100.0
    assert eta_seconds(10.0, 0.5, 100.0) == pytest.approx(10.0)  # past 20%: pace only


@pytest.mark.parametrize("k", [0.01, 0.5, 3.0])
def test_a_calibration_factor_scales_the_grid_term_only(k):
    """A worker k times the 2-core CPU's grid rate: the Gram grids' seconds times k; the
    baselines' kernels and the fits keep theirs (the dense and the landmark paths)."""
    from rntk_core.evaluation.cost import SECONDS_PER_CELL, CostConstants, grid_seconds

    constants = CostConstants(seconds_per_cell=k * SECONDS_PER_CELL, basis="gpu: test (calibrated)")
    recurrent = parse_config({"families": ["RNN", "BI-RNN"]})
    base, scaled = (estimate_cost(3000, 20, recurrent, constants=c) for c in (CostConstants(), constants))
    assert scaled.kernel_seconds == pytest.approx(k * base.kernel_seconds, rel=1e-3)
    assert (scaled.validation_seconds, scaled.test_seconds) == (base.validation_seconds, base.test_seconds)
    assert "on gpu: test (calibrated)" in scaled.describe() and "on a 2-core CPU" in base.describe()

    mixed = parse_config({"families": ["RNN", "RBF"]})
    grid = grid_seconds(3000, 20, mixed)
    base, scaled = (estimate_cost(3000, 20, mixed, constants=c) for c in (CostConstants(), constants))
    assert base.kernel_seconds - scaled.kernel_seconds == pytest.approx((1 - k) * grid, rel=1e-3)

    landmarks = parse_config({"families": ["RNN"], "landmarks": 256})
    base, scaled = (estimate_cost(50_000, 20, landmarks, constants=c) for c in (CostConstants(), constants))
    assert scaled.kernel_seconds == pytest.approx(k * base.kernel_seconds, rel=1e-3, abs=1e-3)  # seconds are rounded to ms


def test_the_svm_fit_rate_scales_the_fits():
    from rntk_core.evaluation.cost import SECONDS_PER_FIT_SAMPLE2, CostConstants

    config = parse_config({"families": ["RNN", "RBF"]})
    base = estimate_cost(3000, 20, config)
    doubled = CostConstants(seconds_per_fit_sample2=2 * SECONDS_PER_FIT_SAMPLE2)
    slower = estimate_cost(3000, 20, config, constants=doubled)
    assert slower.kernel_seconds == base.kernel_seconds
    assert slower.validation_seconds == pytest.approx(2 * base.validation_seconds, rel=1e-3)  # above the floor
    assert slower.test_seconds == pytest.approx(2 * base.test_seconds, rel=1e-3)


def test_constants_from_a_calibration_record_keep_defaults_for_bad_values():
    from rntk_core.evaluation.cost import SECONDS_PER_CELL, SECONDS_PER_FIT_SAMPLE2, CostConstants

    constants = CostConstants.from_calibration({"seconds_per_cell": 3.1e-10, "seconds_per_fit_sample2": float("nan"),
                                                "device": "gpu: NVIDIA H100"})
    assert constants == CostConstants(3.1e-10, SECONDS_PER_FIT_SAMPLE2, "gpu: NVIDIA H100 (calibrated)")
    for bad in (0, -1.0, "1e-9", None, True):
        assert CostConstants.from_calibration({"seconds_per_cell": bad}).seconds_per_cell == SECONDS_PER_CELL


def test_dtw_cells_follow_the_band_and_the_lengths():
    from rntk_core.evaluation.cost import dtw_pair_cells
    from rntk_core.evaluation.nearest import dtw_cells

    assert dtw_pair_cells(100, None) == 100 * 100
    assert dtw_pair_cells(100, 0.1) == 100 * 21  # half-width 10: 21 cells a row
    assert dtw_pair_cells(100, 0.0) == 100  # the diagonal only
    lengths = np.array([10, 40, 40, 100, 7])
    expected = np.mean(dtw_cells(lengths[:, None], lengths[None, :], 0.1))
    assert dtw_pair_cells(100, 0.1, lengths) == pytest.approx(expected)
    assert dtw_cells(40, 100, 0.1) == 100 * 40  # band 2 * 10 + 1 + 60 wider than 40


def test_one_nn_families_cost_their_distances_not_svm_fits():
    from rntk_core.evaluation.cost import SECONDS_PER_DTW_CELL, nearest_seconds

    dtw, ed = parse_config({"families": ["1NN-DTW"]}), parse_config({"families": ["1NN-ED"]})
    full, band = nearest_seconds(442, 427, dtw, train_samples=200), nearest_seconds(
        442, 427, parse_config({"families": ["1NN-DTW"], "dtw_window": 0.1}), train_samples=200)
    pairs = 200 * 199 / 2 + 242 * 200
    assert full == pytest.approx(pairs * 427 * 427 * SECONDS_PER_DTW_CELL, rel=0.05)
    assert band == pytest.approx(full * 87 / 427, rel=0.05)  # half-width 43: 87 cells a row
    assert nearest_seconds(442, 427, dtw) > full  # every series is a column under cross-validation
    assert nearest_seconds(4177, 8, ed) < 1.0
    estimate = estimate_cost(4177, 8, dtw)
    assert estimate.test_seconds < 0.5  # four argmins, no SVM on 3,000 rows


def _measured_job(data: str, config: dict) -> float:
    """Wall seconds of ``evaluate_path`` in a fresh interpreter, as a worker's pool child runs
    one job (it imports JAX for it, as SECONDS_FIXED counts)."""
    import subprocess
    import sys
    import time

    code = ("import json, sys; from rntk_core.evaluation.config import parse_config; "
            "from rntk_core.evaluation.evaluate import evaluate_path; "
            "evaluate_path(sys.argv[1], parse_config(json.loads(sys.argv[2])), out_dir=sys.argv[3])")
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, data, json.dumps(config), str(Path(data).parent / "out")],
                   check=True, cwd=REPO, capture_output=True, timeout=400)
    return time.perf_counter() - started


def _write_ts(folder: Path, train: int, test: int, steps: int) -> Path:
    rng = np.random.default_rng(0)
    folder.mkdir()
    for part, count in (("TRAIN", train), ("TEST", test)):
        lines = ["@problemName Synth", "@timeStamps false", "@univariate true", "@classLabel true 0 1 2", "@data"]
        for _ in range(count):
            label = int(rng.integers(0, 3))
            t = np.linspace(0.0, 1.0, steps)
            x = np.sin(2 * np.pi * (label + 2) * t + rng.uniform(0, 6)) + 0.3 * rng.standard_normal(steps)
            lines.append(",".join(f"{v:.5f}" for v in x) + f":{label}")
        (folder / f"Synth_{part}.ts").write_text("\n".join(lines) + "\n")
    return folder


@pytest.mark.slow
def test_one_nn_estimates_are_within_3x_of_real_jobs(tmp_path):
    # A DTW job of 442 series of length 427 (200 train / 242 test; window 0.1 keeps the test
    # short: ~15 s here, the full window ~75 s) and iris with both 1-NN families.
    dtw_config = {"families": ["1NN-DTW"], "dtw_window": 0.1}
    data = _write_ts(tmp_path / "Synth", 200, 242, 427)
    estimate = estimate_cost(442, 427, parse_config(dtw_config), train_samples=200).seconds
    real = _measured_job(str(data), dtw_config)
    assert real / 3 <= estimate <= 3 * real, (estimate, real)
    iris_config = {"families": ["1NN-ED", "1NN-DTW"]}
    estimate = estimate_cost(150, 4, parse_config(iris_config)).seconds
    real = _measured_job(str(UCI / "iris"), iris_config)
    assert real / 3 <= estimate <= 3 * real, (estimate, real)


def test_landmark_fits_on_a_small_kernel_are_costed_as_libsvm_and_its_kernel_counted_in_memory():
    """Landmark fits of at most LINEAR_KERNEL_ROWS rows go to libsvm on Phi Phi' (auto, on a
    CPU): far cheaper than the interior point's 25 O(n M^2) iterations, and the n x n kernel
    joins the peak memory; past the limit libsvm on each pair's working sets of at most that
    many rows, still far cheaper; with solver=jax, the interior point's term."""
    from rntk_core.evaluation.solvers import LINEAR_KERNEL_ROWS

    grid = {"families": ["RNN"], "landmarks": 512, "selection_samples": 4096}
    auto, jax_only = (parse_config({**grid, "solver": solver}) for solver in ("auto", "jax"))
    mid_auto, mid_jax = estimate_cost(2126, 21, auto), estimate_cost(2126, 21, jax_only)
    assert mid_auto.validation_seconds < mid_jax.validation_seconds / 10
    assert mid_auto.test_seconds < mid_jax.test_seconds
    assert mid_auto.host_bytes > mid_jax.host_bytes  # the selection's 4096 x 4096 kernel, and more
    large = 4 * LINEAR_KERNEL_ROWS  # test folds past the limit: libsvm on working sets
    large_auto, large_jax = estimate_cost(large, 21, auto), estimate_cost(large, 21, jax_only)
    assert large_auto.test_seconds < large_jax.test_seconds / 5
    assert large_auto.host_bytes - large_jax.host_bytes >= 8 * LINEAR_KERNEL_ROWS ** 2  # a set's kernel
