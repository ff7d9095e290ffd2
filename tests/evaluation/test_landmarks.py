"""Landmark (Nystrom) features against dense RNTK kernels, and the linear C-SVM on features
against scikit-learn's ``SVC(kernel="linear")`` (libsvm: hinge loss, unregularised intercept).

The linear solver is checked the way tests/evaluation/test_jax_svm.py checks the dense one:
dual objectives within 1e-6 relative of libsvm run to a tight tolerance, per one-vs-one pair,
and the same predictions wherever libsvm's own decision value is clear of its tolerance.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.svm import SVC

from rntk_core import gram
from rntk_core.evaluation.scale.landmarks import (
    choose_landmarks,
    nystrom_map,
    relative_error,
    stratified_sample,
)
from rntk_core.evaluation.solvers.jax_svm import ovo_pairs
from rntk_core.evaluation.solvers.linear_svm import LinearTask, fit_predict_linear, solve_linear_duals


def sequences(n: int, steps: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    t = np.linspace(0, 2 * np.pi, steps)
    X = np.sin((y[:, None] + 1) * t[None, :] + rng.uniform(0, 0.5, (n, 1))) + 0.3 * rng.normal(size=(n, steps))
    return X, y


def rntk(X, Y=None):
    return gram(X, Y, kind="ntk", layers=2, sigma_u=0.5, sigma_b=0.1, dtype="float64")


def test_all_rows_as_landmarks_reproduce_the_kernel():
    X, _ = sequences(60)
    K = rntk(X)
    mapping = nystrom_map(K)
    phi = mapping.features(K)
    assert relative_error(K, phi, phi) < 1e-8


def test_features_reproduce_the_landmark_block_and_approach_the_kernel_as_m_grows():
    X, y = sequences(150, seed=1)
    K = rntk(X)
    errors = []
    for m in (8, 32, 96):
        Z = choose_landmarks(y, m, seed=0)
        mapping = nystrom_map(K[np.ix_(Z, Z)])
        phi = mapping.features(K[:, Z])
        # Exact on the landmarks themselves (up to the dropped near-null directions).
        assert relative_error(K[np.ix_(Z, Z)], phi[Z], phi[Z]) < 1e-6
        errors.append(relative_error(K, phi, phi))
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.1, errors


def test_features_of_new_rows_use_the_same_map():
    X, y = sequences(120, seed=2)
    train, test = np.arange(90), np.arange(90, 120)
    Z = train[choose_landmarks(y[train], 40, seed=3)]
    mapping = nystrom_map(rntk(X[Z]))
    phi_test = mapping.features(rntk(X[test], X[Z]))
    phi_train = mapping.features(rntk(X[train], X[Z]))
    exact = rntk(X[test], X[train])
    assert relative_error(exact, phi_test, phi_train) < 0.1


def test_stratified_landmarks_keep_class_shares_and_kmeans_spreads():
    y = np.repeat([0, 1, 2], [600, 300, 100])
    chosen = choose_landmarks(y, 100, seed=0)
    assert len(set(chosen)) == 100
    assert np.bincount(y[chosen]).tolist() == [60, 30, 10]
    rare = np.r_[np.zeros(995, int), np.ones(5, int)]
    assert 1 in rare[choose_landmarks(rare, 10, seed=0)]  # every class is represented
    assert np.array_equal(stratified_sample(y, 5000), np.arange(1000))  # all rows when asked for more
    X, labels = sequences(300, seed=4)
    spread = choose_landmarks(labels, 30, method="kmeans++", X=X, seed=0)
    assert len(set(spread)) == 30
    with pytest.raises(ValueError, match="kmeans"):
        choose_landmarks(labels, 30, method="kmeans++")


def _libsvm_pair_objective(phi, y, C, first, second):
    rows = np.flatnonzero((y == first) | (y == second))
    model = SVC(kernel="linear", C=C, tol=1e-9, max_iter=10**7).fit(phi[rows], y[rows])
    a = np.zeros(rows.size)
    a[model.support_] = model.dual_coef_[0]
    K = phi[rows] @ phi[rows].T
    return float(0.5 * a @ K @ a - np.abs(a).sum())


@pytest.mark.parametrize("C", [1e-2, 1.0, 1e2])
def test_linear_solver_matches_libsvm_on_the_same_features(C):
    rng = np.random.default_rng(0)
    n, width = 240, 16
    y = np.arange(n) % 3
    phi = rng.normal(size=(n, width)) + 0.7 * np.eye(width)[y]
    evaluate = rng.normal(size=(90, width)) + 0.7 * np.eye(width)[rng.integers(0, 3, 90)]
    [fit] = fit_predict_linear([LinearTask(phi, y, evaluate, [C])], solver="jax")
    result = fit[C]
    assert result.converged and result.error <= 1e-9
    reference = SVC(kernel="linear", C=C, tol=1e-9, max_iter=10**7).fit(phi, y)
    expected = [_libsvm_pair_objective(phi, y, C, i, j) for i, j in ovo_pairs(3)]
    assert np.allclose(result.objectives, expected, rtol=1e-6, atol=0)
    # Same predictions wherever libsvm's own decisions are clear of its tolerance.
    clear = np.min(np.abs(reference.decision_function(evaluate)), axis=1) > 1e-6
    assert np.array_equal(result.predictions[clear], reference.predict(evaluate)[clear])
    assert clear.mean() > 0.9


def test_linear_solver_streams_rows_in_blocks(monkeypatch):
    """More rows than one block: the sums over N run block by block and give the same solution."""
    from rntk_core.evaluation.solvers import linear_svm

    rng = np.random.default_rng(1)
    n = 300
    y = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    phi = rng.normal(size=(n, 6)) + 0.8 * y[:, None]
    whole = solve_linear_duals(phi, y[None], np.array([1.0]))
    monkeypatch.setattr(linear_svm, "ROW_BLOCK", 64)
    blocked = solve_linear_duals(phi, y[None], np.array([1.0]))
    assert np.allclose(blocked.objective, whole.objective, rtol=1e-9)
    assert np.allclose(blocked.weights, whole.weights, rtol=1e-6, atol=1e-9)


def _three_classes(n: int = 1500, width: int = 12) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features of n training rows of 3 overlapping classes, their labels, and 200 evaluated rows."""
    rng = np.random.default_rng(7)
    y = np.arange(n) % 3
    phi = rng.normal(size=(n, width)) + 0.9 * np.eye(width)[y]
    evaluate = rng.normal(size=(200, width)) + 0.9 * np.eye(width)[rng.integers(0, 3, 200)]
    return phi, y, evaluate


@pytest.mark.parametrize("C", [1.0, 1e3])  # at 1e3 libsvm stops short of the optimum: whole solve only
def test_linear_solver_on_working_sets_solves_the_whole_problem(monkeypatch, C):
    """Past 2 x WORKING_SET_ROWS rows a problem is solved on growing working sets: the same
    objectives (libsvm's, and the whole problem's) and predictions as one solve on every row,
    with alpha = 0 outside the final set, after more than one round."""
    from rntk_core.evaluation.solvers import linear_svm

    phi, y, evaluate = _three_classes()
    [whole] = fit_predict_linear([LinearTask(phi, y, evaluate, [C])], solver="jax")
    rounds = []
    solve = linear_svm._solve_in_batches
    monkeypatch.setattr(linear_svm, "_solve_in_batches", lambda *a: rounds.append(a[1]) or solve(*a))
    monkeypatch.setattr(linear_svm, "WORKING_SET_ROWS", 128)
    [split] = fit_predict_linear([LinearTask(phi, y, evaluate, [C])], solver="jax")
    assert len(rounds) > 1 and (rounds[0] != 0).sum(axis=1).max() < 200  # it did start small
    assert split[C].converged and whole[C].converged
    if C == 1.0:
        expected = [_libsvm_pair_objective(phi, y, C, i, j) for i, j in ovo_pairs(3)]
        assert np.allclose(split[C].objectives, expected, rtol=1e-6, atol=0)
    assert np.allclose(split[C].objectives, whole[C].objectives, rtol=1e-8, atol=0)
    assert np.array_equal(split[C].predictions, whole[C].predictions)


def test_linear_solver_on_few_rows_uses_the_kernel_and_matches_libsvm():
    """No more rows than features: the same dual is solved on the kernel Phi Phi'."""
    rng = np.random.default_rng(5)
    n, width = 90, 128
    y = np.arange(n) % 2
    phi = rng.normal(size=(n, width)) * 0.1 + 0.3 * y[:, None]
    evaluate = rng.normal(size=(30, width)) * 0.1
    [fit] = fit_predict_linear([LinearTask(phi, y, evaluate, [1.0])], solver="jax")
    expected = _libsvm_pair_objective(phi, y, 1.0, 0, 1)
    assert fit[1.0].solver == "linear" and fit[1.0].converged
    assert np.isclose(fit[1.0].objectives[0], expected, rtol=1e-6)


def test_auto_fits_libsvm_on_the_kernel_first_and_the_interior_point_only_what_it_leaves(monkeypatch):
    """``auto``: libsvm on Phi Phi' (capped), the same classifier as SVC(kernel="linear") on Phi;
    a C it does not finish within the cap goes to the interior point, also past LINEAR_KERNEL_ROWS
    rows, where libsvm takes the one-vs-one pairs (on working sets) one by one."""
    from rntk_core.evaluation.solvers import linear_svm, strategy

    rng = np.random.default_rng(3)
    n, width = 600, 24
    y = np.arange(n) % 3
    phi = rng.normal(size=(n, width)) + 0.6 * np.eye(width)[y]
    evaluate = rng.normal(size=(150, width)) + 0.6 * np.eye(width)[rng.integers(0, 3, 150)]
    Cs = [0.1, 10.0]
    [auto] = fit_predict_linear([LinearTask(phi, y, evaluate, Cs)])
    [interior] = fit_predict_linear([LinearTask(phi, y, evaluate, Cs)], solver="jax")
    for C in Cs:
        reference = SVC(kernel="linear", C=C).fit(phi, y)
        assert auto[C].solver == "libsvm" and auto[C].converged
        assert np.array_equal(auto[C].predictions, reference.predict(evaluate))
        clear = np.min(np.abs(reference.decision_function(evaluate)), axis=1) > 1e-3
        assert np.array_equal(interior[C].predictions[clear], auto[C].predictions[clear])
    monkeypatch.setattr(strategy, "hybrid_iteration_cap", lambda n_train: 5)  # no fit finishes in 5 steps
    [capped] = fit_predict_linear([LinearTask(phi, y, evaluate, Cs)])
    assert all(capped[C].solver == "linear" and capped[C].converged for C in Cs)
    assert all(np.array_equal(capped[C].predictions, interior[C].predictions) for C in Cs)
    monkeypatch.setattr(linear_svm.jax, "default_backend", lambda: "gpu")  # auto keeps a GPU's fits on it
    [on_gpu] = fit_predict_linear([LinearTask(phi, y, evaluate, Cs)])
    assert all(on_gpu[C].solver == "linear" for C in Cs)
    monkeypatch.setattr(linear_svm, "LINEAR_KERNEL_ROWS", n - 1)  # past it libsvm takes each pair apart,
    [large] = fit_predict_linear([LinearTask(phi, y, evaluate, Cs)], solver="libsvm")
    assert all(large[C].solver == "linear" for C in Cs)  # and, capped at 5 steps, leaves them all
    with pytest.raises(ValueError, match="unknown solver"):
        fit_predict_linear([LinearTask(phi, y, evaluate, Cs)], solver="smo")


@pytest.mark.parametrize("C", [1.0, 1e3])
def test_libsvm_on_working_sets_solves_the_whole_problem(monkeypatch, C):
    """``auto`` on a CPU past LINEAR_KERNEL_ROWS rows: libsvm solves each pair's working sets
    (from half that many rows), the interior point what it leaves or what outgrows that; the
    result is the whole problem's: its objectives and predictions."""
    from rntk_core.evaluation.solvers import linear_svm

    phi, y, evaluate = _three_classes()
    [whole] = fit_predict_linear([LinearTask(phi, y, evaluate, [C])], solver="jax")
    rounds = []
    solve = linear_svm._solve_with_libsvm

    def recorded(phi, signs, *args, **kwargs):
        solution = solve(phi, signs, *args, **kwargs)
        rounds.append(((signs != 0).sum(axis=1), solution.by_libsvm))
        return solution

    monkeypatch.setattr(linear_svm, "_solve_with_libsvm", recorded)
    monkeypatch.setattr(linear_svm, "LINEAR_KERNEL_ROWS", 256)
    [split] = fit_predict_linear([LinearTask(phi, y, evaluate, [C])])
    assert len(rounds) > 1 and rounds[0][0].max() <= 130  # sets from half of LINEAR_KERNEL_ROWS
    assert all(np.all(libsvm <= (sizes <= 256)) for sizes, libsvm in rounds)  # libsvm within its kernel
    # At C = 1 libsvm finishes sets; at 1e3 SMO runs past its cap and the interior point takes them.
    assert any(libsvm.any() for _, libsvm in rounds) == (C == 1.0)
    assert split[C].converged
    assert np.allclose(split[C].objectives, whole[C].objectives, rtol=1e-6, atol=0)
    assert np.array_equal(split[C].predictions, whole[C].predictions)


def test_a_libsvm_working_set_past_its_limit_keeps_its_support_vectors(monkeypatch):
    """A set that would outgrow LINEAR_KERNEL_ROWS keeps its support vectors and the worst
    violators that fit: libsvm solves every round's sets (without this, the sets grew to 512
    rows and more, all on the interior point), and the result is the whole problem's."""
    from rntk_core.evaluation.solvers import linear_svm

    rng = np.random.default_rng(7)
    y = np.arange(3000) % 3  # separated classes: few support vectors
    phi = rng.normal(size=(3000, 12)) + 3.0 * np.eye(12)[y]
    evaluate = rng.normal(size=(200, 12)) + 3.0 * np.eye(12)[rng.integers(0, 3, 200)]
    [whole] = fit_predict_linear([LinearTask(phi, y, evaluate, [1.0])], solver="jax")
    rounds = []
    solve = linear_svm._solve_with_libsvm
    monkeypatch.setattr(linear_svm, "_solve_with_libsvm", lambda phi, signs, *a, **k: rounds.append(
        (signs != 0).sum(axis=1)) or solve(phi, signs, *a, **k))
    interior = []
    batches = linear_svm._solve_in_batches
    monkeypatch.setattr(linear_svm, "_solve_in_batches", lambda phi, signs, *a, **k: interior.append(
        (signs != 0).sum(axis=1)) or batches(phi, signs, *a, **k))
    monkeypatch.setattr(linear_svm, "LINEAR_KERNEL_ROWS", 256)
    [split] = fit_predict_linear([LinearTask(phi, y, evaluate, [1.0])])
    assert len(rounds) > 3 and max(sizes.max() for sizes in rounds) <= 256
    # the interior point only takes a set libsvm did not finish, never one past the limit
    assert len(interior) < len(rounds) and all(sizes.max() <= 256 for sizes in interior)
    assert split[1.0].solver == "libsvm" and split[1.0].converged
    assert np.allclose(split[1.0].objectives, whole[1.0].objectives, rtol=1e-6, atol=0)
    assert np.array_equal(split[1.0].predictions, whole[1.0].predictions)


GRID = dict(families=["RNN", "BI-RNN-AVG", "RBF"], sigma_u=[0.5], sigma_b=[0.1], layers=[1, 2],
            C=[1.0, 100.0], rbf_gamma=[1.0, 8.0])


def test_landmarks_on_every_training_row_score_like_the_dense_path(iris, tmp_path):
    """With every training row a landmark the features reproduce each kernel, so every
    configuration's validation accuracy is the dense path's (the same kernel, C and split)."""
    from rntk_core.evaluation.config import parse_config
    from rntk_core.evaluation.evaluate import evaluate_dataset

    dense = evaluate_dataset(iris, parse_config(GRID))
    landmark = evaluate_dataset(iris, parse_config({**GRID, "landmarks": 1000, "selection_samples": 1000}),
                                out_dir=tmp_path)
    assert dense["scale"]["method"] == "dense" and landmark["scale"]["method"] == "landmarks"
    pairs = [(d["validation_accuracy"], l["validation_accuracy"])
             for d, l in zip(dense["configurations"], landmark["configurations"], strict=True)]
    one_point = 1.0 / 75  # one validation sample of iris's half split
    assert all(abs(d - l) <= one_point + 1e-12 for d, l in pairs), pairs
    assert sum(d == l for d, l in pairs) >= 0.9 * len(pairs)
    scale = landmark["scale"]
    assert scale["nystrom_error_max"] < 1e-6
    assert scale["selection_samples"] == 150 and len(scale["training_samples"]) == 4
    assert scale["blocks"]["total"] >= 4 and sum(scale["blocks"]["by_worker"].values()) == scale["blocks"]["total"]
    assert landmark["solver"]["used"] == "linear"
    files = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert {"report.json", "splits.npz", "scale/landmarks-selection.npy", "scale/landmarks-fold0.npy"} <= files
    assert any(name.startswith("scale/fold0-k_xz-0.zarr/") for name in files)
    for family, result in landmark["families"].items():
        assert abs(result["test_accuracy"] - dense["families"][family]["test_accuracy"]) < 0.05, family
        # The report parts a dense report has: the confusion matrix of the chosen model's
        # predictions over the 4 test folds (every test row once per fold), per-class accuracy
        # consistent with it and the fold accuracies, and seconds per family adding up to the phases.
        matrix = np.asarray(result["confusion_matrix"])
        assert matrix.shape == (3, 3) and matrix.sum() == sum(len(test) for _, test in iris.splits.folds)
        assert np.trace(matrix) / matrix.sum() == pytest.approx(
            np.average(result["fold_accuracies"], weights=[len(t) for _, t in iris.splits.folds]), abs=1e-12)
        assert set(result["per_class_accuracy"]) == {str(c) for c in iris.classes}
        assert result["test_std"] == pytest.approx(np.std(result["fold_accuracies"]))
    seconds = landmark["family_seconds"]
    assert set(seconds) == set(GRID["families"])
    for phase in ("kernels", "validation", "test"):
        assert sum(entry[phase] for entry in seconds.values()) == pytest.approx(landmark["timings"][phase], abs=1e-3)
    assert "proportion" in landmark["seconds_attribution"]


def test_landmark_kernels_in_zarr_are_the_engines(iris, tmp_path):
    """K(X, Z) as stored, block by block, equals the engine's kernel against the landmark rows."""
    import zarr

    from rntk_core import gram
    from rntk_core.evaluation.config import parse_config
    from rntk_core.evaluation.evaluate import evaluate_dataset
    from rntk_core.evaluation.protocol import normalise

    config = parse_config({"families": ["RNN"], "sigma_u": [0.5], "sigma_b": [0.1], "layers": [1], "C": [1.0],
                           "kinds": ["ntk"], "landmarks": 20, "selection_samples": 100, "block_rows": 32})
    report = evaluate_dataset(iris, config, out_dir=tmp_path, dtype="float64")
    stored = zarr.open_array(str(tmp_path / "scale" / "fold0-k_xz-0.zarr"), mode="r")
    landmarks = np.load(tmp_path / "scale" / "landmarks-fold0.npy")
    X, _ = normalise(iris.X, config.normalize)
    expected = gram(X, X[landmarks], kind="ntk", layers=1, sigma_u=0.5, sigma_b=0.1, dtype="float64")
    assert stored.shape == (1, 150, 20) and stored.chunks == (1, 32, 20)
    assert np.allclose(stored[0], expected, rtol=1e-12, atol=1e-12)
    assert report["scale"]["blocks"]["total"] == 4 * 5  # 4 folds x ceil(150 / 32) blocks


def test_landmark_rbf_reads_unequal_lengths_as_the_dense_rbf_does():
    """The dense RBF resamples unequal-length series; the landmark RBF reads the same rows (it
    once read the front padding as data), so with every row a landmark they score alike."""
    from rntk_core.evaluation.config import parse_config
    from rntk_core.evaluation.datasets import Dataset
    from rntk_core.evaluation.evaluate import evaluate_dataset

    rng = np.random.default_rng(3)
    n, steps = 90, 12
    y = np.arange(n) % 3
    lengths = rng.integers(5, steps + 1, n)
    X = np.zeros((n, steps, 1))
    for i in range(n):
        t = np.linspace(0, 2 * np.pi, lengths[i])
        X[i, steps - lengths[i]:, 0] = np.sin((y[i] + 1) * t) + 0.2 * rng.normal(size=lengths[i])
    dataset = Dataset(X, y, np.arange(3), "unequal", "npz", lengths=lengths)
    grid = {"families": ["RBF"], "rbf_gamma": [0.5, 4.0], "C": [1.0, 100.0]}
    dense = evaluate_dataset(dataset, parse_config(grid))
    landmark = evaluate_dataset(dataset, parse_config({**grid, "landmarks": 1000, "selection_samples": 1000}))
    pairs = [(d["validation_accuracy"], l["validation_accuracy"])
             for d, l in zip(dense["configurations"], landmark["configurations"], strict=True)]
    assert all(abs(d - l) <= 1 / 45 + 1e-12 for d, l in pairs), pairs


def test_features_read_the_stored_kernel_a_block_at_a_time(tmp_path):
    """The test stage turns a stored K(X, Z) into features without holding it whole: every
    read spans at most one block of rows, and the features equal those of the whole matrix."""
    from rntk_core.evaluation.scale.blocks import BlockPlan, BlockStore
    from rntk_core.evaluation.scale.pipeline import _KernelRows, _stored_rows

    rng = np.random.default_rng(3)
    n, m = 1000, 24
    plan = BlockPlan(kernels=(("ntk", "last", 1, "fwd", 0.5, 0.1),), layers=1, sigma_w=2**0.5, sigma_v=1.0,
                     dtype="float32", block_rows=128)
    store = BlockStore(tmp_path / "k.zarr", n, m, plan)
    whole = rng.normal(size=(n, m)).astype(np.float32)
    store.array[0] = whole
    spans = []
    rows_of = store.rows
    store.rows = lambda k, start=0, stop=None: spans.append(stop - start) or rows_of(k, start, stop)
    k_xz = _KernelRows(n, m, _stored_rows(store, 0, 2.0))
    landmarks = np.sort(rng.choice(n, m, replace=False))
    mapping = nystrom_map(2.0 * whole[landmarks].astype(np.float64) @ whole[landmarks].T.astype(np.float64)
                          + np.eye(m))
    picked = rng.permutation(n)[:700]  # unsorted rows come back in their order
    assert np.array_equal(k_xz[picked], 2.0 * whole[picked].astype(np.float64))
    assert np.allclose(mapping.features(k_xz, np.sort(picked), rows_per_step=300),
                       mapping.features(2.0 * whole.astype(np.float64), np.sort(picked)), rtol=1e-12)
    assert max(spans) <= 128


@pytest.mark.parametrize("directions, sweeps", [(("fwd",), ("fwd",)), (("fwd", "bi"), ("fwd", "rev"))])
def test_a_block_runs_only_the_sweeps_of_its_kernels(directions, sweeps, monkeypatch):
    """The blocks of forward kernels (RNN, RNN-AVG: the usual chosen ones) cost one sweep,
    not two, with the values of the whole grid."""
    import rntk_core.api as api
    from rntk_core import gram_grid
    from rntk_core.evaluation.scale.blocks import BlockPlan, kernel_rows

    X, _ = sequences(40)
    keys = tuple(("ntk", pool, 1, direction, 0.5, 0.1) for direction in directions for pool in ("last", "avg"))
    plan = BlockPlan(kernels=keys, layers=1, sigma_w=2**0.5, sigma_v=1.0, dtype="float32", block_rows=16)
    swept = []
    real = api.compute_readouts
    monkeypatch.setattr(api, "compute_readouts", lambda *a, **k: swept.append(k["directions"]) or real(*a, **k))
    values = kernel_rows(X[:16], X[30:], plan)
    assert swept == [sweeps]
    whole = gram_grid(X[:16], X[30:], sigma_w=2**0.5, layers=1, pairs=[(0.5, 0.1)])
    for k, key in enumerate(keys):
        np.testing.assert_allclose(values[k], whole[key], rtol=1e-6, atol=0)


def test_a_block_on_an_accelerator_is_assembled_there_with_the_same_values(monkeypatch):
    """Where the backend is not the CPU, a block's tiles are assembled on the device and only
    its kernels come back; the values are the host assembly's, bit for bit (the device path
    runs on the CPU backend here, told it is a GPU)."""
    import jax

    import rntk_core.api as api
    from rntk_core.evaluation.scale.blocks import BlockPlan, kernel_rows

    X, _ = sequences(40)
    plan = BlockPlan(kernels=(("ntk", "last", 2, "bi", 0.5, 0.1), ("ck", "avg", 1, "fwd", 0.5, 0.1)), layers=2,
                     sigma_w=2**0.5, sigma_v=1.0, dtype="float32", block_rows=16)
    host = kernel_rows(X[:16], X[16:], plan, memory_budget=200_000)
    outputs = []
    real = api.compute_readouts
    monkeypatch.setattr(api, "compute_readouts", lambda *a, **k: outputs.append(k["output"]) or real(*a, **k))
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    device = kernel_rows(X[:16], X[16:], plan, memory_budget=200_000)
    assert outputs == ["device"]
    assert device.dtype == np.float64 and np.array_equal(device, host)


def test_features_on_an_accelerator_are_the_hosts(monkeypatch):
    """Where the backend is not the CPU, Phi = K(X, Z) @ projection is multiplied on the
    device, in float64 at full precision; the features are the host product's to rounding."""
    import jax

    rng = np.random.default_rng(5)
    Z = rng.normal(size=(30, 8))
    mapping = nystrom_map(Z @ Z.T + 0.1 * np.eye(30))
    k_xz = rng.normal(size=(500, 30)).astype(np.float32)
    host = mapping.features(k_xz, rows_per_step=128)
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    device = mapping.features(k_xz, rows_per_step=128)
    assert device.dtype == np.float64
    np.testing.assert_allclose(device, host, rtol=1e-12, atol=1e-12 * np.abs(host).max())


def test_the_reports_stores_name_each_kernel_and_the_factor_that_makes_it(iris, tmp_path):
    """report.json's scale.stores: stored K(X, Z) times ``scale`` is the chosen kernel that
    ``rntk_core.gram(X, X[landmarks], **params)`` gives, for a family whose readout has
    sigma_v != 1 (the stores hold sigma_v = 1)."""
    import zarr

    from rntk_core import gram
    from rntk_core.evaluation.config import parse_config
    from rntk_core.evaluation.evaluate import evaluate_dataset
    from rntk_core.evaluation.protocol import normalise

    config = parse_config({"families": ["RNN", "BI-RNN-AVG"], "sigma_u": [0.5], "sigma_b": [0.1], "layers": [1],
                           "C": [1.0], "kinds": ["ntk"], "landmarks": 20, "selection_samples": 100})
    report = evaluate_dataset(iris, config, out_dir=tmp_path, dtype="float64")
    X, _ = normalise(iris.X, config.normalize)
    stores = report["scale"]["stores"]
    assert [store["fold"] for store in stores] == [0, 1, 2, 3]
    scales = set()
    for store in stores:
        stored = zarr.open_array(str(tmp_path / store["file"]), mode="r")
        landmarks = np.load(tmp_path / "scale" / f"landmarks-fold{store['fold']}.npy")
        assert {f for kernel in store["kernels"] for f in kernel["families"]} == {"RNN", "BI-RNN-AVG"}
        for kernel in store["kernels"]:
            [family] = kernel["families"]
            params = report["families"][family]["chosen"][0]["params"]
            expected = gram(X, X[landmarks], **params)
            assert np.allclose(stored[kernel["index"]] * kernel["scale"], expected, rtol=1e-10, atol=1e-12), family
            assert kernel["kernel"] in report["scale"]["nystrom_error"]
            scales.add(round(kernel["scale"], 6))
    assert len(scales) == 2  # RNN's 1 and BI-RNN-AVG's sigma_v^2: the factor matters


def test_a_landmark_run_reports_its_stages_in_the_order_the_overall_fraction_weighs_them(iris, tmp_path):
    """kernels, validation, blocks, test (from 0, before the first fold's work), report: each
    advances the overall fraction of the job's estimate, which never goes back."""
    from rntk_core.evaluation.config import parse_config
    from rntk_core.evaluation.cost import estimate_cost, overall_fraction
    from rntk_core.evaluation.evaluate import evaluate_dataset

    config = parse_config({"families": ["RNN", "RBF"], "sigma_u": [0.5], "sigma_b": [0.1], "layers": [1],
                           "C": [1.0, 100.0], "landmarks": 20, "selection_samples": 100, "block_rows": 64})
    events: list[tuple[str, int, int]] = []
    evaluate_dataset(iris, config, out_dir=tmp_path, on_progress=lambda *event: events.append(event))
    stages = list(dict.fromkeys(stage for stage, _, _ in events))
    assert stages == ["kernels", "validation", "blocks", "test", "report"], stages
    first_test = next(index for index, (stage, _, _) in enumerate(events) if stage == "test")
    assert events[first_test] == ("test", 0, 4)
    weights = estimate_cost(iris.n_samples, iris.n_steps, config).stage_seconds()
    fractions = [overall_fraction(weights, *event) for event in events]
    assert fractions == sorted(fractions) and fractions[-1] > fractions[0]
