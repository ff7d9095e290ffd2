"""A dense job's recurrent grids as row blocks, so that grids too slow for one worker are
spread over the workers by the landmark path's machinery (:mod:`.blocks`, a
:class:`~.blocks.BlockRunner`).

One :class:`~.blocks.BlockStore` per grid source (sigma_w, step order, dtype) holds every
kernel of that source the plan reads: a zarr array ``(kernels, N, N)``, one chunk per
(kernel, block of rows), against every row as a column (``Z = X``). The plan is symmetric,
so a block computes only its columns from its own first row on, cut into the tiles of the
whole K(X, X), and a kernel is read back with its lower triangle mirrored, as the engine's
K(X, X) is: the matrices are bit for bit those of :func:`..kernels.compute_grids`. :class:`StoredGrid` hands them to a
:class:`~..kernels.KernelStore` one kernel at a time, read when a fit asks for it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from rntk_core.api import GridKey

from ..kernels import KernelStore, Placement, RecurrentKernel, place_grids
from ..progress import Counter
from .blocks import BlockInputs, BlockPlan, BlockRunner, BlockStore, InProcessRunner, input_files, run_blocks, store_job

__all__ = ["BLOCK_BYTES", "DenseBlocks", "StoredGrid", "dense_block_rows"]

#: What one block holds in memory at most, about: the engine's readouts of its rows and the
#: stacked kernels (float64) against all N columns.
BLOCK_BYTES = 1 << 30


def dense_block_rows(n_samples: int, kernels: int, layers: int, pairs: int, requested: int) -> int:
    """Rows per block: ``requested`` (the config's ``block_rows``), fewer when a block against
    all N columns would hold more than :data:`BLOCK_BYTES`."""
    per_row = n_samples * (8 * kernels + 2 * 4 * layers * pairs * 8)
    return max(1, min(int(requested), BLOCK_BYTES // max(per_row, 1)))


class StoredGrid(Mapping):
    """A grid read from its store: ``grid[key]`` is that kernel's (N, N) matrix, read then."""

    def __init__(self, store: BlockStore) -> None:
        self.store = store
        self._index = {tuple(key): index for index, key in enumerate(store.plan.kernels)}

    def __getitem__(self, key: Any) -> np.ndarray:
        try:
            index = self._index[tuple(key)]
        except (KeyError, TypeError):
            raise KeyError(key) from None
        return self.store.kernel(index)

    def __iter__(self) -> Iterator[GridKey]:
        return (GridKey(*key) for key in self.store.plan.kernels)

    def __len__(self) -> int:
        return len(self._index)


class DenseBlocks:
    """:func:`..kernels.build_plan`'s ``grids``: the recurrent grids computed as row blocks by
    ``runner`` into stores in ``work_dir`` (in memory without one), then read from there.
    A runner that fans the blocks out raises :class:`~.blocks.FannedOut`; called again
    (resumed), the stores are found with their blocks written. ``summary``: the report's
    ``scale.blocks``, once the blocks ran."""

    def __init__(self, runner: BlockRunner | None, work_dir: Path | None, block_rows: int,
                 report: Callable[[str, int, int], None]) -> None:
        self.runner = runner or InProcessRunner()
        self.work_dir = Path(work_dir) if work_dir is not None else None
        self.block_rows, self.report = int(block_rows), report
        self.summary: dict[str, Any] | None = None

    def __call__(self, X: np.ndarray, lengths: np.ndarray | None, kernels: Sequence[RecurrentKernel], config: Any,
                 progress: Counter | None = None, memory_budget: int | None = None, placement: Placement = "host",
                 grid_memory: int | None = None) -> KernelStore:
        sources: dict[tuple, list[tuple]] = {}
        for kernel in kernels:
            keys = sources.setdefault(kernel.grid_source(), [])
            if tuple(kernel.key) not in keys:
                keys.append(tuple(kernel.key))
        n = X.shape[0]
        pairs = len(set(config.sigma_u)) * len(set(config.sigma_b))
        rows = dense_block_rows(n, max(len(keys) for keys in sources.values()), max(config.layers), pairs,
                                self.block_rows)
        inputs = BlockInputs(X, lengths, memory_budget)
        files = input_files(self.runner, self.work_dir, inputs)
        columns = np.arange(n)
        jobs = {}
        for number, ((sigma_w, order, dtype), keys) in enumerate(sources.items()):
            plan = BlockPlan(kernels=tuple(keys), layers=max(key[2] for key in keys), sigma_w=sigma_w, sigma_v=1.0,
                             dtype=dtype, block_rows=rows, symmetric=True)
            path = self.work_dir / f"grid-{number}.zarr" if self.work_dir is not None else None
            jobs[(sigma_w, order, dtype)] = store_job(path, n, columns, plan, order, files=files,
                                                      landmarks_file="columns.npy")
        check = progress.check if progress is not None else None
        self.summary = {"rows_per_block": rows,
                        **run_blocks(self.runner, jobs.values(), inputs, report=self.report, check_cancel=check)}
        for _ in jobs if progress is not None else ():
            progress.update()
        where, _ = place_grids(n, kernels, config, placement, grid_memory)  # one kernel is read at a time
        return KernelStore({source: StoredGrid(job.store) for source, job in jobs.items()}, where)
