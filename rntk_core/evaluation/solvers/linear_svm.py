"""A batched linear C-SVM in JAX: ``SVC(kernel="linear", C=C)`` on explicit features.

The landmark (Nystrom) path hands every kernel over as features Phi (N x M, M << N) with
``Phi Phi' ~ K``. Each one-vs-one problem is then libsvm's dual on the kernel ``Phi Phi'``,

    min_a  1/2 a'Qa - e'a   s.t.  y'a = 0,  0 <= a <= C,   Q = Y Phi Phi' Y,

the problem ``SVC(kernel="linear")`` solves on Phi: hinge loss, an UNREGULARISED intercept
(``LinearSVC`` regularises it, a different problem). It is solved by the interior point of
:mod:`.interior_point` (the same iterations, tolerance and reading of the solution as the
dense solver) with Q as :class:`LowRankQ`: Q has rank M, so the Newton system
``(C Q + D) x = r`` is solved through the Woodbury identity with an M x M Cholesky factor of
``I/C + G' D^-1 G`` (G = Y Phi). An iteration costs O(n M^2) per problem instead of O(n^3),
and no n x n matrix is ever formed. Where a pair has no more rows than Phi has columns, the
dense solver on ``Phi Phi'`` is the cheaper one and is used instead.

``solver="auto"`` (the configs' default), on a CPU backend, first hands a task of at most
:data:`~rntk_core.evaluation.solvers.LINEAR_KERNEL_ROWS` training rows to libsvm on the kernel
``Phi Phi'`` (the same dual), capped at the dense path's
:func:`.strategy.hybrid_iteration_cap` SMO steps, in threads, one per C; only the Cs
it does not finish go to the interior point. On a selection subsample SMO is far cheaper:
cardiotocography-3clases' 1,063 rows x M = 512, three Cs, took 8.7 s on the interior point
and 0.07 s in libsvm with identical predictions; whole landmark jobs (``python -m
benchmarks.scale_benchmark solvers``) went from 166 s to 7.1 s there and from 249 s to 43 s on
waveform, with the same test accuracies. A fit libsvm does not finish costs the capped steps
on top of the interior point: on wine-quality-white's RBF features (2,048 rows, 7 classes)
at C = 1e4, 9.3 s of SMO, then 22 s (a lower cap would send fits that SMO finishes in
100-1000 n steps, such as waveform's at C = 1e4, to the slower interior point).
Past that many rows the task's n x n kernel is not formed: libsvm (capped the same way)
solves each one-vs-one problem on working sets (below) that start at half that many rows, and
the interior point takes a set that libsvm does not finish or that outgrows the limit. On
generated sequences (``python -m benchmarks.scale_benchmark fits``: M = 512, 4 classes,
C in {1, 100}) that took 9.0 s against the interior point's 83.9 s at 20,000 training rows,
and 23.9 s against 229.5 s at 80,000, with identical predictions and objectives within 3e-9
relative.
``"jax"`` keeps every fit on the interior point;
``"libsvm"`` runs libsvm without a cap on a whole task of up to that many rows.

A problem (C value x class pair) holds its own rows of Phi, gathered and zero-padded; the
problems of a task are solved in batches of at most :data:`BATCH_BYTES` of rows. Row sums
(``Phi' diag(a) Phi`` and the products) run over blocks of :data:`ROW_BLOCK` rows, so the
temporaries stay bounded by the block, not by n.

Large problems are solved on working sets (decomposition, as Osuna et al. and SVMlight do):
a problem of more than ``2 * WORKING_SET_ROWS`` rows (LINEAR_KERNEL_ROWS where libsvm
solves the sets, to :data:`LIBSVM_SET_TOL`) is first solved on a stratified sample of
``WORKING_SET_ROWS`` of them (half LINEAR_KERNEL_ROWS); every row outside the set whose
margin ``y_i f(x_i)`` falls below ``1 - KKT_TOL`` violates the optimality conditions of the
whole problem (its ``a_i = 0`` is not optimal), and the worst of them (at most as many as
the set holds) join the set, which is solved again. When no row violates them, the set's
solution with ``a = 0`` elsewhere is the whole problem's solution: the same problem, solved
to the same tolerance.
Support vectors are few on data that a kernel separates well, so a fit on 10^5 rows costs
a few fits on 10^4; where most rows are support vectors the set doubles each round, and the
whole costs at most about twice one solve on every row. Where libsvm solves the sets,
a set that would outgrow LINEAR_KERNEL_ROWS keeps only its support vectors and the worst
violators that fit beside them (when there is room for a first set's rows), so that libsvm,
not the interior point, solves it again: on 80,000 rows of generated sequences (M = 512, C in
{1, 100}; ``python -m benchmarks.scale_benchmark fits --n 100000 --baseline unshrunk``) the fit
took 19.7 s instead of 33.9 s, with identical predictions and objectives within 4e-12 relative.

Then, as libsvm does (and :mod:`.jax_svm`): bounded variables are snapped to 0 or C, rho is
the mean of ``y_i G_i`` over the free ones (or the midpoint of its bounds), and the decision
value of a row x is ``Phi(x) . w - rho`` with ``w = Phi_train' (a * y)``; one-vs-one votes go
to the pair's first class on a positive value, ties to the class that comes first.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.svm import SVC

from . import LINEAR_KERNEL_ROWS, SOLVERS
from .fit import Fit
from .libsvm import fit_svc, run_parallel
from .interior_point import DEFAULT_MAX_ITER, DEFAULT_TOL, finish, iterate, per_problem_on_cpu
from .jax_svm import ovo_pairs

__all__ = ["BATCH_BYTES", "KKT_TOL", "LinearTask", "LinearSolution", "LowRankQ", "ROW_BLOCK", "WORKING_SET_ROWS",
           "fit_predict_linear", "solve_linear_duals"]

#: Rows per block of the sums over N (bounds the (B, block, M) temporaries); fewer rows are one block.
ROW_BLOCK = 4096


class LowRankQ(NamedTuple):
    """Q = Y Phi_c Phi_c' Y per problem, Phi_c = Phi - mu_b over the problem's rows (the
    dual is unchanged by that centring on y'a = 0, and it keeps a near-constant kernel from
    swamping the Newton matrix; see interior_point's centring). Mean 0: Q of Phi as given."""

    phi: jax.Array  # (B, n, M): each problem's own rows, zero-padded
    mean: jax.Array  # (B, M)
    y: jax.Array  # (B, n) +-1 on the problem's rows, 0 on padding
    mask: jax.Array  # (B, n)

    def _G_t(self, v: jax.Array) -> jax.Array:
        """G' v = Phi_c' (y v), (B, M)."""
        yv = self.y * v
        return _project(self.phi, yv) - self.mean * jnp.sum(yv, axis=1, keepdims=True)

    def _G(self, c: jax.Array) -> jax.Array:
        """G c = y (Phi_c c), (B, n)."""
        return self.y * (_expand(self.phi, c) - jnp.sum(self.mean * c, axis=1, keepdims=True))

    def times(self, v: jax.Array) -> jax.Array:
        return self._G(self._G_t(v))

    def diagonal(self) -> jax.Array:
        """||phi_i - mu_b||^2."""
        norms = jnp.sum(self.phi * self.phi, axis=2)
        return norms - 2.0 * _expand(self.phi, self.mean) + jnp.sum(self.mean * self.mean, axis=1)[:, None]

    def newton(self, C: jax.Array, E: jax.Array) -> Callable[[jax.Array], jax.Array]:
        """x = (C Q + diag(E))^-1 r by Woodbury: E^-1 r - E^-1 G S^-1 G' E^-1 r, with
        S = I/C + G' E^-1 G (M x M, one Cholesky factor per problem)."""
        a = self.mask / E
        s = _project(self.phi, a)  # Phi' a
        total = jnp.sum(a, axis=1)
        mean = self.mean
        S = (_gram(self.phi, a) - mean[:, :, None] * s[:, None, :] - s[:, :, None] * mean[:, None, :]
             + total[:, None, None] * mean[:, :, None] * mean[:, None, :])
        S = S + jax.vmap(jnp.diag)(jnp.broadcast_to((1.0 / C)[:, None], mean.shape))
        factor = per_problem_on_cpu(jnp.linalg.cholesky, S)

        def solve(r):
            re = r / E
            c = per_problem_on_cpu(
                lambda f, g: jax.scipy.linalg.cho_solve((f, True), g[..., None])[..., 0], factor, self._G_t(re))
            return (re - self._G(c) / E) * self.mask

        return solve


def _blocks(phi: jax.Array) -> jax.Array:
    """(B, n, M) as (B, blocks, rows, M): n is a power of two below ROW_BLOCK, else a multiple."""
    block = min(ROW_BLOCK, phi.shape[1])
    return phi.reshape(phi.shape[0], phi.shape[1] // block, block, phi.shape[2])


def _project(phi: jax.Array, v: jax.Array) -> jax.Array:
    """Phi_b' v_b for each problem: (B, n) -> (B, M), summed over row blocks."""
    blocks = _blocks(phi)
    v_blocks = v.reshape(blocks.shape[:3])

    def body(k, total):
        return total + jnp.einsum("bn,bnm->bm", v_blocks[:, k], blocks[:, k], precision=jax.lax.Precision.HIGHEST)

    return jax.lax.fori_loop(0, blocks.shape[1], body, jnp.zeros((phi.shape[0], phi.shape[2]), phi.dtype))


def _expand(phi: jax.Array, c: jax.Array) -> jax.Array:
    """Phi_b c_b for each problem: (B, M) -> (B, n)."""
    return jnp.einsum("bnm,bm->bn", phi, c, precision=jax.lax.Precision.HIGHEST)


def _gram(phi: jax.Array, a: jax.Array) -> jax.Array:
    """Phi_b' diag(a_b) Phi_b for each problem -> (B, M, M), over row blocks."""
    blocks = _blocks(phi)
    a_blocks = a.reshape(blocks.shape[:3])

    def body(k, total):
        block = blocks[:, k]
        return total + jnp.einsum("bnm,bnk->bmk", block * a_blocks[:, k, :, None], block,
                                  precision=jax.lax.Precision.HIGHEST)

    batch, width = phi.shape[0], phi.shape[2]
    return jax.lax.fori_loop(0, blocks.shape[1], body, jnp.zeros((batch, width, width), phi.dtype))


@dataclass(frozen=True)
class LinearSolution:
    """A batch of binary duals on features, in libsvm's units.

    Attributes:
        alpha: (B, N) dual variables (0 outside each problem's rows).
        rho: (B,) intercepts; decision value ``phi(x) . weights[b] - rho[b]``.
        weights: (B, M) ``Phi' (alpha * y)``.
        objective: (B,) ``1/2 a'Qa - e'a``.
        converged, iterations, error: as :class:`.jax_svm.DualSolution` (libsvm's problems:
            SMO steps, and error 0).
        by_libsvm: (B,) whether libsvm solved the problem (else the interior point).
    """

    alpha: np.ndarray
    rho: np.ndarray
    weights: np.ndarray
    objective: np.ndarray
    converged: np.ndarray
    iterations: np.ndarray
    error: np.ndarray
    by_libsvm: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.by_libsvm is None:
            object.__setattr__(self, "by_libsvm", np.zeros(len(self.rho), bool))


#: The fields of a :class:`LinearSolution`, each with one entry per problem first.
_FIELDS = ("alpha", "rho", "weights", "objective", "converged", "iterations", "error", "by_libsvm")


def _concatenated(parts: Sequence[LinearSolution]) -> LinearSolution:
    return parts[0] if len(parts) == 1 else LinearSolution(
        *(np.concatenate([getattr(part, name) for part in parts]) for name in _FIELDS))


def _padded_size(n: int) -> int:
    """Rows to a power of two (at least 64) up to ROW_BLOCK, then to a multiple of it, so that
    few shapes (few compilations) serve every problem; columns likewise go to a power of two
    (zero columns leave phi phi' as it is), so features of different ranks share one."""
    return max(64, 1 << (n - 1).bit_length()) if n <= ROW_BLOCK else -(-n // ROW_BLOCK) * ROW_BLOCK


@jax.jit
def _problem_means(phi, mask):
    count = jnp.maximum(jnp.sum(mask, axis=1), 1.0)
    return _project(phi, mask) / count[:, None]


def _gathered(phi: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Each problem's rows of phi and y, zero-padded to one size (see :func:`_padded_size`)."""
    rows = [np.flatnonzero(labels != 0) for labels in y]
    size = _padded_size(max(r.size for r in rows))
    width = max(16, 1 << (phi.shape[1] - 1).bit_length())
    gathered = np.zeros((len(rows), size, width))
    signs = np.zeros((len(rows), size))
    for b, r in enumerate(rows):
        gathered[b, :r.size, :phi.shape[1]] = phi[r]
        signs[b, :r.size] = y[b, r]
    return gathered, signs, rows


def solve_linear_duals(
    phi: Any,
    y: Any,
    C: Any,
    *,
    tol: float = DEFAULT_TOL,
    max_iter: int = DEFAULT_MAX_ITER,
    check_cancel: Callable[[], None] | None = None,
    on_iterations: Callable[[np.ndarray], None] | None = None,
) -> LinearSolution:
    """Solve B binary C-SVM duals that share the features ``phi``.

    Args:
        phi: (N, M) features (the kernel is ``phi phi'``).
        y: (B, N) labels in {+1, -1} on each problem's rows, 0 on rows outside it.
        C: (B,) penalties.
    """
    with jax.enable_x64(True):
        phi_host, y_host = np.asarray(phi, np.float64), np.asarray(y, np.float64)
        n_rows, width = phi_host.shape
        gathered, signs, rows = _gathered(phi_host, y_host)
        phi = jnp.asarray(gathered)
        y = jnp.asarray(signs)
        del gathered
        mask = (y != 0).astype(jnp.float64)
        C = jnp.asarray(C, jnp.float64)
        state = iterate(LowRankQ(phi, _problem_means(phi, mask), y, mask), C, tol, max_iter, check_cancel,
                        on_iterations)
        alpha, rho, objective = finish(LowRankQ(phi, jnp.zeros((phi.shape[0], phi.shape[2])), y, mask), C, state)
        weights = _project(phi, alpha * y)
        alpha_host = np.asarray(alpha)
        full_alpha = np.zeros((len(rows), n_rows))
        for b, r in enumerate(rows):
            full_alpha[b, r] = alpha_host[b, :r.size]
        return LinearSolution(
            alpha=full_alpha, rho=np.asarray(rho), weights=np.asarray(weights)[:, :width],
            objective=np.asarray(objective), converged=np.asarray(state.done),
            iterations=np.asarray(state.iterations), error=np.asarray(state.error))


@dataclass(frozen=True)
class LinearTask:
    """One kernel's features to fit at several C.

    Attributes:
        features: (n, M) features of the training rows.
        y_train: (n,) integer class labels.
        evaluate: (m, M) features of the evaluated rows.
        Cs: penalties to fit.
    """

    features: Any
    y_train: np.ndarray
    evaluate: Any
    Cs: Sequence[float]


def fit_predict_linear(
    tasks: Sequence[LinearTask],
    *,
    solver: str = "auto",
    n_jobs: int | None = None,
    tol: float = DEFAULT_TOL,
    max_iter: int = DEFAULT_MAX_ITER,
    check_cancel: Callable[[], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> list[dict[float, Fit]]:
    """One-vs-one linear C-SVMs for every task and C, as ``SVC(kernel="linear", C=C)`` on the
    task's features would fit; each task's C values and class pairs are one batch.

    ``solver``: ``auto``, ``jax`` or ``libsvm`` (see the module's docstring); ``n_jobs``:
    libsvm's threads (default: every core). Returns, per task, ``{C: Fit}``; a fit's
    ``solver`` is ``"libsvm"`` or ``"linear"`` (the interior point).
    """
    if solver not in SOLVERS:
        raise ValueError(f"unknown solver {solver!r}; allowed: {', '.join(SOLVERS)}")
    fits: list[dict[float, Fit]] = []
    for number, task in enumerate(tasks):
        classes, encoded = np.unique(np.asarray(task.y_train), return_inverse=True)
        if classes.size < 2:
            raise ValueError(f"the number of classes has to be greater than one; got {classes.size} class")
        per_C: dict[float, Fit] = {}
        if _libsvm_first(solver) and encoded.size <= LINEAR_KERNEL_ROWS:
            per_C = _fit_libsvm(task, solver == "auto", n_jobs, check_cancel)
        rest = [C for C in task.Cs if C not in per_C or not per_C[C].converged]
        if rest:
            per_C.update(_fit_interior_point(dataclasses.replace(task, Cs=rest), classes, encoded, tol, max_iter,
                                             check_cancel, n_jobs=n_jobs,
                                             libsvm_sets=_libsvm_first(solver) and encoded.size > LINEAR_KERNEL_ROWS))
        fits.append({C: per_C[C] for C in task.Cs})
        if on_progress is not None:
            on_progress(number + 1, len(tasks))
    return fits


def _libsvm_first(solver: str) -> bool:
    """``libsvm`` always; ``auto`` on a CPU backend only: on a GPU the interior point runs on
    the device, as the whole job should (libsvm on the host there is not measured yet)."""
    return solver == "libsvm" or (solver == "auto" and jax.default_backend() == "cpu")


def _fit_libsvm(task: LinearTask, capped: bool, n_jobs: int | None,
                check_cancel: Callable[[], None] | None) -> dict[float, Fit]:
    """libsvm on the kernel Phi Phi' at every C, in threads (the largest C first); capped at the
    hybrid's SMO steps when ``capped``, so a fit it does not finish goes to the interior point."""
    from .strategy import hybrid_iteration_cap

    kernel, evaluate = _kernels(task)
    y = np.asarray(task.y_train)
    limit = hybrid_iteration_cap(y.size) if capped else -1
    Cs = sorted(task.Cs, reverse=True)
    done = run_parallel([lambda C=C: fit_svc(kernel, y, evaluate, C, max_iter=limit) for C in Cs], n_jobs,
                        check_cancel=check_cancel)
    return dict(zip(Cs, done))


def _fit_interior_point(task: LinearTask, classes: np.ndarray, encoded: np.ndarray, tol: float, max_iter: int,
                        check_cancel: Callable[[], None] | None, *, libsvm_sets: bool = False,
                        n_jobs: int | None = None) -> dict[float, Fit]:
    """The batched interior point over the task's Cs x class pairs (on the kernel Phi Phi'
    where the largest pair has no more rows than Phi has columns); with ``libsvm_sets``,
    libsvm solves each pair's (working) sets of at most LINEAR_KERNEL_ROWS rows first."""
    if _dense_is_cheaper(encoded, np.shape(task.features)[1]):
        return _fit_dense(task, tol, max_iter, check_cancel)
    pairs = ovo_pairs(classes.size)
    signs = np.zeros((len(task.Cs) * len(pairs), encoded.size))
    Cs = np.repeat(np.asarray(task.Cs, float), len(pairs))
    for index, (i, j) in enumerate(pairs * len(task.Cs)):
        signs[index] = np.where(encoded == i, 1.0, np.where(encoded == j, -1.0, 0.0))
    solution = _solve_on_working_sets(np.asarray(task.features, np.float64), signs, Cs, tol, max_iter,
                                      check_cancel, libsvm_sets=libsvm_sets, n_jobs=n_jobs)
    decision = np.asarray(task.evaluate, np.float64) @ solution.weights.T - solution.rho  # (m, Cs * P)
    decision = decision.reshape(decision.shape[0], len(task.Cs), len(pairs))
    first = np.array([i for i, _ in pairs])
    second = np.array([j for _, j in pairs])
    winner = np.where(decision > 0, first, second)  # (m, Cs, P)
    votes = (winner[..., None] == np.arange(classes.size)).sum(axis=2)  # (m, Cs, classes)
    predicted = votes.argmax(axis=-1)  # argmax takes the first of equal maxima
    per_C: dict[float, Fit] = {}
    for c_index, C in enumerate(task.Cs):
        mine = slice(c_index * len(pairs), (c_index + 1) * len(pairs))
        per_C[C] = Fit(predictions=classes[predicted[:, c_index]].astype(np.int64),
                       solver="libsvm" if solution.by_libsvm[mine].all() else "linear",
                       converged=bool(solution.converged[mine].all()),
                       iterations=int(solution.iterations[mine].max()),
                       error=float(solution.error[mine].max()),
                       objectives=tuple(float(o) for o in solution.objective[mine]))
    return per_C


def _dense_is_cheaper(encoded: np.ndarray, width: int) -> bool:
    """An iteration costs n^3 on the kernel Phi Phi' (n rows of the largest pair), n M^2 by
    Woodbury: with no more rows than features, the dense interior point is the cheaper one."""
    counts = np.bincount(encoded)
    largest_pair = int(np.sort(counts)[-2:].sum()) if counts.size >= 2 else int(counts.sum())
    return largest_pair <= width


def _kernels(task: LinearTask) -> tuple[np.ndarray, np.ndarray]:
    """The task's kernel Phi Phi' and its evaluated rows' Phi_e Phi', float64."""
    features = np.asarray(task.features, np.float64)
    return features @ features.T, np.asarray(task.evaluate, np.float64) @ features.T


def _fit_dense(task: LinearTask, tol: float, max_iter: int,
               check_cancel: Callable[[], None] | None) -> dict[float, Fit]:
    """The same problem on the kernel Phi Phi' (the dual sees only the kernel)."""
    from .jax_svm import SvmTask, fit_predict_many

    kernel, evaluate = _kernels(task)
    [per_C] = fit_predict_many([SvmTask(kernel, np.asarray(task.y_train), evaluate, list(task.Cs))],
                               tol=tol, max_iter=max_iter, check_cancel=check_cancel)
    return {C: dataclasses.replace(fit, solver="linear") for C, fit in per_C.items()}


#: Bytes of gathered problem rows (B x n x M float64) one solve may hold: problems beyond it
#: are solved in further batches.
BATCH_BYTES = 256 << 20


def _solve_in_batches(phi: np.ndarray, signs: np.ndarray, Cs: np.ndarray, tol: float, max_iter: int,
                      check_cancel: Callable[[], None] | None) -> LinearSolution:
    """:func:`solve_linear_duals` over batches of problems whose gathered rows fit BATCH_BYTES."""
    per_problem = _padded_size(int((signs != 0).sum(axis=1).max())) * phi.shape[1] * 8
    size = max(1, BATCH_BYTES // max(per_problem, 1))
    parts = [solve_linear_duals(phi, signs[start:start + size], Cs[start:start + size], tol=tol,
                                max_iter=max_iter, check_cancel=check_cancel)
             for start in range(0, len(Cs), size)]
    return _concatenated(parts)


#: libsvm's stopping tolerance on working sets: the free support vectors' margins come within
#: about this of 1, as tight as the KKT test on the rows outside the set.
LIBSVM_SET_TOL = 1e-6
#: Bytes of the kernels Phi_s Phi_s' that libsvm's threads hold at once (one thread at least).
LIBSVM_SET_BYTES = 512 << 20


def _solve_with_libsvm(phi: np.ndarray, signs: np.ndarray, Cs: np.ndarray, tol: float, max_iter: int,
                       check_cancel: Callable[[], None] | None, n_jobs: int | None = None) -> LinearSolution:
    """Each problem of at most LINEAR_KERNEL_ROWS rows by libsvm on its kernel Phi_s Phi_s'
    (capped at the hybrid's SMO steps); the rest, and those it does not finish, by
    :func:`_solve_in_batches`."""
    from .libsvm import default_jobs
    from .strategy import hybrid_iteration_cap

    sizes = (signs != 0).sum(axis=1)
    small = np.flatnonzero(sizes <= LINEAR_KERNEL_ROWS)

    def one(b: int) -> tuple:
        rows = np.flatnonzero(signs[b] != 0)
        part = phi[rows]
        kernel = part @ part.T
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # a capped fit goes on below
            model = SVC(kernel="precomputed", C=float(Cs[b]), tol=LIBSVM_SET_TOL,
                        max_iter=hybrid_iteration_cap(rows.size)).fit(kernel, signs[b, rows])
        coef = np.zeros(rows.size)  # y_i a_i, positive towards the sign +1 (sklearn's classes_[1])
        coef[model.support_] = model.dual_coef_[0]
        alpha = np.zeros(signs.shape[1])
        alpha[rows] = np.abs(coef)
        return (alpha, -float(model.intercept_[0]), part.T @ coef, 0.5 * coef @ kernel @ coef - np.abs(coef).sum(),
                model.fit_status_ == 0, int(np.max(model.n_iter_)))

    threads = max(1, min(n_jobs or default_jobs(), LIBSVM_SET_BYTES // max(8 * int(sizes.max()) ** 2, 1)))
    done = run_parallel([functools.partial(one, int(b)) for b in small], threads, check_cancel=check_cancel)
    result = {name: np.zeros((len(Cs),) + shape, dtype) for name, shape, dtype in (
        ("alpha", (signs.shape[1],), float), ("rho", (), float), ("weights", (phi.shape[1],), float),
        ("objective", (), float), ("converged", (), bool), ("iterations", (), np.int64), ("error", (), float),
        ("by_libsvm", (), bool))}
    for b, values in zip(small, done):
        for name, value in zip(_FIELDS, values):
            result[name][b] = value
        result["by_libsvm"][b] = True
    left = np.flatnonzero(~result["converged"] | ~result["by_libsvm"])
    if left.size:
        rest = _solve_in_batches(phi, signs[left], Cs[left], tol, max_iter, check_cancel)
        for name in _FIELDS:
            result[name][left] = getattr(rest, name)
    return LinearSolution(**result)


#: Rows of a problem's first working set; problems of at most twice as many are solved whole.
WORKING_SET_ROWS = 8192
#: Whether a libsvm set past LINEAR_KERNEL_ROWS keeps only its support vectors (see the
#: module's docstring); off only to measure against (``scale_benchmark fits --baseline unshrunk``).
SHRINK_LIBSVM_SETS = True
#: A row outside the working set with margin below 1 - KKT_TOL joins it (the IPM's own
#: tolerance puts the set's free support vectors within ~1e-8 of margin 1).
KKT_TOL = 1e-6
#: Rows per block of the margins computed over all rows.
_MARGIN_BLOCK = 65536


def _solve_on_working_sets(phi: np.ndarray, signs: np.ndarray, Cs: np.ndarray, tol: float, max_iter: int,
                           check_cancel: Callable[[], None] | None, *, libsvm_sets: bool = False,
                           n_jobs: int | None = None) -> LinearSolution:
    """:func:`_solve_in_batches` on growing working sets (see the module's docstring); with
    ``libsvm_sets``, :func:`_solve_with_libsvm` on sets that start at half LINEAR_KERNEL_ROWS,
    so that one round of growth still fits libsvm's kernel."""
    sizes = (signs != 0).sum(axis=1)
    if libsvm_sets:
        first, whole = LINEAR_KERNEL_ROWS // 2, LINEAR_KERNEL_ROWS
        solve = functools.partial(_solve_with_libsvm, n_jobs=n_jobs)
    else:
        first, whole, solve = WORKING_SET_ROWS, 2 * WORKING_SET_ROWS, _solve_in_batches
    if sizes.max() <= whole:
        return solve(phi, signs, Cs, tol, max_iter, check_cancel)
    rng = np.random.default_rng(0)
    chosen = np.zeros(signs.shape, bool)
    for b, labels in enumerate(signs):
        for sign in (1.0, -1.0):  # stratified: each side in proportion
            rows = np.flatnonzero(labels == sign)
            share = int(round(first * rows.size / max(sizes[b], 1)))
            chosen[b, rng.choice(rows, min(rows.size, max(share, 1)), replace=False)] = True
    result: dict[str, np.ndarray] = {}
    active = np.arange(len(Cs))
    while active.size:
        part = solve(phi, signs[active] * chosen[active], Cs[active], tol, max_iter, check_cancel)
        for name in _FIELDS:
            value = getattr(part, name)
            if name not in result:
                result[name] = np.zeros((len(Cs),) + value.shape[1:], value.dtype)
            if name == "iterations":
                result[name][active] += value  # the whole cost, over rounds
            else:
                result[name][active] = value
        grown = []
        for i, (b, worst) in enumerate(zip(active, _violators(phi, signs[active], chosen[active], part, first))):
            if not worst.size:
                continue
            if libsvm_sets and SHRINK_LIBSVM_SETS and chosen[b].sum() + worst.size > whole:
                # Past libsvm's limit the set would go to the interior point: keep only its
                # support vectors (rows at a = 0 leave the solution as it is, and come back if
                # they violate later) and the worst violators that fit beside them, when that
                # leaves room for a first set's rows (less would creep up a few rows a round).
                support = chosen[b] & (part.alpha[i] > 0)
                room = whole - int(support.sum())
                if room >= min(worst.size, first):
                    chosen[b] = support
                    worst = worst[:room]
            chosen[b, worst] = True
            grown.append(b)
        active = np.asarray(grown, np.int64)
    return LinearSolution(**result)


def _violators(phi: np.ndarray, signs: np.ndarray, chosen: np.ndarray, part: LinearSolution,
               first: int) -> list[np.ndarray]:
    """Per problem, its rows outside the working set that violate the whole problem's
    optimality conditions, worst first, at most as many as the set holds (or ``first``)."""
    found: list[list[np.ndarray]] = [[] for _ in signs]
    margins: list[list[np.ndarray]] = [[] for _ in signs]
    for start in range(0, phi.shape[0], _MARGIN_BLOCK):
        stop = min(phi.shape[0], start + _MARGIN_BLOCK)
        decision = phi[start:stop] @ part.weights.T - part.rho  # (rows, problems)
        for b in range(signs.shape[0]):
            labels = signs[b, start:stop]
            margin = labels * decision[:, b]
            rows = np.flatnonzero((labels != 0) & ~chosen[b, start:stop] & (margin < 1.0 - KKT_TOL))
            found[b].append(rows + start)
            margins[b].append(margin[rows])
    worst = []
    for b in range(signs.shape[0]):
        rows, margin = np.concatenate(found[b]), np.concatenate(margins[b])
        worst.append(rows[np.argsort(margin, kind="stable")[:max(int(chosen[b].sum()), first)]])
    return worst
