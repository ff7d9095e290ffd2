"""Progress reporting and cancellation: between tiles, between fits and during a libsvm fit."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import rntk_core
from rntk_core.evaluation.cancel import Cancelled
from rntk_core.evaluation.config import EvaluationConfig
from rntk_core.evaluation.evaluate import evaluate_dataset
from rntk_core.evaluation.progress import Progress
from rntk_core.evaluation.solvers.libsvm import KernelModel, fit_svc, run_parallel
from rntk_core.evaluation.solvers.strategy import fit_splits

SMALL = EvaluationConfig(families=["RNN", "RBF"], sigma_u=[0.5], sigma_b=[0.1], layers=[1], C=[1, 100])


class Stop(Exception):
    pass


def test_on_tile_reports_every_tile_and_can_stop_between_tiles():
    x = np.random.default_rng(0).standard_normal((40, 5))
    seen: list[tuple[int, int]] = []
    stats: dict = {}
    rntk_core.gram_grid(x, sigma_u=0.5, sigma_b=0.1, layers=1, memory_budget=100_000,
                        stats=stats, on_tile=lambda done, total: seen.append((done, total)))
    assert len(seen) == stats["tiles_computed"] > 1
    assert seen[-1][0] == seen[-1][1] == len(seen)

    def stop_after_two(done: int, total: int) -> None:
        if done == 2:
            raise Stop
    with pytest.raises(Stop):
        rntk_core.gram_grid(x, sigma_u=0.5, sigma_b=0.1, layers=1, memory_budget=100_000,
                            on_tile=stop_after_two)


def test_evaluation_reports_stages_and_honours_cancel(tmp_path, iris):
    events: list[tuple[str, int, int]] = []
    report = evaluate_dataset(iris, SMALL, on_progress=lambda *event: events.append(event))
    stages = [stage for stage, _, _ in events]
    assert {"kernels", "validation fits", "test folds"} <= set(stages)
    for stage in {"kernels", "validation fits", "test folds"}:
        last = [e for e in events if e[0] == stage][-1]
        assert last[1] == last[2] > 0  # every phase ends complete
    assert report["families"]["RNN"]["test_accuracy"] > 0.9

    cancelled_at: list[str] = []

    def should_cancel() -> bool:
        return any(stage == "validation fits" and done >= 1 for stage, done, _ in cancelled_at)

    with pytest.raises(Cancelled):
        evaluate_dataset(iris, SMALL, out_dir=tmp_path / "out", n_jobs=1,
                         on_progress=lambda *event: cancelled_at.append(event),
                         should_cancel=should_cancel)
    # It stopped right after the first fit: no test fold ran and no report was written.
    assert not any(stage == "test folds" for stage, _, _ in cancelled_at)
    assert not (tmp_path / "out" / "report.json").exists()


def test_gram_artifacts_selected_all_or_none(tmp_path, iris):
    """`grams` picks which recurrent Gram matrices a job's artifacts hold."""
    counts = {}
    for mode in ("selected", "all", "none"):
        report = evaluate_dataset(iris, SMALL, out_dir=tmp_path / mode, grams=mode)
        files = sorted((tmp_path / mode / "gram").glob("*.npy")) if (tmp_path / mode / "gram").exists() else []
        assert len(files) == len(report["grams"])
        counts[mode] = len(files)
        if mode == "all":
            # RNN over 1 sigma pair x 1 depth x CK/NTK: both kernels, chosen or not
            assert {entry["params"]["kind"] for entry in report["grams"]} == {"ck", "ntk"}
            assert any(entry["selected"] for entry in report["grams"])
            x = iris.X / report["x_scale"]
            for entry in report["grams"]:
                expected = rntk_core.gram(x, **entry["params"])
                actual = np.load(tmp_path / mode / entry["file"])
                assert np.linalg.norm(actual - expected) <= 1e-5 * np.linalg.norm(expected)
    assert counts["none"] == 0 < counts["selected"] <= counts["all"] == 2


def _slow_svm_problem() -> tuple[np.ndarray, np.ndarray]:
    """An RBF problem that libsvm needs millions of SMO steps for at C = 1e6 (~5-10 s)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((800, 4))
    y = (x[:, 0] * x[:, 1] + 0.8 * rng.standard_normal(800) > 0).astype(np.int64)
    return np.exp(-0.5 * ((x[:, None] - x[None]) ** 2).sum(-1)), y


def test_run_parallel_abandons_a_running_libsvm_fit_on_cancel():
    kernel, y = _slow_svm_problem()
    finished: list[bool] = []

    def slow_fit():
        fit_svc(kernel, y, kernel[:5], 1e6, max_iter=3_000_000)
        finished.append(True)

    started = time.monotonic()

    def check_cancel() -> None:
        if time.monotonic() - started > 0.3:
            raise Cancelled("cancelled")

    before = set(threading.enumerate())
    with pytest.raises(Cancelled):
        run_parallel([slow_fit], n_jobs=1, check_cancel=check_cancel, poll_seconds=0.1)
    # It returned while libsvm was still fitting, not after the fit ended.
    assert time.monotonic() - started < 2.0
    assert not finished
    # The abandoned fit runs on at the lowest CPU priority (field 19 of /proc/<tid>/stat).
    fitting = [t for t in threading.enumerate() if t not in before and t.name.startswith("svm-fit")]
    assert len(fitting) == 1
    for thread in fitting:
        stat = Path(f"/proc/self/task/{thread.native_id}/stat").read_text()
        assert int(stat.rsplit(")", 1)[1].split()[16]) == 19, thread.name
    assert os.getpriority(os.PRIO_PROCESS, 0) == 0  # the caller's own thread is untouched


def test_cancel_lands_inside_a_libsvm_fit_of_the_evaluation():
    kernel, y = _slow_svm_problem()
    rows = np.arange(len(y))
    model = KernelModel("slow RBF", kernel, max_iter=3_000_000)
    requested = []

    def should_cancel() -> bool:
        requested.append(time.monotonic())
        return len(requested) > 2  # after the bar opened and one poll

    started = time.monotonic()
    with pytest.raises(Cancelled):
        fit_splits({"slow": model}, y, {"validation": (rows, rows[:10], {"slow": [1e6]})}, {},
                   solver="libsvm", progress=Progress(should_cancel=should_cancel))
    assert time.monotonic() - started < 3.0


def test_a_cancel_lands_while_the_report_is_drawn(tmp_path, iris):
    """The report's figures (seconds on large grids) check for a cancel between figures."""
    stages: list[str] = []
    checks_in_report: list[int] = []

    def should_cancel() -> bool:
        if stages and stages[-1] == "report":
            checks_in_report.append(1)
            return True
        return False

    with pytest.raises(Cancelled):
        evaluate_dataset(iris, SMALL, out_dir=tmp_path / "out", on_progress=lambda stage, *_: stages.append(stage),
                         should_cancel=should_cancel)
    assert stages[-1] == "report" and checks_in_report
    assert not (tmp_path / "out" / "report.json").exists()
