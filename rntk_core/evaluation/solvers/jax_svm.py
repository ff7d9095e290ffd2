"""One-vs-one C-SVMs on the batched JAX solver: the classifier of ``SVC(kernel="precomputed", C=C)``.

Every binary problem of every task (kernels x C values x splits x class pairs) is solved by
:mod:`.interior_point`, many at once: problems are grouped by padded size and batched to a
memory budget, their kernel blocks gathered on the device where the kernels live.

Decision values are ``K(x, train) @ (a * y) - rho``; one-vs-one votes go to the pair's first
class when the value is positive, and the most-voted class wins with ties to the class that
comes first (libsvm's ``svm_predict_values``). Only the predictions and the convergence numbers
come back to the host.

Progress: ``on_progress(done, total)`` counts problem-iterations against a nominal
:data:`NOMINAL_ITERATIONS` per problem; ``check_cancel()`` runs between chunks of iterations.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from rntk_core.devices import free_device_bytes

from ..progress import OnCount
from .fit import Fit
from .interior_point import DEFAULT_MAX_ITER, DEFAULT_TOL, POLISH_STEPS, solve_on_device

__all__ = [
    "DEFAULT_TOL",
    "NOMINAL_ITERATIONS",
    "KernelTask",
    "SvmTask",
    "fit_predict_many",
    "gather_blocks",
    "ovo_pairs",
]

#: Iterations a problem is expected to take; the progress total counts this many per problem.
NOMINAL_ITERATIONS = 30
_DEFAULT_BUDGET_CPU = 1 << 30


@dataclass(frozen=True)
class SvmTask:
    """One kernel slice to fit at several C: what :class:`~KernelModel.fit_predict` gets.

    Attributes:
        k_train: (n, n) kernel between training points.
        y_train: (n,) integer class labels.
        k_evaluate: (m, n) kernel between evaluated and training points.
        Cs: penalties to fit.
    """

    k_train: Any
    y_train: np.ndarray
    k_evaluate: Any
    Cs: Sequence[float]


@dataclass(frozen=True)
class KernelTask:
    """A fit on a FULL kernel: trains on ``kernel[train][:, train]``, predicts
    ``kernel[evaluate][:, train]``; the blocks are gathered where the kernel lives.

    Attributes:
        kernel: (N, N) Gram matrix, a JAX array (used on its device, any float dtype) or
            NumPy (put on the device once per :func:`fit_predict_many` call).
        y_train: (n,) integer class labels of the ``train`` rows.
        train: (n,) integer rows of the training points.
        evaluate: (m,) integer rows of the evaluated points.
        Cs: penalties to fit.
    """

    kernel: Any
    y_train: np.ndarray
    train: np.ndarray
    evaluate: np.ndarray
    Cs: Sequence[float]


def ovo_pairs(n_classes: int) -> list[tuple[int, int]]:
    """libsvm's one-vs-one pairs, in its order: (0, 1), (0, 2), ..., (1, 2), ..."""
    return [(i, j) for i in range(n_classes) for j in range(i + 1, n_classes)]


@dataclass
class _Problem:
    task: int
    C_index: int
    pair: tuple[int, int]
    rows: np.ndarray  # training rows of the pair, in training order
    signs: np.ndarray  # +1 for the pair's first class
    C: float


@dataclass(frozen=True)
class _Operands:
    """Where a task's blocks come from, both kinds of task alike: its training block is
    ``train_source[train_index][:, train_index]``, its evaluation block
    ``evaluate_source[evaluate_rows][:, evaluate_columns]``."""

    source: int  # number of train_source among the call's distinct sources
    train_source: jax.Array
    train_index: np.ndarray
    evaluate_source: jax.Array
    evaluate_rows: np.ndarray
    evaluate_columns: np.ndarray


def _operands(tasks: Sequence[SvmTask | KernelTask]) -> list[_Operands]:
    """Device arrays for every task: a JAX kernel as it is, NumPy put on the device once per
    distinct array (several tasks may share one full kernel)."""
    placed: dict[int, tuple[int, jax.Array]] = {}
    keep: list[Any] = []  # holds the host arrays so their ids stay unique meanwhile

    def place(array: Any) -> tuple[int, jax.Array]:
        if id(array) not in placed:
            keep.append(array)
            placed[id(array)] = (len(placed), array if isinstance(array, jax.Array) else jnp.asarray(array))
        return placed[id(array)]

    operands = []
    for task in tasks:
        if isinstance(task, KernelTask):
            number, kernel = place(task.kernel)
            train = np.asarray(task.train, np.int64)
            operands.append(_Operands(number, kernel, train, kernel,
                                      np.asarray(task.evaluate, np.int64), train))
        else:
            number, k_train = place(task.k_train)
            _, k_evaluate = place(task.k_evaluate)
            n, m = np.shape(task.k_train)[0], np.shape(task.k_evaluate)[0]
            operands.append(_Operands(number, k_train, np.arange(n), k_evaluate, np.arange(m),
                                      np.arange(n)))
    return operands


@functools.partial(jax.jit, donate_argnums=0)
def _gather_into(K, source, slots, index, mask):
    """``K[slots[b]] = source[index[b]][:, index[b]]``, zero where ``mask[b]`` is 0, in K's
    dtype (float64: a float32 kernel is converted here, on the device). Slots past the end of
    K are dropped, so a padded group of rows costs no extra shape."""
    block = source[index[:, :, None], index[:, None, :]].astype(K.dtype)
    block = block * (mask[:, :, None] * mask[:, None, :])
    return K.at[slots].set(block, mode="drop")


def gather_blocks(source: Any, index: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The padded (b, n, n) float64 blocks ``source[index[k]][:, index[k]]`` (zero outside
    ``mask[k]``), gathered by the solver's device gather; for tests and inspection."""
    with jax.enable_x64(True):
        blocks = jnp.zeros((index.shape[0], index.shape[1], index.shape[1]), jnp.float64)
        return np.asarray(_gather_into(blocks, jnp.asarray(source), np.arange(index.shape[0]),
                                       np.asarray(index, np.int64), np.asarray(mask, np.float64)))


def _bucket(n: int) -> int:
    """Padded size. Every distinct (batch, size) shape is a compilation (seconds on a CPU),
    so small problems, cheap to solve, share few sizes (64, 128, 256); larger ones get four
    sizes per octave (at most 25% padding, where the n^3 work is)."""
    for small in (64, 128, 256):
        if n <= small:
            return small
    step = (1 << (n.bit_length() - 1)) // 4
    return -(-n // step) * step


def _batch_shape(count: int, size: int, per_batch: int) -> int:
    """Problems per compiled batch: below 512 one fixed count per size (padding is cheap
    there), above it a power of two."""
    if size < 512:
        return per_batch if count > per_batch // 2 else max(1, 1 << max(0, (count - 1).bit_length()))
    return 1 << max(0, (count - 1).bit_length())


def _power_of_two(count: int) -> int:
    return 1 << max(0, (count - 1).bit_length())


def _memory_budget() -> int:
    if jax.devices()[0].platform == "cpu":
        return _DEFAULT_BUDGET_CPU
    free = free_device_bytes(unknown=-1)
    return 4 << 30 if free < 0 else int(0.4 * free)


def fit_predict_many(
    tasks: Sequence[SvmTask | KernelTask],
    *,
    tol: float = DEFAULT_TOL,
    max_iter: int = DEFAULT_MAX_ITER,
    memory_budget: int | None = None,
    check_cancel: Callable[[], None] | None = None,
    on_progress: OnCount | None = None,
) -> list[dict[float, Fit]]:
    """One-vs-one C-SVMs for every task and C, as ``SVC(kernel="precomputed", C=C)`` would fit.

    All binary problems of all tasks are grouped by padded size and solved in batches that fit
    ``memory_budget`` bytes (default: 1 GiB on CPU, 40% of the free device memory on a GPU).
    Everything runs on the device: each batch is gathered from the tasks' kernels there, and
    decision values and votes are computed there; only the predictions and the convergence
    numbers come back to the host.

    Returns, per task, ``{C: Fit}`` (``solver="jax"``).

    Raises:
        ValueError: a task's training labels hold a single class (as SVC does).
    """
    problems, classes_of = _binary_problems(tasks)
    with jax.enable_x64(True):
        operands = _operands(tasks)
        credit = _IterationCredit(on_progress, len(problems) * NOMINAL_ITERATIONS)
        solved = _solve_all(operands, problems, memory_budget or _memory_budget(), tol, max_iter,
                            check_cancel, credit)
        coefficients, intercepts = solved.on_device()
        fits: list[dict[float, Fit]] = []
        first = 0
        for index, task in enumerate(tasks):
            classes = classes_of[index]
            count = len(task.Cs) * len(ovo_pairs(classes.size))
            numbers = range(first, first + count)  # this task's problems: C-major, pairs in order
            first += count
            predicted = _task_predictions(operands[index], problems, numbers, classes.size,
                                          coefficients, intercepts, solved)
            if check_cancel is not None:
                check_cancel()
            fits.append(_task_fits(task, classes, predicted, problems, numbers, solved))
    return fits


def _binary_problems(tasks: Sequence[SvmTask | KernelTask]) -> tuple[list[_Problem], list[np.ndarray]]:
    """Every task's (C, class pair) problems, C-major with pairs in order; each task's classes."""
    problems: list[_Problem] = []
    classes_of: list[np.ndarray] = []
    for index, task in enumerate(tasks):
        labels = np.asarray(task.y_train)
        classes, encoded = np.unique(labels, return_inverse=True)
        if classes.size < 2:
            raise ValueError(f"the number of classes has to be greater than one; got {classes.size} class")
        classes_of.append(classes)
        for C_index in range(len(task.Cs)):
            for i, j in ovo_pairs(classes.size):
                rows = np.flatnonzero((encoded == i) | (encoded == j))
                problems.append(_Problem(index, C_index, (i, j), rows,
                                         np.where(encoded[rows] == i, 1.0, -1.0), float(task.Cs[C_index])))
    return problems, classes_of


def _solve_all(operands, problems, budget, tol, max_iter, check_cancel, credit) -> _Solved:
    """Solve every problem, in batches of one padded size that fit ``budget`` bytes."""
    by_size: dict[int, list[int]] = {}
    for number, problem in enumerate(problems):
        by_size.setdefault(_bucket(problem.rows.size), []).append(number)
    solved = _Solved(len(problems))
    for size, members in sorted(by_size.items()):
        # K, Q, the Newton matrix, its factor and temporaries: about 6 (n, n) float64 per problem.
        per_batch = max(1, min(256, budget // (6 * 8 * size * size)))
        for start in range(0, len(members), per_batch):
            batch = members[start:start + per_batch]
            slots = _batch_shape(len(batch), size, per_batch)
            _solve_batch(operands, problems, batch, size, slots, tol, max_iter, check_cancel,
                         credit, solved)
    return solved


def _task_fits(task, classes, predicted, problems, numbers, solved: _Solved) -> dict[float, Fit]:
    """One task's fit per C, from its (Cs, m) predicted class indices and its problems' numbers."""
    fits: dict[float, Fit] = {}
    for C_index, C in enumerate(task.Cs):
        mine = [n for n in numbers if problems[n].C_index == C_index]
        fits[C] = Fit(
            predictions=classes[predicted[C_index]].astype(np.int64),
            converged=bool(solved.converged[mine].all()),
            solver="jax",
            iterations=int(solved.iterations[mine].max()),
            error=float(solved.error[mine].max()),
            objectives=tuple(float(o) for o in solved.objective[mine]),
        )
    return fits


class _Solved:
    """Every problem's solution: the convergence numbers on the host; the coefficients
    ``alpha * y`` (flat, each problem's rows in turn) and ``rho`` on the device."""

    def __init__(self, count: int) -> None:
        self.converged = np.zeros(count, bool)
        self.iterations = np.zeros(count, np.int64)
        self.error = np.zeros(count)
        self.objective = np.zeros(count)
        self.offset = np.zeros(count, np.int64)  # where each problem's coefficients start
        self.position = np.zeros(count, np.int64)  # where its rho is
        self._coefficients: list[jax.Array] = []
        self._rho: list[jax.Array] = []
        self._size = self._count = 0

    def add(self, numbers: list[int], sizes: list[int], coefficients: jax.Array, rho: jax.Array) -> None:
        self.offset[numbers] = self._size + np.concatenate([[0], np.cumsum(sizes)[:-1]])
        self.position[numbers] = self._count + np.arange(len(numbers))
        self._size += int(np.sum(sizes))
        self._count += len(numbers)
        self._coefficients.append(coefficients)
        self._rho.append(rho)

    def on_device(self) -> tuple[jax.Array, jax.Array]:
        return jnp.concatenate(self._coefficients), jnp.concatenate(self._rho)


class _IterationCredit:
    """Problem-iterations done, each problem counted up to NOMINAL_ITERATIONS: a batch's
    iteration counts become the cumulative (done, total) of :data:`OnCount`."""

    def __init__(self, callback: OnCount | None, total: int) -> None:
        self.callback, self.total, self.done = callback, total, 0

    def batch(self, size: int) -> Callable[[np.ndarray], None]:
        base, credited = self.done, [0]

        def update(iterations: np.ndarray, finished: np.ndarray | None = None) -> None:
            capped = np.minimum(iterations[:size], NOMINAL_ITERATIONS - 1)
            if finished is not None:
                capped = np.where(finished[:size], NOMINAL_ITERATIONS, capped)
            now = int(capped.sum())
            if now > credited[0]:
                credited[0] = now
                self.done = base + now
                if self.callback is not None:
                    self.callback(self.done, self.total)

        return update


def _solve_batch(operands, problems, batch, size, padded_count, tol, max_iter, check_cancel, credit,
                 solved: _Solved) -> None:
    count = len(batch)
    # Extra slots (so few shapes are compiled) repeat the first problem; their results are dropped.
    members = batch + [batch[0]] * (padded_count - count)
    y = np.zeros((padded_count, size))
    Cs = np.empty(padded_count)
    by_source: dict[int, list[int]] = {}
    for slot, number in enumerate(members):
        problem = problems[number]
        y[slot, :problem.rows.size] = problem.signs
        Cs[slot] = problem.C
        by_source.setdefault(operands[problem.task].source, []).append(slot)
    # One gather per source kernel; its rows are padded to a power of two (few shapes), the
    # padding rows aimed past the end of the batch, where the gather drops them.
    K = jnp.zeros((padded_count, size, size), jnp.float64)
    for slots in by_source.values():
        rows = _power_of_two(len(slots))
        index = np.zeros((rows, size), np.int64)
        mask = np.zeros((rows, size))
        target = np.full(rows, padded_count)
        for k, slot in enumerate(slots):
            problem = problems[members[slot]]
            index[k, :problem.rows.size] = operands[problem.task].train_index[problem.rows]
            mask[k, :problem.rows.size] = 1.0
            target[k] = slot
        K = _gather_into(K, operands[problems[members[slots[0]]].task].train_source, target, index, mask)
    update = credit.batch(count)
    y_device = jnp.asarray(y)
    alpha, rho, objective, state = solve_on_device(
        K, y_device, jnp.asarray(Cs), (y_device != 0).astype(jnp.float64), tol, max_iter,
        check_cancel, update)
    del K
    iterations = np.asarray(state.iterations)
    update(iterations, np.ones(padded_count, bool))
    solved.converged[batch] = np.asarray(state.done)[:count]
    solved.iterations[batch] = iterations[:count]
    solved.error[batch] = np.asarray(state.error)[:count]
    solved.objective[batch] = np.asarray(objective)[:count]
    # Each problem's n coefficients, flat; they stay on the device for the predictions.
    sizes = [problems[number].rows.size for number in batch]
    slot_of = np.repeat(np.arange(count), sizes)
    column_of = np.concatenate([np.arange(n) for n in sizes])
    solved.add(batch, sizes, (alpha * y_device)[slot_of, column_of], rho[:count])


@functools.partial(jax.jit, static_argnames=("n_classes",))
def _predict(source, rows, columns, coefficients, take, w_rows, w_columns, intercepts, rho_take,
             first, second, n_classes):
    """Indices into the task's classes of the predicted labels, (Cs, m).

    ``W[w_rows, w_columns] = coefficients[take]`` puts each (C, pair) problem's ``alpha * y``
    in its column (rows: the task's training points, zero outside the pair), so one matmul
    gives every decision value; votes and the arg-max follow libsvm: a positive value votes
    for the pair's first class, ties go to the class that comes first.
    """
    kernel = source[rows[:, None], columns[None, :]].astype(jnp.float64)  # (m, n)
    W = jnp.zeros((columns.shape[0], rho_take.shape[0]), jnp.float64)
    W = W.at[w_rows, w_columns].set(coefficients[take])
    decision = jnp.matmul(kernel, W, precision=jax.lax.Precision.HIGHEST) - intercepts[rho_take]
    decision = decision.reshape(rows.shape[0], rho_take.shape[0] // first.shape[0], first.shape[0])
    winner = jnp.where(decision > 0, first, second)
    votes = jax.nn.one_hot(winner, n_classes, dtype=jnp.int32).sum(axis=2)  # (m, Cs, classes)
    return jnp.argmax(votes, axis=-1).T  # jnp.argmax takes the first of equal maxima


def _task_predictions(operand: _Operands, problems, numbers, n_classes, coefficients, intercepts,
                      solved: _Solved) -> np.ndarray:
    """(Cs, m) indices of the predicted classes of one task, computed on the device."""
    pairs = ovo_pairs(n_classes)
    take, w_rows, w_columns = [], [], []
    for column, number in enumerate(numbers):  # C-major, pairs in order: column = C * P + pair
        problem = problems[number]
        take.append(solved.offset[number] + np.arange(problem.rows.size))
        w_rows.append(problem.rows)
        w_columns.append(np.full(problem.rows.size, column))
    predicted = _predict(
        operand.evaluate_source, operand.evaluate_rows, operand.evaluate_columns,
        coefficients, np.concatenate(take), np.concatenate(w_rows), np.concatenate(w_columns),
        intercepts, solved.position[list(numbers)], np.array([i for i, _ in pairs]),
        np.array([j for _, j in pairs]), n_classes=n_classes)
    return np.asarray(predicted)
