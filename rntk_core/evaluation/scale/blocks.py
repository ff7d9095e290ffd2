"""K(X, Z) against the landmarks, in row blocks: the unit of work that scales out.

A block is rows ``[start, stop)`` of X against all M landmarks, for every kernel asked for,
computed by the engine's fused pass (``gram_grid(X_block, Z, pairs=...)``: one sweep gives
every readout, depth and direction of its sigma pairs). Blocks are independent and
idempotent: a block always writes the same values to the same chunk, so a block re-run
after a killed worker replaces its chunk with identical bytes.

:class:`BlockStore` is a zarr array ``(kernels, N, M)`` chunked one block of rows per chunk,
in a folder (the data directory of a cluster is shared storage); :func:`compute_block`
fills one chunk; :func:`compute_all` runs every block in this process, for ``rntk
evaluate`` and tests.

A job over many workers runs the same blocks as tasks (``worker.fanout``): the store's
attributes name its inputs (:func:`describe`: the normalised X, the lengths and the landmark
rows as ``.npy`` files beside the store, and the input order), so
:func:`compute_stored_block` needs only the store's path and a row offset, and memory-maps
the rows it reads. A :class:`BlockRunner` decides where the blocks run: here
(:class:`InProcessRunner`), or elsewhere, raising :class:`FannedOut` to end the calling
process's part until the blocks are done.

A dense job's grids use the same stores with every row a column (``Z = X``, a
:attr:`BlockPlan.symmetric` plan, :mod:`.dense`): a block then computes its rows only from
its own first row on, and a reader mirrors the upper triangle, as the engine does for K(X, X).
"""

from __future__ import annotations

import os
import socket
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol, Sequence

import numpy as np

__all__ = ["BlockInputs", "BlockPlan", "BlockRunner", "BlockStore", "FannedOut", "InProcessRunner", "InputFiles",
           "StoreJob", "compute_all", "compute_block", "compute_stored_block", "describe", "input_files",
           "kernel_rows", "run_blocks", "run_here", "save_once", "store_job"]

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
        symmetric: K(X, X) (the columns are the rows): a block computes its columns from its
            first row on, the rest is the mirror of blocks above it (:meth:`BlockStore.kernel`).
    """

    kernels: tuple[tuple, ...]
    layers: int
    sigma_w: float
    sigma_v: float
    dtype: str
    block_rows: int = DEFAULT_BLOCK_ROWS
    symmetric: bool = False

    def blocks(self, n_rows: int) -> list[tuple[int, int]]:
        return [(start, min(n_rows, start + self.block_rows)) for start in range(0, n_rows, self.block_rows)]

    def first_column(self, start: int) -> int:
        """The first column the block starting at row ``start`` computes."""
        return start if self.symmetric else 0

    @property
    def pairs(self) -> list[tuple[float, float]]:
        return list(dict.fromkeys((key[4], key[5]) for key in self.kernels))

    @property
    def directions(self) -> list[str]:
        """The kernels' directions: a plan of forward kernels only costs one sweep, not two."""
        return list(dict.fromkeys(key[3] for key in self.kernels))


def kernel_rows(X: np.ndarray, Z: np.ndarray, plan: BlockPlan, *, lengths: np.ndarray | None = None,
                z_lengths: np.ndarray | None = None, memory_budget: int | None = None,
                tiles_as: tuple[int, int] | None = None) -> np.ndarray:
    """(kernels, n, M) float64: every kernel of ``plan`` between the rows X and landmarks Z
    (``tiles_as``: as :func:`rntk_core.gram_grid`'s).

    On an accelerator the tiles are assembled on the device and only the plan's kernels come
    back: the host output would fetch every readout of every tile, one tile at a time. On a
    CPU the two are the same memory and the host output is as fast (values identical)."""
    import jax

    from rntk_core import gram_grid

    output = "host" if jax.default_backend() == "cpu" else "device"
    grid = gram_grid(X, Z, sigma_w=plan.sigma_w, sigma_v=plan.sigma_v, layers=plan.layers,
                     lengths=lengths, y_lengths=z_lengths, dtype=plan.dtype,
                     memory_budget=memory_budget, pairs=plan.pairs, tiles_as=tiles_as,
                     directions=plan.directions, output=output)
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

    @classmethod
    def open(cls, path: Path) -> "BlockStore":
        """An existing store, its plan read from its attributes (see :func:`describe`)."""
        import zarr

        array = zarr.open_array(str(path), mode="r+")
        plan = dict(array.attrs["plan"])
        plan["kernels"] = tuple(tuple(key) for key in plan["kernels"])
        store = cls.__new__(cls)
        store.path, store.plan, store.array = Path(path), BlockPlan(**plan), array
        return store

    @property
    def n_rows(self) -> int:
        return int(self.array.shape[1])

    def blocks_done(self) -> int:
        """How many blocks are written (a block writes one chunk per kernel, atomically)."""
        if self.path is None:
            return sum(self.done(start) for start, _ in self.plan.blocks(self.n_rows))
        return int(self.array.nchunks_initialized) // len(self.plan.kernels)

    def missing(self) -> list[tuple[int, int]]:
        """The blocks not written yet, as (start, stop)."""
        return [(start, stop) for start, stop in self.plan.blocks(self.n_rows) if not self.done(start)]

    def write(self, start: int, values: np.ndarray) -> None:
        column = self.plan.first_column(start)
        self.array[:, start:start + values.shape[1], column:column + values.shape[2]] = values

    def done(self, start: int) -> bool:
        """Whether the block starting at ``start`` was written (its first computed value is a number)."""
        return bool(np.isfinite(self.array[0, start, self.plan.first_column(start)]))

    def rows(self, kernel: int, start: int = 0, stop: int | None = None) -> np.ndarray:
        return np.asarray(self.array[kernel, start:stop, :])

    def kernel(self, kernel: int) -> np.ndarray:
        """The whole (N, M) matrix of one kernel; a symmetric store's lower triangle is its
        upper one mirrored, so K[i, j] is computed with the smaller index as the row, as the
        engine's K(X, X) is."""
        matrix = self.rows(kernel)
        if not self.plan.symmetric:
            return matrix
        if self.path is None:
            matrix = matrix.copy()  # a view of the array held in memory: leave that as written
        for start, stop in self.plan.blocks(self.n_rows):  # a block at a time: no N x N temporaries
            matrix[start:stop, :start] = matrix[:start, start:stop].T
            diagonal = matrix[start:stop, start:stop]
            matrix[start:stop, start:stop] = np.triu(diagonal) + np.triu(diagonal, 1).T
        return matrix


def compute_block(store: BlockStore, X: np.ndarray, Z: np.ndarray, start: int, stop: int, *,
                  lengths: np.ndarray | None = None, z_lengths: np.ndarray | None = None,
                  memory_budget: int | None = None) -> None:
    """Fill one block's chunk: rows ``[start, stop)`` of X (an array or a memory map)."""
    block_lengths = None if lengths is None else np.asarray(lengths[start:stop])
    column = store.plan.first_column(start)
    # K(X, X)'s blocks are cut into the whole's tiles: the values of compute_grids' one pass
    tiles_as = (store.n_rows, store.n_rows) if store.plan.symmetric else None
    values = kernel_rows(np.asarray(X[start:stop]), Z[column:], store.plan, lengths=block_lengths,
                         z_lengths=None if z_lengths is None else z_lengths[column:], memory_budget=memory_budget,
                         tiles_as=tiles_as)
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



@dataclass(frozen=True)
class BlockInputs:
    """The rows every block of a job reads: the normalised X (an array or a memory map), the
    sequence lengths, and the engine's memory budget."""

    X: np.ndarray
    lengths: np.ndarray | None = None
    memory_budget: int | None = None


def _store_inputs(store: BlockStore, landmarks: np.ndarray, order: Sequence[int] | None,
                  inputs: BlockInputs) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(X, Z, lengths, Z lengths) of a store, in its input order."""
    X = inputs.X if order is None else _Ordered(inputs.X, order)
    lengths = inputs.lengths
    Z = np.asarray(inputs.X[np.sort(landmarks)])[np.argsort(np.argsort(landmarks))]  # memory maps want sorted
    if order is not None:
        Z = Z[:, list(order)]
    return X, Z, lengths, None if lengths is None else np.asarray(lengths)[landmarks]


class _Ordered:
    """Rows of X with their steps in another order, read a slice at a time."""

    def __init__(self, X: np.ndarray, order: Sequence[int]) -> None:
        self.X, self.order, self.shape = X, list(order), X.shape

    def __getitem__(self, rows: slice) -> np.ndarray:
        return np.asarray(self.X[rows])[:, self.order]


def save_once(path: Path, array: np.ndarray) -> None:
    """Write ``array`` to ``path`` unless a resumed run wrote it already (atomically)."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp.npy")
    np.save(temporary, np.asarray(array))
    os.replace(temporary, path)


@dataclass(frozen=True)
class InputFiles:
    """The ``.npy`` files beside a job's stores that its blocks read, relative to their folder."""

    inputs: str = "inputs.npy"
    lengths: str | None = None


def input_files(runner: "BlockRunner", folder: Path | None, inputs: BlockInputs) -> InputFiles | None:
    """The rows (and lengths) saved in ``folder`` for a runner whose blocks run in other
    processes; None for one that runs them here."""
    if not runner.needs_files:
        return None
    if folder is None:
        raise ValueError("blocks that run in other processes need a work_dir for their inputs")
    files = InputFiles(lengths=None if inputs.lengths is None else "lengths.npy")
    save_once(folder / files.inputs, inputs.X)
    if files.lengths is not None:
        save_once(folder / files.lengths, np.asarray(inputs.lengths))
    return files


def store_job(path: Path | None, n_rows: int, landmarks: np.ndarray, plan: BlockPlan, order: Sequence[int] | None,
              *, files: InputFiles | None, landmarks_file: str) -> "StoreJob":
    """The (existing or new) store of K(X, X[landmarks]) at ``path`` (in memory: None); with
    ``files``, the landmark rows are saved beside it and its attributes name what it reads."""
    store = BlockStore(path, n_rows, landmarks.size, plan)
    if files is not None:
        save_once(Path(path).parent / landmarks_file, landmarks)
        describe(store, inputs=files.inputs, landmarks=landmarks_file, lengths=files.lengths, order=order)
    return StoreJob(store, landmarks, order)


def describe(store: BlockStore, *, inputs: str, landmarks: str, lengths: str | None,
             order: Sequence[int] | None) -> None:
    """Record in the store's attributes what its blocks read: the ``.npy`` files (names
    relative to the store's folder) and the input order."""
    plan = asdict(store.plan)
    store.array.attrs.update({"plan": plan, "inputs": inputs, "landmarks": landmarks, "lengths": lengths,
                              "order": None if order is None else [int(step) for step in order]})


def compute_stored_block(path: Path, start: int, *, memory_budget: int | None = None) -> bool:
    """Compute the block of the store at ``path`` that starts at row ``start``, from the
    inputs its attributes name (memory-mapped); False if it was written already."""
    store = BlockStore.open(path)
    if store.done(start):
        return False
    attrs, folder = store.array.attrs, Path(path).parent
    X = np.load(folder / attrs["inputs"], mmap_mode="r")
    lengths = None if attrs.get("lengths") is None else np.load(folder / attrs["lengths"], mmap_mode="r")
    landmarks = np.load(folder / attrs["landmarks"])
    X, Z, lengths, z_lengths = _store_inputs(store, landmarks, attrs.get("order"),
                                             BlockInputs(X, lengths, memory_budget))
    stop = min(store.n_rows, start + store.plan.block_rows)
    compute_block(store, X, Z, start, stop, lengths=lengths, z_lengths=z_lengths, memory_budget=memory_budget)
    return True


@dataclass(frozen=True)
class StoreJob:
    """One store to fill: its landmark rows and input order, and where its inputs live on disk."""

    store: BlockStore
    landmarks: np.ndarray
    order: Sequence[int] | None = None


class FannedOut(Exception):
    """The blocks were sent to other processes; the run goes on once they are written."""

    def __init__(self, blocks: int) -> None:
        super().__init__(f"{blocks} block(s) sent to the workers")
        self.blocks = blocks


class BlockRunner(Protocol):
    """Where a job's blocks run. ``run`` returns the blocks computed per worker, or raises
    :class:`FannedOut` when they run elsewhere (the caller is resumed later)."""

    #: Whether the stores need their inputs on disk (another process reads them).
    needs_files: bool

    def run(self, jobs: Sequence[StoreJob], inputs: BlockInputs, *,
            on_block: Callable[[int, int], None] | None = None,
            check_cancel: Callable[[], None] | None = None) -> dict[str, int]: ...


def run_here(jobs: Sequence[StoreJob], inputs: BlockInputs, *, on_block: Callable[[int, int], None] | None = None,
             check_cancel: Callable[[], None] | None = None) -> int:
    """Every missing block of ``jobs`` in this process; returns the number computed.
    ``on_block(done, total)`` counts the blocks of all the stores together."""
    total = sum(len(job.store.plan.blocks(job.store.n_rows)) for job in jobs)
    done, computed = 0, 0
    for job in jobs:
        X, Z, lengths, z_lengths = _store_inputs(job.store, job.landmarks, job.order, inputs)

        def counted(_: int, __: int) -> None:
            nonlocal done
            done += 1
            if on_block is not None:
                on_block(done, total)

        computed += compute_all(job.store, X, Z, lengths=lengths, z_lengths=z_lengths,
                                memory_budget=inputs.memory_budget, on_block=counted, check_cancel=check_cancel)
    return computed


def run_blocks(runner: BlockRunner, jobs: Iterable[StoreJob], inputs: BlockInputs, *,
               report: Callable[[str, int, int], None], check_cancel: Callable[[], None] | None = None,
               ) -> dict[str, Any]:
    """Every block of ``jobs`` by ``runner``, counted as the progress stage ``blocks``; the
    report's ``blocks``: their total and how many each worker computed."""
    jobs = list(jobs)
    total = sum(len(job.store.plan.blocks(job.store.n_rows)) for job in jobs)
    by_worker = runner.run(jobs, inputs, on_block=lambda done, count: report("blocks", done, count),
                           check_cancel=check_cancel)
    report("blocks", total, total)
    return {"total": total, "by_worker": dict(by_worker)}


class InProcessRunner:
    """Every block in this process (``rntk evaluate``, tests, one-worker jobs)."""

    needs_files = False

    def run(self, jobs: Sequence[StoreJob], inputs: BlockInputs, *,
            on_block: Callable[[int, int], None] | None = None,
            check_cancel: Callable[[], None] | None = None) -> dict[str, int]:
        computed = run_here(jobs, inputs, on_block=on_block, check_cancel=check_cancel)
        return {socket.gethostname(): computed} if computed else {}
