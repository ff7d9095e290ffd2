"""The `rntk` console script, run as a real subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

import rntk_core

RNTK = [sys.executable, "-m", "rntk_core.evaluation.cli"]


def test_gram_command_writes_the_kernel(tmp_path: Path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 5, 2))
    np.savez(tmp_path / "x.npz", X=x, lengths=np.array([5, 3, 4, 5, 1, 2]))
    out = tmp_path / "k.npy"
    run = subprocess.run(
        RNTK + ["gram", str(tmp_path / "x.npz"), "--out", str(out), "--kind", "ck",
                "--pool", "avg", "--layers", "2", "--direction", "bi", "--sigma-b", "0.1"],
        capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr
    expected = rntk_core.gram(x, kind="ck", pool="avg", layers=2, direction="bi",
                              sigma_b=0.1, lengths=[5, 3, 4, 5, 1, 2])
    np.testing.assert_allclose(np.load(out), expected, rtol=1e-6)


def test_gram_command_reports_bad_input_in_one_line(tmp_path: Path):
    np.save(tmp_path / "x.npy", np.array([[1.0, np.nan]]))
    run = subprocess.run(RNTK + ["gram", str(tmp_path / "x.npy"), "--out", str(tmp_path / "k.npy")],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 2
    assert "NaN" in run.stderr and "Traceback" not in run.stderr


def test_evaluate_command_runs_the_landmark_path(tmp_path: Path):
    """``rntk evaluate`` with ``landmarks`` finished its 10^6-series run and then failed on the
    report's missing ``non_converged`` (left out of the JSON when empty): exit 1 after an hour."""
    import json

    from benchmarks.sequences import write_archive

    data = write_archive(tmp_path / "waves.zip", 600, 16, 3)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"families": ["RNN"], "kinds": ["ntk"], "sigma_u": [0.5], "sigma_b": [0.1],
                                  "layers": [1], "C": [1.0], "landmarks": 32, "block_rows": 200}))
    run = subprocess.run(RNTK + ["evaluate", str(data), "--out", str(tmp_path / "out"), "--config", str(config),
                                 "--quiet"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["scale"]["method"] == "landmarks" and report["scale"]["blocks"]["total"] == 3
    assert "RNN: test" in run.stdout and "wrote" in run.stdout
