"""A dense job's recurrent grids as row blocks (rntk_core.evaluation.scale.dense): the stores
hold the matrices compute_grids gives, and a job whose grids ran as blocks, in this process
or in "other processes" from the files beside the stores, reports what the one-pass job does."""

from __future__ import annotations

import numpy as np
import pytest

from rntk_core.evaluation.config import parse_config
from rntk_core.evaluation.datasets import Dataset
from rntk_core.evaluation.evaluate import RunOptions, evaluate
from rntk_core.evaluation.kernels import compute_grids, recurrent_candidates
from rntk_core.evaluation.progress import Progress
from rntk_core.evaluation.protocol import normalise
from rntk_core.evaluation.scale.blocks import FannedOut, InProcessRunner, compute_stored_block, run_here
from rntk_core.evaluation.scale.dense import DenseBlocks

#: Two grid sources (RNN-P's user order is a pass of its own), bi and avg kernels, RBF beside
#: them; 16-row blocks: iris's 150 rows make 10 per source.
GRID = {"families": ["RNN", "RNN-P", "BI-RNN-AVG", "RBF"], "sigma_u": [0.5, 1.0], "sigma_b": [0.0, 0.1],
        "layers": [1, 2], "C": [1.0, 100.0], "rbf_gamma": [1.0], "rnnp_orders": [[1, 0, 3, 2]], "block_rows": 16}


def _outcome(report) -> tuple:
    """What a report decides: every configuration's score, each family's choice and accuracies."""
    families = {name: family.model_dump(mode="json", include={"test_accuracy", "fold_accuracies",
                                                              "validation_accuracy", "chosen"})
                for name, family in report.families.items()}
    return [c.model_dump(mode="json") for c in report.configurations], families


def _kernels(config, n_steps: int, dtype: str):
    return list(dict.fromkeys(c.model for family in ("RNN", "RNN-P", "BI-RNN-AVG") if family in config.families
                              for c in recurrent_candidates(family, config, n_steps, dtype)))


def _unequal(n: int = 70, steps: int = 9, features: int = 2, seed: int = 4) -> Dataset:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    lengths = rng.integers(4, steps + 1, n)
    X = np.zeros((n, steps, features))
    for i in range(n):
        t = np.linspace(0, 2 * np.pi, lengths[i])
        X[i, steps - lengths[i]:, :] = (np.sin((y[i] + 1) * t)[:, None]
                                        + 0.3 * rng.normal(size=(lengths[i], features)))
    return Dataset(X, y, np.arange(2), "unequal", "npz", lengths=lengths)


@pytest.mark.parametrize("which, dtype", [("iris", "float32"), ("unequal lengths, 2 features", "float32"),
                                          ("unequal lengths, 2 features", "float64")])
def test_stored_grids_are_the_engines_k_x_x(which, dtype, iris, tmp_path):
    """Every kernel read from the blocks' stores (upper triangles, mirrored) is bit for bit
    compute_grids' matrix, in float32 as the service runs it, and in float64. The blocks
    are cut into the whole's tiles: cut into their own, smaller ones, values of the last
    blocks here differed in the last bit."""
    dataset = iris if which == "iris" else _unequal()
    config = parse_config({**GRID, "families": ["RNN", "BI-RNN-AVG"] if which != "iris" else GRID["families"]})
    X, _ = normalise(dataset.X, config.normalize)
    kernels = _kernels(config, dataset.n_steps, dtype)
    expected = compute_grids(X, dataset.lengths, kernels, config, placement="host")
    blocks = DenseBlocks(InProcessRunner(), tmp_path / "work", config.block_rows, lambda *_: None)
    stored = blocks(X, dataset.lengths, kernels, config)
    n_blocks = -(-dataset.n_samples // 16)
    assert blocks.summary["total"] == n_blocks * len(expected.grids)
    assert sorted(path.name for path in (tmp_path / "work").glob("*.zarr")) == \
        [f"grid-{k}.zarr" for k in range(len(expected.grids))]
    for kernel in kernels:
        matrix = stored.kernel(kernel)
        assert matrix.dtype == np.dtype(dtype) and matrix.shape == (dataset.n_samples,) * 2
        assert np.array_equal(matrix, expected.kernel(kernel)), kernel.name()


def test_dense_blocks_in_this_process_report_what_one_pass_reports(iris, tmp_path):
    config = parse_config(GRID)
    one_pass = evaluate(iris, config)
    stages = []
    run = RunOptions(dense_blocks=True, block_runner=InProcessRunner(), work_dir=tmp_path / "work",
                     progress=Progress(on_progress=lambda *step: stages.append(step)))
    blocked = evaluate(iris, config, out_dir=tmp_path / "out", run=run)
    assert _outcome(blocked) == _outcome(one_pass)
    blocks = blocked.scale.blocks
    assert blocked.scale.method == "dense" and one_pass.scale.blocks.total == 0
    assert blocks.total == 2 * 10 and blocks.rows_per_block == 16
    assert sum(blocks.by_worker.values()) == blocks.total
    counts = [(done, total) for stage, done, total in stages if stage == "blocks"]
    assert counts[-1] == (20, 20) and [done for done, _ in counts] == sorted(done for done, _ in counts)


class _ElsewhereOnce:
    """A runner like worker.fanout.ChordRunner: the first call hands the missing blocks to
    "other processes" (FannedOut); the resumed call computes whatever is still missing here."""

    needs_files = True

    def __init__(self) -> None:
        self.sent: list[tuple] = []

    def run(self, jobs, inputs, *, on_block=None, check_cancel=None) -> dict[str, int]:
        if not self.sent:
            self.sent = [(job.store.path, start) for job in jobs for start, _ in job.store.missing()]
            raise FannedOut(len(self.sent))
        here = run_here(jobs, inputs, on_block=on_block, check_cancel=check_cancel)
        return {"elsewhere": len(self.sent), **({"here": here} if here else {})}


def test_dense_blocks_sent_elsewhere_resume_to_the_one_pass_report(iris, tmp_path):
    """The first call writes the inputs and empty stores and fans out; each block computed
    from the files alone (as rntk.block does); the second call reads the stores and reports."""
    config = parse_config(GRID)
    one_pass = evaluate(iris, config)
    runner = _ElsewhereOnce()
    run = RunOptions(dense_blocks=True, block_runner=runner, work_dir=tmp_path / "work")
    with pytest.raises(FannedOut):
        evaluate(iris, config, run=run)
    assert len(runner.sent) == 20
    assert {"inputs.npy", "columns.npy"} <= {path.name for path in (tmp_path / "work").iterdir()}
    for path, start in runner.sent:
        assert compute_stored_block(path, start)
        assert not compute_stored_block(path, start)  # idempotent: a redelivered block does nothing
    resumed = evaluate(iris, config, run=run)
    assert _outcome(resumed) == _outcome(one_pass)
    assert resumed.scale.blocks.by_worker == {"elsewhere": 20}
