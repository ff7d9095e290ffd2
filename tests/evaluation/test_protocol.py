"""The protocol's bookkeeping: ties, votes, normalisation, splits, kernel slicing, SVM fits."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from rntk_core.evaluation.config import EvaluationConfig
from rntk_core.evaluation.datasets import Dataset, DatasetError, Splits
from rntk_core.evaluation.kernels import recurrent_candidates
from rntk_core.evaluation.protocol import majority_vote, normalise, resolve_splits, select_ties, stratified_splits
from rntk_core.evaluation.solvers.libsvm import KernelModel, fit_svc, run_parallel, slice_kernel
from rntk_core.evaluation.uci_bench import table_metrics


# --------------------------------------------------------------------------- ties and votes


@pytest.mark.parametrize(
    "scores, expected",
    [
        ([0.5, 0.9, 0.7], [1]),                      # a single best
        ([0.9, 0.5, 0.9], [0]),                      # two ties: the last is dropped
        ([0.9, 0.9, 0.9], [0, 1, 2]),                # three: all kept
        ([0.1, 0.9, 0.9, 0.2, 0.9, 0.9], [1, 2, 4]),  # four: the last in enumeration order dropped
    ],
)
def test_select_ties_keeps_an_odd_number_in_enumeration_order(scores, expected):
    assert select_ties(scores) == expected


def test_select_ties_needs_scores():
    with pytest.raises(ValueError):
        select_ties([])


def test_majority_vote_picks_the_most_votes():
    votes = np.array([[0, 1, 2, 2], [0, 2, 2, 1], [1, 2, 0, 1]])
    np.testing.assert_array_equal(majority_vote(votes, 3), [0, 2, 2, 1])


def test_majority_vote_tie_goes_to_the_smallest_label():
    votes = np.array([[2, 1, 0], [1, 2, 2], [0, 0, 1]])  # every point: three different labels
    np.testing.assert_array_equal(majority_vote(votes, 3), [0, 0, 0])
    np.testing.assert_array_equal(majority_vote(np.array([[3, 1], [1, 3]]), 4), [1, 1])


def test_majority_vote_of_one_model_is_that_model():
    np.testing.assert_array_equal(majority_vote(np.array([[2, 0, 1]]), 3), [2, 0, 1])


# --------------------------------------------------------------------------- normalisation


def test_normalise_divides_by_the_largest_row_norm():
    X = np.array([[[3.0], [4.0]], [[1.0], [0.0]], [[0.0], [-2.0]]])
    scaled, x_scale = normalise(X)
    assert x_scale == 5.0
    np.testing.assert_allclose(scaled, X / 5.0)
    assert np.linalg.norm(scaled.reshape(3, -1), axis=1).max() == pytest.approx(1.0)


def test_normalise_none_and_all_zero_keep_the_scale_one():
    X = np.ones((2, 3, 1))
    assert normalise(X, "none")[1] == 1.0
    zeros, x_scale = normalise(np.zeros((2, 3, 1)))
    assert x_scale == 1.0 and not np.isnan(zeros).any()
    with pytest.raises(ValueError):
        normalise(X, "unit")


# --------------------------------------------------------------------------- splits


def _labels() -> np.ndarray:
    return np.repeat([0, 1, 2], [20, 12, 8])


def test_stratified_splits_are_seeded_and_stratified():
    y = _labels()
    first, again, other = stratified_splits(y, 7), stratified_splits(y, 7), stratified_splits(y, 8)
    for part_a, part_b in zip(first.parts(), again.parts()):
        np.testing.assert_array_equal(part_a[1], part_b[1])
    assert not np.array_equal(first.train, other.train)
    # Half / half, disjoint, every class on both sides in proportion.
    assert len(first.train) == len(first.validation) == 20
    assert not np.intersect1d(first.train, first.validation).size
    np.testing.assert_array_equal(np.bincount(y[first.train]), [10, 6, 4])
    # Four folds whose test parts partition the data, each stratified.
    assert len(first.folds) == 4
    tests = np.concatenate([test for _, test in first.folds])
    np.testing.assert_array_equal(np.sort(tests), np.arange(len(y)))
    for train, test in first.folds:
        assert not np.intersect1d(train, test).size and len(train) + len(test) == len(y)
        np.testing.assert_array_equal(np.bincount(y[test], minlength=3), [5, 3, 2])


def _dataset(y: np.ndarray, splits: Splits | None = None) -> Dataset:
    X = np.arange(len(y) * 2, dtype=float).reshape(len(y), 2, 1)
    return Dataset(X=X, y=y, classes=np.unique(y), name="toy", format="csv", splits=splits)


def test_resolve_splits_prefers_predefined_and_falls_back_to_stratified():
    y = _labels()
    predefined = stratified_splits(y, 1)
    assert resolve_splits(_dataset(y, predefined), "auto", 0) == (predefined, "predefined")
    forced, name = resolve_splits(_dataset(y, predefined), "stratified", 0)
    assert name == "stratified" and not np.array_equal(forced.train, predefined.train)
    assert resolve_splits(_dataset(y), "auto", 0)[1] == "stratified"
    with pytest.raises(DatasetError, match="predefined"):
        resolve_splits(_dataset(y), "predefined", 0)
    with pytest.raises(DatasetError, match="at least 2 samples"):
        resolve_splits(_dataset(np.array([0, 0, 0, 1])), "stratified", 0)


# --------------------------------------------------------------------------- kernels and SVMs


def test_slice_kernel_takes_the_train_and_evaluation_blocks():
    kernel = np.arange(36, dtype=np.float32).reshape(6, 6)
    train, evaluate = np.array([4, 0, 2]), np.array([5, 1])
    k_train, k_evaluate = slice_kernel(kernel, train, evaluate)
    assert k_train.dtype == np.float64 and k_train.flags.c_contiguous
    np.testing.assert_array_equal(k_train, [[28, 24, 26], [4, 0, 2], [16, 12, 14]])
    np.testing.assert_array_equal(k_evaluate, [[34, 30, 32], [10, 6, 8]])


def _blobs(n: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = rng.standard_normal((n, 3)) + 3.0 * y[:, None]
    return X @ X.T, y


def test_non_converged_fits_are_flagged():
    kernel, y = _blobs()
    train, evaluate = np.arange(40), np.arange(40, 60)
    with pytest.warns(ConvergenceWarning):
        stopped = KernelModel("linear", kernel, max_iter=1).fit_predict(y, train, evaluate, [1e6])
    assert not stopped[1e6].converged
    fits = KernelModel("linear", lambda: kernel).fit_predict(y, train, evaluate, [0.01, 1.0])
    assert all(fit.converged for fit in fits.values())
    assert (fits[1.0].predictions == y[evaluate]).mean() > 0.8


def test_run_parallel_keeps_the_job_order():
    kernel, y = _blobs()
    k_train, k_test = slice_kernel(kernel, np.arange(40), np.arange(40, 60))
    jobs = [lambda C=C: (C, fit_svc(k_train, y[:40], k_test, C)) for C in (0.01, 1.0, 100.0, 1e4)]
    done = []
    results = run_parallel(jobs, n_jobs=2, on_done=lambda: done.append(1))
    assert [C for C, _ in results] == [0.01, 1.0, 100.0, 1e4] and len(done) == 4
    assert [C for C, _ in run_parallel(jobs, n_jobs=1)] == [0.01, 1.0, 100.0, 1e4]


# --------------------------------------------------------------------------- enumeration order


def test_rnnp_candidates_follow_the_protocol_order():
    config = EvaluationConfig(C=[100.0, 0.01], sigma_u=[0.5, 0.25], rnnp_orders=[[1, 0, 2]])
    candidates = recurrent_candidates("RNN-P", config, n_steps=3)
    # sigma_u x sigma_b x L x kind x (fwd, rev, user order) x C
    assert len(candidates) == 2 * 2 * 2 * 2 * 3 * 2
    head = [(c.params["sigma_u"], c.params["sigma_b"], c.params["layers"], c.params["kind"],
             c.params["direction"], (c.note or {}).get("order"), c.C) for c in candidates[:8]]
    assert head == [
        (0.25, 0.001, 1, "ck", "fwd", None, 0.01), (0.25, 0.001, 1, "ck", "fwd", None, 100.0),
        (0.25, 0.001, 1, "ck", "rev", None, 0.01), (0.25, 0.001, 1, "ck", "rev", None, 100.0),
        (0.25, 0.001, 1, "ck", "fwd", [1, 0, 2], 0.01), (0.25, 0.001, 1, "ck", "fwd", [1, 0, 2], 100.0),
        (0.25, 0.001, 1, "ntk", "fwd", None, 0.01), (0.25, 0.001, 1, "ntk", "fwd", None, 100.0),
    ]
    assert candidates[-1].params["sigma_u"] == 0.5 and candidates[-1].params["layers"] == 2


def test_family_variants_and_the_ck_only_alias():
    config = EvaluationConfig()
    avg = recurrent_candidates("BI-RNN-AVG", config, n_steps=4)
    assert {(c.params["pool"], c.params["direction"], c.params["sigma_v"]) for c in avg} == {("avg", "bi", 0.5)}
    ck_only = recurrent_candidates("RNN-P-CK", config, n_steps=4)
    assert {c.params["kind"] for c in ck_only} == {"ck"} and len(ck_only) == 80
    assert len(recurrent_candidates("RNN", config, n_steps=4)) == 80


# --------------------------------------------------------------------------- Table I metrics


def test_table_metrics():
    accuracies = {
        "a": {"X": 0.90, "Y": 0.80, "Z": 0.90},
        "b": {"X": 0.50, "Y": 0.60, "Z": 0.40},
    }
    summary = table_metrics(accuracies)
    assert summary["X"]["mean_accuracy"] == pytest.approx(0.70)
    assert summary["X"]["p95"] == 0.5                      # 0.5 < 0.95 * 0.6
    assert summary["Y"]["p95"] == 0.5 and summary["Z"]["p95"] == 0.5
    assert summary["X"]["pma"] == pytest.approx((1.0 + 0.5 / 0.6) / 2)
    assert summary["X"]["friedman_rank"] == pytest.approx((1.5 + 2) / 2)  # tied first on "a"
    assert summary["Y"]["friedman_rank"] == pytest.approx((3 + 1) / 2)
    assert summary["Z"]["friedman_rank"] == pytest.approx((1.5 + 3) / 2)


def test_standardize_gives_every_feature_the_same_scale():
    rng = np.random.default_rng(3)
    # raw units: the second feature is 1000x the first; max_row_norm alone keeps that ratio
    X = np.stack([rng.normal(5, 1, 50), rng.normal(0, 1000, 50), np.full(50, 7.0)], axis=1)[:, :, None]
    plain, _ = normalise(X, "max_row_norm")
    assert plain[:, 1].std() > 100 * plain[:, 0].std()
    scaled, x_scale = normalise(X, "standardize")
    stds = scaled[:, :, 0].std(axis=0)
    assert stds[0] == pytest.approx(stds[1]) and stds[2] == 0.0  # the constant feature is 0
    assert np.allclose(scaled.mean(axis=0), 0.0)
    assert np.linalg.norm(scaled.reshape(50, -1), axis=1).max() == pytest.approx(1.0)
    assert x_scale > 0
