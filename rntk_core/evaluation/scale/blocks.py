"""K(X, Z) against the landmarks, in row blocks: the unit of work that scales out.

A block is rows ``[start, stop)`` of X against all M landmarks, for every kernel asked for,
computed by the engine's fused pass (``gram_grid(X_block, Z, pairs=...)``: one sweep gives
every readout, depth and direction of its sigma pairs). Blocks are independent and
idempotent: a block always writes the same values to the same chunk, so a block re-run
after a killed worker replaces its chunk with identical bytes.

:class:`BlockStore` is a zarr array ``(kernels, N, M)`` chunked one block of rows per chunk,
in a folder (the data directory of a cluster is shared storage); :func:`compute_block`
fills one chunk; :func:`compute_all` runs every block in this process, for ``rntk
evaluate`` and tests. A job over many workers sends the same :func:`compute_block` calls
as tasks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

__all__ = ["BlockPlan", "BlockStore", "compute_all", "compute_block", "kernel_rows"]

#: Default rows per block: K(X_block, Z) for M = 4096 landmarks and 48 kernels in float32 is
#: 4096 * 4096 * 48 * 4 bytes = 3 GiB of output per block at most; smaller M, less.
DEFAULT_BLOCK_ROWS = 4096


@dataclass(frozen=True)
class BlockPlan:
    """What every block computes.

    Attributes:
        kernels: the kernels' grid keys (kind, pool, layers, direction, sigma_u, sigma_b).
        layers: depth of the pass (the largest ``layers`` among the kernels).
        sigma_w, sigma_v: the engine's fixed weight scales.
        dtype: the engine's dtype.
        block_rows: rows per block.
    """

    kernels: tuple[tuple, ...]
    layers: int
    sigma_w: float
    sigma_v: float
    dtype: str
    block_rows: int = DEFAULT_BLOCK_ROWS

    def blocks(self, n_rows: int) -> list[tuple[int, int]]:
        return [(start, min(n_rows, start + self.block_rows)) for start in range(0, n_rows, self.block_rows)]

    @property
    def pairs(self) -> list[tuple[float, float]]:
        return list(dict.fromkeys((key[4], key[5]) for key in self.kernels))


def kernel_rows(X: np.ndarray, Z: np.ndarray, plan: BlockPlan, *, lengths: np.ndarray | None = None,
                z_lengths: np.ndarray | None = None, memory_budget: int | None = None) -> np.ndarray:
    """(kernels, n, M) float64: every kernel of ``plan`` between the rows X and landmarks Z."""
    from rntk_core import gram_grid

    grid = gram_grid(X, Z, sigma_w=plan.sigma_w, sigma_v=plan.sigma_v, layers=plan.layers,
                     lengths=lengths, y_lengths=z_lengths, dtype=plan.dtype,
                     memory_budget=memory_budget, pairs=plan.pairs)
    return np.stack([np.asarray(grid[key], np.float64) for key in plan.kernels])


class BlockStore:
    """K(X, Z) for every kernel of a plan, as a zarr array ``(kernels, N, M)`` in ``path``,
    one block of rows per chunk, in the engine's dtype (its precision; half the bytes of
    float64 for the default float32). ``path=None`` holds the same array in memory."""

    def __init__(self, path: Path | None, n_rows: int, n_landmarks: int, plan: BlockPlan, *,
                 create: bool = True) -> None:
        self.path, self.plan = (None if path is None else Path(path)), plan
        shape = (len(plan.kernels), n_rows, n_landmarks)
        if self.path is None:
            self.array = np.full(shape, np.nan, dtype=plan.dtype)
            return
        import zarr

        if create and not (self.path / "zarr.json").exists():
            self.array = zarr.create_array(store=str(self.path), shape=shape, dtype=plan.dtype,
                                           chunks=(1, plan.block_rows, n_landmarks), fill_value=np.nan,
                                           overwrite=False)
        else:
            self.array = zarr.open_array(str(self.path), mode="r+")
            if self.array.shape != shape:
                raise ValueError(f"{self.path} holds a {self.array.shape} array, not {shape}")

    def write(self, start: int, values: np.ndarray) -> None:
        self.array[:, start:start + values.shape[1], :] = values

    def done(self, start: int) -> bool:
        """Whether the block starting at ``start`` was written (its first row holds numbers)."""
        return bool(np.isfinite(self.array[0, start, 0]))

    def rows(self, kernel: int, start: int = 0, stop: int | None = None) -> np.ndarray:
        return np.asarray(self.array[kernel, start:stop, :])


def compute_block(store: BlockStore, X: np.ndarray, Z: np.ndarray, start: int, stop: int, *,
                  lengths: np.ndarray | None = None, z_lengths: np.ndarray | None = None,
                  memory_budget: int | None = None) -> None:
    """Fill one block's chunk: rows ``[start, stop)`` of X (an array or a memory map)."""
    block_lengths = None if lengths is None else np.asarray(lengths[start:stop])
    values = kernel_rows(np.asarray(X[start:stop]), Z, store.plan, lengths=block_lengths,
                         z_lengths=z_lengths, memory_budget=memory_budget)
    store.write(start, values)


def compute_all(store: BlockStore, X: np.ndarray, Z: np.ndarray, *, lengths: np.ndarray | None = None,
                z_lengths: np.ndarray | None = None, memory_budget: int | None = None,
                on_block: Callable[[int, int], None] | None = None,
                check_cancel: Callable[[], None] | None = None) -> int:
    """Every block not yet written, in this process; returns the number computed."""
    blocks = store.plan.blocks(X.shape[0])
    computed = 0
    for number, (start, stop) in enumerate(blocks):
        if check_cancel is not None:
            check_cancel()
        if not store.done(start):
            compute_block(store, X, Z, start, stop, lengths=lengths, z_lengths=z_lengths,
                          memory_budget=memory_budget)
            computed += 1
        if on_block is not None:
            on_block(number + 1, len(blocks))
    return computed

