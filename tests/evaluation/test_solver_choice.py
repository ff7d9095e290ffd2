"""The solver choice of a job: config field, ``--solver``, the JAX and hybrid paths, the report.

The protocol runs on iris (N = 150) with a small grid, so the JAX solver compiles few shapes.
"""

from __future__ import annotations

import pytest

from rntk_core.evaluation.cancel import Cancelled
from rntk_core.evaluation.cli import build_parser, _config
from rntk_core.evaluation.config import ConfigError, EvaluationConfig, parse_config
from rntk_core.evaluation.evaluate import evaluate_dataset
from rntk_core.evaluation.solvers import strategy
from rntk_core.evaluation.solvers.strategy import resolve_solver

GRID = dict(families=["RNN", "RBF"], sigma_u=[0.5], sigma_b=[0.1], layers=[1, 2],
            C=[0.01, 1.0, 1e4, 1e6], rbf_gamma=[0.5, 8.0, 128.0])


@pytest.fixture(scope="module")
def reports(iris):
    return {solver: evaluate_dataset(iris, EvaluationConfig(solver=solver, **GRID))
            for solver in ("libsvm", "jax")}


def test_config_field_and_cli_flag():
    assert EvaluationConfig().solver == "auto"
    with pytest.raises(ConfigError, match="solver"):
        parse_config({"solver": "smo"})
    args = build_parser().parse_args(["evaluate", "data", "--out", "o", "--solver", "jax"])
    assert _config(None, args.solver).solver == "jax"
    args = build_parser().parse_args(["bench-uci", "root", "--out", "o.json", "--solver", "libsvm"])
    assert _config(None, args.solver).solver == "libsvm"
    assert _config(None, None).solver == "auto"
    assert resolve_solver("auto") == "hybrid"  # the tests run on a CPU
    with pytest.raises(SystemExit):
        build_parser().parse_args(["evaluate", "data", "--out", "o", "--solver", "smo"])


def test_jax_solver_gives_libsvm_accuracies_and_reports_every_fit(reports):
    libsvm, jax = reports["libsvm"], reports["jax"]
    assert libsvm["solver"]["used"] == "libsvm" and jax["solver"]["used"] == "jax"
    assert [c["validation_accuracy"] for c in jax["configurations"]] == \
        [c["validation_accuracy"] for c in libsvm["configurations"]]
    for family, result in libsvm["families"].items():
        assert jax["families"][family]["fold_accuracies"] == result["fold_accuracies"]
        assert jax["families"][family]["chosen"] == result["chosen"]
    # Every fit is recorded, with its solver and convergence: 4 recurrent kernels (L 1, 2 x ck,
    # ntk) and 3 gammas, at 4 Cs each.
    validation = [fit for fit in jax["fits"] if fit["split"] == "validation"]
    assert len(validation) == 7 * 4
    assert all(fit["solver"] == "jax" and fit["converged"] and fit["error"] <= 1e-9 for fit in jax["fits"])
    assert jax["solver"]["fits"] == {"jax": len(jax["fits"])} and jax["solver"]["non_converged"] == 0
    assert {fit["split"] for fit in jax["fits"]} == {"validation", "fold0", "fold1", "fold2", "fold3"}


def test_hybrid_refits_what_libsvm_did_not_finish(iris, reports, monkeypatch):
    # A 50-step cap leaves libsvm unconverged on the larger-C fits; those go to the JAX solver.
    monkeypatch.setattr(strategy, "hybrid_iteration_cap", lambda n_train: 50)
    hybrid = evaluate_dataset(iris, EvaluationConfig(solver="auto", **GRID))
    assert hybrid["solver"]["used"] == "hybrid"
    solvers = hybrid["solver"]["fits"]
    assert solvers.get("libsvm", 0) > 0 and solvers.get("jax", 0) > 0
    assert hybrid["non_converged"] == [] and all(fit["converged"] for fit in hybrid["fits"])
    assert [c["validation_accuracy"] for c in hybrid["configurations"]] == \
        [c["validation_accuracy"] for c in reports["libsvm"]["configurations"]]


def test_cancel_lands_inside_the_jax_solve(iris):
    stages: list[str] = []

    def on_progress(stage: str, done: int, total: int) -> None:
        stages.append(stage)

    # Cancel as soon as the JAX solver has reported solver work (not between whole units).
    def should_cancel() -> bool:
        return any(stage == "validation fits" for stage in stages[1:]) and stages.count("validation fits") > 1

    with pytest.raises(Cancelled):
        evaluate_dataset(iris, EvaluationConfig(solver="jax", **GRID), on_progress=on_progress,
                         should_cancel=should_cancel)
    assert "test folds" not in stages
