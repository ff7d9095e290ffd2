"""Kernels kept on the device (``placement="device"``) give the host path's answers.

On this CPU backend the "device" is host memory, but the code path is the one a GPU runs:
grids from ``gram_grid(output="device")``, JAX kernels, the solver's device gather and its
device predictions. Grids are small (iris, ecoli, one variable-length .ts set) so few shapes
compile.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rntk_core.evaluation.config import EvaluationConfig
from rntk_core.evaluation.datasets import load_dataset
from rntk_core.evaluation.evaluate import evaluate_dataset
from rntk_core.evaluation.kernels import (
    ChunkedKernelStore,
    build_plan,
    compute_grids,
    grid_bytes,
    grid_chunks,
    pair_bytes,
    recurrent_candidates,
    resolve_placement,
)
from rntk_core.evaluation.protocol import FamilyOutcome, normalise, resolve_splits, wanted_fits
from rntk_core.evaluation.report.assemble import write_grams
from rntk_core.evaluation.solvers import strategy
from rntk_core.evaluation.solvers.fit import FitCache
from rntk_core.evaluation.solvers.jax_svm import KernelTask, SvmTask, fit_predict_many, gather_blocks
from rntk_core.evaluation.solvers.libsvm import slice_kernel
from rntk_core.evaluation.solvers.strategy import fit_splits
from tests.helpers import TS_DATA, UCI

GRID = dict(families=["RNN", "BI-RNN-AVG", "RBF"], sigma_u=[0.5], sigma_b=[0.1], layers=[1, 2],
            C=[0.01, 1.0, 1e4], rbf_gamma=[0.5, 8.0])


def rbf_kernel(seed: int, n: int, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    X = rng.normal(size=(n, 4)) + 0.8 * np.eye(4)[y]
    K = np.exp(-((X[:, None, :] - X[None, :, :]) ** 2).sum(-1))
    return K.astype(dtype), y


def test_device_gather_equals_host_slicing_of_padded_batches():
    K, _ = rbf_kernel(0, 50)
    rng = np.random.default_rng(1)
    sizes = [17, 40, 3, 32]
    index = np.zeros((len(sizes), 40), np.int64)
    mask = np.zeros((len(sizes), 40))
    for b, n in enumerate(sizes):
        index[b, :n] = rng.choice(50, n, replace=False)
        mask[b, :n] = 1.0
    for source in (K, jnp.asarray(K)):  # NumPy and a float32 device array
        blocks = gather_blocks(source, index, mask)
        assert blocks.dtype == np.float64
        for b, n in enumerate(sizes):
            expected = np.zeros((40, 40))
            expected[:n, :n] = K[np.ix_(index[b, :n], index[b, :n])]
            np.testing.assert_array_equal(blocks[b], expected)


def test_full_kernel_tasks_give_the_sliced_tasks_fits():
    """Several tasks on two shared kernels (so batches mix sources), JAX float32 and NumPy
    float64, against the same fits on host slices."""
    K32, y = rbf_kernel(2, 90)
    K64, _ = rbf_kernel(3, 90, np.float64)
    rng = np.random.default_rng(4)
    splits = [np.sort(rng.permutation(90)[:n]) for n in (60, 45, 70)]
    Cs = [0.01, 1.0, 1e4]
    full, sliced = [], []
    for kernel, host in ((jnp.asarray(K32), K32), (K64, K64)):
        for train in splits:
            evaluate = np.setdiff1d(np.arange(90), train)
            full.append(KernelTask(kernel, y[train], train, evaluate, Cs))
            k_train, k_evaluate = slice_kernel(host, train, evaluate)
            sliced.append(SvmTask(k_train, y[train], k_evaluate, Cs))
    on_device = fit_predict_many(full)
    on_host = fit_predict_many(sliced)
    for a, b in zip(on_device, on_host):
        for C in Cs:
            assert a[C].converged and b[C].converged
            np.testing.assert_array_equal(a[C].predictions, b[C].predictions)
            assert a[C].iterations == b[C].iterations
            np.testing.assert_allclose(a[C].objectives, b[C].objectives, rtol=1e-12)


def test_placement_auto_and_its_rule():
    assert jax.default_backend() == "cpu"
    assert resolve_placement("auto", 10) == "host"  # the tests' backend
    assert resolve_placement("device", 10) == "device" and resolve_placement("host", 10) == "host"
    assert resolve_placement("auto", 100, backend="gpu", free_bytes=200) == "device"
    assert resolve_placement("auto", 101, backend="gpu", free_bytes=200) == "host"
    assert resolve_placement("auto", 100, backend="gpu", free_bytes=0) == "host"
    with pytest.raises(ValueError, match="placement"):
        resolve_placement("gpu", 1)
    config = EvaluationConfig(sigma_u=[0.5, 1.0], sigma_b=[0.1], layers=[1, 3])
    kernels = [c.model for c in recurrent_candidates("RNN", config, 4)]
    kernels += [c.model for c in recurrent_candidates("RNN", config, 4, "float64")]
    # 2 directions x 4 readouts x L=3 x 2 pairs x N^2, float32 and float64 grids
    assert grid_bytes(10, kernels, config) == 2 * 4 * 3 * 2 * 100 * (4 + 8)


@pytest.fixture(scope="module")
def iris_reports(iris):
    return {placement: evaluate_dataset(iris, EvaluationConfig(solver="jax", **GRID), placement=placement)
            for placement in ("host", "device", "auto")}


def same_results(a: dict, b: dict) -> None:
    assert [c["validation_accuracy"] for c in a["configurations"]] == \
        [c["validation_accuracy"] for c in b["configurations"]]
    for family, result in a["families"].items():
        assert b["families"][family]["fold_accuracies"] == result["fold_accuracies"], family
        assert b["families"][family]["test_accuracy"] == result["test_accuracy"], family
        assert b["families"][family]["chosen"] == result["chosen"], family


def test_libsvm_and_the_hybrid_fit_device_kernels(iris, monkeypatch):
    """libsvm threads take device kernels to the host (one C per thread, a shared slice); the
    hybrid's JAX refits (a 50-step cap forces some) then use them where they are."""
    monkeypatch.setattr(strategy, "hybrid_iteration_cap", lambda n_train: 50)
    for solver in ("libsvm", "auto"):
        reports = [evaluate_dataset(iris, EvaluationConfig(solver=solver, **GRID), placement=placement)
                   for placement in ("host", "device")]
        assert reports[1]["solver"]["placement"] == "device"
        same_results(*reports)
    assert reports[1]["solver"]["fits"].get("jax", 0) > 0


def test_iris_device_placement_gives_the_host_results_and_is_recorded(iris_reports):
    host, device, auto = iris_reports["host"], iris_reports["device"], iris_reports["auto"]
    assert host["solver"]["placement"] == "host" and device["solver"]["placement"] == "device"
    assert auto["solver"]["placement"] == "host"  # auto on the CPU backend
    same_results(host, device)
    same_results(host, auto)
    assert all(fit["solver"] == "jax" and fit["converged"] for fit in device["fits"])
    assert len(device["fits"]) == len(host["fits"])


def plan_and_fits(dataset, placement: str, families: list[str], grid: dict):
    config = EvaluationConfig(solver="jax", **{**grid, "families": families})
    X, _ = normalise(dataset.X, config.normalize)
    plan = build_plan(families, X, dataset.lengths, config, placement=placement)
    splits, _ = resolve_splits(dataset, config.protocol, config.seed)
    train, test = splits.folds[0]
    wanted = wanted_fits([c for name in families for c in plan.candidates[name]])
    cache: FitCache = {}
    fit_splits(plan.models, dataset.y, {"fold0": (train, test, wanted)}, cache, solver="jax")
    return plan, cache


@pytest.mark.parametrize("source, families", [
    ("ecoli", ["RNN", "BI-RNN"]),
    ("PickupGestureWiimoteZ", ["RNN-AVG"]),  # unequal lengths
])
def test_device_placement_gives_the_host_predictions(source, families):
    dataset = load_dataset(UCI / source if source == "ecoli" else TS_DATA / f"{source}.zip")
    grid = dict(sigma_u=[0.5], sigma_b=[0.1], layers=[2], C=[1.0, 1e4])
    host_plan, host = plan_and_fits(dataset, "host", families, grid)
    device_plan, device = plan_and_fits(dataset, "device", families, grid)
    assert host_plan.placement == "host" and device_plan.placement == "device"
    for key, model in device_plan.models.items():
        assert isinstance(model.kernel(), jax.Array)
        assert isinstance(host_plan.models[key].kernel(), np.ndarray)
    assert set(host) == set(device) and len(host) == 2 * len(host_plan.models)
    for key, fit in host.items():
        assert fit.converged and device[key].converged
        np.testing.assert_array_equal(device[key].predictions, fit.predictions, err_msg=str(key))


def test_device_kernels_and_gram_files_equal_the_host_ones(iris, tmp_path):
    """bi sums and sigma_v scaling on the device match the host's; write_grams copies once."""
    config = EvaluationConfig(**{**GRID, "families": ["BI-RNN-AVG"]})
    X, _ = normalise(iris.X, config.normalize)
    host = build_plan(["BI-RNN-AVG"], X, None, config, placement="host")
    device = build_plan(["BI-RNN-AVG"], X, None, config, placement="device")
    for key, model in device.models.items():
        assert key.direction == "bi" and key.sigma_v != 1.0
        np.testing.assert_array_equal(np.asarray(model.kernel()), host.models[key].kernel())
    outcomes = {"BI-RNN-AVG": FamilyOutcome([0.0] * len(device.candidates["BI-RNN-AVG"]), [0])}
    entries, first = write_grams(device, outcomes, tmp_path, 1.0, False)
    saved = np.load(tmp_path / entries[0]["file"])
    assert isinstance(first, np.ndarray)
    np.testing.assert_array_equal(saved, host.store.kernel(device.candidates["BI-RNN-AVG"][0].model))


def test_grid_chunks_rule():
    config = EvaluationConfig(sigma_u=[0.25, 0.5], sigma_b=[0.001, 0.1], layers=[1, 2])
    kernels = [c.model for c in recurrent_candidates("RNN-P", config, 4)]
    kernels += [c.model for c in recurrent_candidates("RNN", config, 4, "float64")]
    one = pair_bytes(10, 2, "float32")
    assert one == 2 * 4 * 2 * 100 * 4
    whole = grid_bytes(10, kernels, config)
    assert whole == 4 * one * 3  # float32 + float64 (twice the bytes)
    assert grid_chunks(10, kernels, config, whole) is None
    assert grid_chunks(10, kernels, config, 0) is None  # unknown budget: no chunks
    chunks = grid_chunks(10, kernels, config, 2 * one)
    assert [(chunk.source[2], len(chunk.pairs)) for chunk in chunks] == \
        [("float32", 2), ("float32", 2), ("float64", 1), ("float64", 1), ("float64", 1), ("float64", 1)]
    assert chunks[0].pairs == ((0.25, 0.001), (0.25, 0.1)) and chunks[1].pairs == ((0.5, 0.001), (0.5, 0.1))
    # A budget below one pair still gives one pair per chunk (placement="auto" then picks the host).
    assert {len(chunk.pairs) for chunk in grid_chunks(10, kernels, config, 1)} == {1}


def test_a_chunked_store_holds_one_chunk_and_hands_out_arrays_of_their_own(iris):
    config = EvaluationConfig(sigma_u=[0.25, 0.5], sigma_b=[0.1], layers=[1])
    X, _ = normalise(iris.X, config.normalize)
    kernels = list(dict.fromkeys(c.model for c in recurrent_candidates("RNN", config, 4)))
    eager = compute_grids(X, None, kernels, config, placement="device")
    store = compute_grids(X, None, kernels, config, placement="device",
                          grid_memory=pair_bytes(150, 1, "float32"))
    assert isinstance(store, ChunkedKernelStore) and store.computed == 0  # nothing up front
    first, second = (k for k in kernels if k.kind == "ntk")
    assert store.residency(first) != store.residency(second) and eager.residency(first) == 0
    a = store.kernel(first)
    b = store.kernel(second)  # drops the first chunk
    assert store.computed == 2 and store._held[0] == store.residency(second) - 1
    np.testing.assert_array_equal(np.asarray(a), np.asarray(eager.kernel(first)))  # a outlived its chunk
    np.testing.assert_array_equal(np.asarray(b), np.asarray(eager.kernel(second)))
    store.kernel(second)
    assert store.computed == 2
    store.release()
    store.kernel(second)
    assert store.describe() == {"chunks": 2, "pairs_per_chunk": 1, "computed": 3,
                                "seconds": store.describe()["seconds"]}


@pytest.mark.parametrize("solver", ["jax", "libsvm"])
def test_chunked_device_grids_give_the_host_results(iris, solver, tmp_path):
    """Grids over a tiny grid_memory: one sigma pair per chunk, each computed, fitted and
    dropped, for validation, the test folds and the Gram files; the host's results."""
    grid = {**GRID, "sigma_u": [0.25, 0.5], "sigma_b": [0.001, 0.1], "layers": [1]}
    config = EvaluationConfig(solver=solver, **grid)
    host = evaluate_dataset(iris, config, placement="host", out_dir=tmp_path / "host")
    chunked = evaluate_dataset(iris, config, placement="device", out_dir=tmp_path / "device",
                               grid_memory=pair_bytes(150, 1, "float32"))
    same_results(host, chunked)
    chunks = chunked["solver"]["grid_chunks"]
    assert chunked["solver"]["placement"] == "device" and "grid_chunks" not in host["solver"]
    assert chunks["chunks"] == 4 and chunks["pairs_per_chunk"] == 1
    # Validation computes every chunk once; the test folds and the Gram files at most once each
    # (libsvm threads may race at a chunk boundary and compute a chunk again: not counted).
    assert 4 < chunks["computed"] and (solver != "jax" or chunks["computed"] <= 12)
    assert [g["file"] for g in chunked["grams"]] == [g["file"] for g in host["grams"]]
    for entry in host["grams"]:
        np.testing.assert_array_equal(np.load(tmp_path / "device" / entry["file"]),
                                      np.load(tmp_path / "host" / entry["file"]))


BASELINES = dict(families=["RBF", "POLY", "MLP"], C=[0.01, 1.0, 1e4], mlp_C=[1.0, 1e4], rbf_gamma=[0.5, 8.0],
                 poly_degree=[2], poly_scale=[1.0], poly_offset=[1.0], mlp_layers=[1, 2])


def test_baseline_kernels_follow_the_placement(iris):
    """RBF, POLY and MLP kernels on the device are float64 JAX arrays equal to the host's."""
    config = EvaluationConfig(**BASELINES)
    X, _ = normalise(iris.X, config.normalize)
    host = build_plan(BASELINES["families"], X, None, config, placement="host")
    device = build_plan(BASELINES["families"], X, None, config, placement="device")
    assert (host.placement, device.placement) == ("host", "device")
    assert build_plan(["RBF"], X, None, config).placement == "host"  # auto on the CPU backend
    for key, model in device.models.items():
        kernel = model.kernel()
        assert isinstance(kernel, jax.Array) and kernel.dtype == np.float64, key
        np.testing.assert_allclose(np.asarray(kernel), host.models[key].kernel(), rtol=1e-13, atol=1e-15,
                                   err_msg=str(key))


@pytest.mark.parametrize("solver", ["jax", "auto"])
def test_baselines_on_the_device_give_the_host_results(iris, solver):
    config = EvaluationConfig(solver=solver, **BASELINES)
    host, device = (evaluate_dataset(iris, config, placement=placement) for placement in ("host", "device"))
    assert device["solver"]["placement"] == "device"
    same_results(host, device)


def test_cli_placement_and_grid_memory(tmp_path):
    """``rntk evaluate --placement device --grid-memory-mb 1``: iris's 4-pair L=2 grid
    (5.8 MB) goes in 1-pair chunks (1.4 MB each: at least one pair per chunk)."""
    import json

    from rntk_core.evaluation import cli

    config = tmp_path / "config.json"
    config.write_text(json.dumps({"families": ["RNN"], "C": [1.0, 1e4], "kinds": ["ntk"]}))
    out = tmp_path / "out"
    assert cli.main(["evaluate", str(UCI / "iris"), "--out", str(out), "--config", str(config), "--quiet",
                     "--solver", "jax", "--placement", "device", "--grid-memory-mb", "1"]) == 0
    solver = json.loads((out / "report.json").read_text())["solver"]
    assert solver["placement"] == "device"
    assert solver["grid_chunks"]["chunks"] == 4 and solver["grid_chunks"]["pairs_per_chunk"] == 1
    args = cli.build_parser().parse_args(["bench-uci", "root", "--out", "o.json"])
    assert cli._placement(args) == {"placement": "auto", "grid_memory": None}
