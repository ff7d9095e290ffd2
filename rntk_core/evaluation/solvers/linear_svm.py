"""A batched linear C-SVM in JAX: ``SVC(kernel="linear", C=C)`` on explicit features.

The landmark (Nystrom) path hands every kernel over as features Phi (N x M, M << N) with
``Phi Phi' ~ K``. Each one-vs-one problem is then libsvm's dual on the kernel ``Phi Phi'``,

    min_a  1/2 a'Qa - e'a   s.t.  y'a = 0,  0 <= a <= C,   Q = Y Phi Phi' Y,

the problem ``SVC(kernel="linear")`` solves on Phi: hinge loss, an UNREGULARISED intercept
(``LinearSVC`` regularises it, a different problem). It is solved by the same primal-dual
interior-point method as :mod:`.jax_svm`, with one change: Q has rank M, so the Newton system
``(C Q + D) x = r`` is solved through the Woodbury identity with an M x M Cholesky factor of
``I/C + G' D^-1 G`` (G = Y Phi). An iteration costs O(N M^2) per problem instead of O(N^3),
and no N x N matrix is ever formed.

All problems of a batch share one Phi (N, M) on the device: a problem is a mask over its
pair's rows and its signs, so kernels x C values x class pairs are solved together. Row
sums over N (``Phi' diag(a) Phi`` and the matrix-vector products) run over row blocks of
:data:`ROW_BLOCK`, so the temporaries stay bounded by the block, not by N.

Then, as libsvm does (and :mod:`.jax_svm`): bounded variables are snapped to 0 or C, rho is
the mean of ``y_i G_i`` over the free ones (or the midpoint of its bounds), and the decision
value of a row x is ``Phi(x) . w - rho`` with ``w = Phi_train' (a * y)``; one-vs-one votes go
to the pair's first class on a positive value, ties to the class that comes first.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .fit import Fit
from .interior_point import DEFAULT_MAX_ITER, DEFAULT_TOL, POLISH_STEPS, per_problem_on_cpu
from .jax_svm import ovo_pairs

__all__ = ["LinearTask", "LinearSolution", "ROW_BLOCK", "fit_predict_linear", "solve_linear_duals"]

#: Rows per block of the sums over N (bounds the (B, block, M) temporaries); fewer rows are one block.
ROW_BLOCK = 4096
_POLISH_TOL = 1e-14
_STEP_TO_BOUNDARY = 0.995
_MIN_RIDGE, _MAX_RIDGE = 1e-11, 1e-3
CHUNK_SECONDS = 1.0


class _State(NamedTuple):
    u: jax.Array  # (B, N) a / C
    z: jax.Array  # (B, N) multipliers of u >= 0
    w: jax.Array  # (B, N) multipliers of u <= 1
    b: jax.Array  # (B,) multiplier of y'u = 0
    done: jax.Array
    stopped: jax.Array
    iterations: jax.Array
    error: jax.Array
    polish: jax.Array
    ridge: jax.Array


class _LowRank(NamedTuple):
    """Q = Y Phi_c Phi_c' Y per problem, Phi_c = Phi - mu_b over the problem's rows (the
    dual is unchanged by that centring on y'a = 0, and it keeps a near-constant kernel from
    swamping the Newton matrix; see interior_point's centring)."""

    phi: jax.Array  # (B, n, M): each problem's own rows, zero-padded
    mean: jax.Array  # (B, M)
    y: jax.Array  # (B, n) +-1 on the problem's rows, 0 on padding
    mask: jax.Array  # (B, n)


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


def _q_times(q: _LowRank, v: jax.Array) -> jax.Array:
    """Q v (B, N)."""
    yv = q.y * v
    c = _project(q.phi, yv) - q.mean * jnp.sum(yv, axis=1, keepdims=True)
    return q.y * (_expand(q.phi, c) - jnp.sum(q.mean * c, axis=1, keepdims=True))


def _newton_solver(q: _LowRank, C: jax.Array, E: jax.Array) -> Callable[[jax.Array], jax.Array]:
    """x = (C Q + diag(E))^-1 r by Woodbury: E^-1 r - E^-1 G S^-1 G' E^-1 r, with
    S = I/C + G' E^-1 G (M x M) and G = Y Phi_c."""
    a = q.mask / E
    s = _project(q.phi, a)  # Phi' a
    total = jnp.sum(a, axis=1)
    S = (_gram(q.phi, a) - q.mean[:, :, None] * s[:, None, :] - s[:, :, None] * q.mean[:, None, :]
         + total[:, None, None] * q.mean[:, :, None] * q.mean[:, None, :])
    S = S + jax.vmap(jnp.diag)(jnp.broadcast_to((1.0 / C)[:, None], q.mean.shape))
    factor = per_problem_on_cpu(jnp.linalg.cholesky, S)

    def solve(r):
        re = r / E
        yr = q.y * re
        g = _project(q.phi, yr) - q.mean * jnp.sum(yr, axis=1, keepdims=True)  # G' E^-1 r
        c = per_problem_on_cpu(
            lambda f, g: jax.scipy.linalg.cho_solve((f, True), g[..., None])[..., 0], factor, g)
        back = q.y * (_expand(q.phi, c) - jnp.sum(q.mean * c, axis=1, keepdims=True))
        return (re - back / E) * q.mask

    return solve


def _measures(q: _LowRank, C, state: _State):
    u, z, w, b, mask = state.u, state.z, state.w, state.b, q.mask
    Qu = _q_times(q, u * mask)
    CQu = C[:, None] * Qu
    residual_dual = (CQu - 1.0 + b[:, None] * q.y - z + w) * mask
    residual_primal = jnp.sum(q.y * u * mask, axis=1)
    complementarity = jnp.sum((u * z + (1.0 - u) * w) * mask, axis=1)
    objective = jnp.sum((0.5 * CQu - 1.0) * u * mask, axis=1)
    gap = complementarity / jnp.maximum(jnp.abs(objective), 1e-300)
    dual = jnp.max(jnp.abs(residual_dual), axis=1) / (1.0 + jnp.max(jnp.abs(CQu) * mask, axis=1))
    primal = jnp.abs(residual_primal) / jnp.maximum(jnp.sum(u * mask, axis=1), 1e-300)
    return jnp.maximum(gap, jnp.maximum(dual, primal)), residual_dual, residual_primal


def _max_step(x, dx, mask):
    ratio = jnp.where((dx < 0) & (mask > 0), -x / jnp.where(dx < 0, dx, -1.0), jnp.inf)
    return jnp.minimum(1.0, jnp.min(ratio, axis=1))


def _iteration(q: _LowRank, C, diag_q, n_valid, tol, state: _State) -> _State:
    """One Mehrotra predictor-corrector step (as jax_svm._iteration, Newton solves by Woodbury)."""
    mask, y = q.mask, q.y
    u, z, w, b = state.u, state.z, state.w, state.b
    error, residual_dual, residual_primal = _measures(q, C, state)
    done = state.done | (error <= tol)
    stopped = state.stopped | (error <= _POLISH_TOL) | (state.polish >= POLISH_STEPS)
    mu = jnp.sum((u * z + (1.0 - u) * w) * mask, axis=1) / (2.0 * n_valid)
    d = jnp.where(mask > 0, z / u + w / (1.0 - u), 1.0)
    scale = 1.0 + jnp.max(C[:, None] * diag_q, axis=1)
    E = d + (state.ridge * scale)[:, None]
    solve = _newton_solver(q, C, E)
    my = solve(y)
    y_my = jnp.sum(y * my, axis=1)

    def direction(rc1, rc2):
        rhs = (-residual_dual + rc1 / u - rc2 / (1.0 - u)) * mask
        mr = solve(rhs)
        db = (jnp.sum(y * mr, axis=1) + residual_primal) / y_my
        du = (mr - db[:, None] * my) * mask
        dz = (rc1 - z * du) / u * mask
        dw = (rc2 + w * du) / (1.0 - u) * mask
        return du, dz, dw, db

    def step_length(du, dz, dw):
        primal = jnp.minimum(_max_step(u, du, mask), _max_step(1.0 - u, -du, mask))
        return jnp.minimum(primal, jnp.minimum(_max_step(z, dz, mask), _max_step(w, dw, mask)))

    du_a, dz_a, dw_a, _ = direction(-u * z, -(1.0 - u) * w)
    t_a = step_length(du_a, dz_a, dw_a)[:, None]
    mu_a = jnp.sum(((u + t_a * du_a) * (z + t_a * dz_a)
                    + (1.0 - u - t_a * du_a) * (w + t_a * dw_a)) * mask, axis=1) / (2.0 * n_valid)
    target = (jnp.clip(mu_a / mu, 0.0, 1.0) ** 3 * mu)[:, None]
    du, dz, dw, db = direction(target - u * z - du_a * dz_a, target - (1.0 - u) * w + du_a * dw_a)
    t = jnp.minimum(1.0, _STEP_TO_BOUNDARY * step_length(du, dz, dw))[:, None]
    new = (u + t * du, z + t * dz, w + t * dw, b + t[:, 0] * db)
    finite = (jnp.all(jnp.isfinite(new[0]), axis=1) & jnp.all(jnp.isfinite(new[1]), axis=1)
              & jnp.all(jnp.isfinite(new[2]), axis=1) & jnp.isfinite(new[3]))
    broke = ~stopped & ~finite
    keep = stopped | ~finite
    step = (~keep).astype(jnp.int32)
    return _State(
        u=jnp.where(keep[:, None], u, new[0]), z=jnp.where(keep[:, None], z, new[1]),
        w=jnp.where(keep[:, None], w, new[2]), b=jnp.where(keep, b, new[3]),
        done=done, stopped=stopped | (broke & (state.ridge >= _MAX_RIDGE)),
        iterations=state.iterations + step, error=error,
        polish=state.polish + step * done.astype(jnp.int32),
        ridge=jnp.where(broke, state.ridge * 100.0, state.ridge),
    )


@jax.jit
def _run_chunk(q: _LowRank, C, diag_q, tol, steps, state: _State) -> _State:
    n_valid = jnp.maximum(jnp.sum(q.mask, axis=1), 1.0)
    state = jax.lax.fori_loop(0, steps, lambda _, s: _iteration(q, C, diag_q, n_valid, tol, s), state)
    error = _measures(q, C, state)[0]
    return state._replace(done=state.done | (error <= tol), error=error,
                          stopped=state.stopped | (error <= _POLISH_TOL))


@jax.jit
def _start(q: _LowRank, C) -> _State:
    y, mask = q.y, q.mask
    positives = jnp.sum((y > 0) * mask, axis=1)
    negatives = jnp.sum((y < 0) * mask, axis=1)
    minority = jnp.maximum(jnp.minimum(positives, negatives), 1.0)
    per_class = jnp.where(y > 0, positives[:, None], negatives[:, None])
    u = jnp.where(mask > 0, 0.5 * minority[:, None] / jnp.maximum(per_class, 1.0), 0.5)
    gradient = C[:, None] * _q_times(q, u * mask) - 1.0
    batch = y.shape[0]
    return _State(u, (1.0 + jnp.maximum(gradient, 0.0)) * mask, (1.0 + jnp.maximum(-gradient, 0.0)) * mask,
                  jnp.zeros(batch), jnp.zeros(batch, bool), jnp.zeros(batch, bool),
                  jnp.zeros(batch, jnp.int32), jnp.full(batch, jnp.inf), jnp.zeros(batch, jnp.int32),
                  jnp.full(batch, _MIN_RIDGE))


@jax.jit
def _finish(phi, y, C, mask, state: _State):
    """libsvm's reading of the solution, on the uncentred Q = Y Phi Phi' Y (as jax_svm._finish);
    returns alpha, rho, the objective and w = Phi' (alpha * y)."""
    u, z, w_mult = state.u, state.z, state.w
    at_lower = (u <= z) & (u <= 1.0 - u) & (mask > 0)
    at_upper = ((1.0 - u) <= w_mult) & (u > 1.0 - u) & (mask > 0)
    free = (mask > 0) & ~at_lower & ~at_upper
    alpha = C[:, None] * jnp.where(at_upper, 1.0, jnp.where(at_lower, 0.0, u)) * mask
    weights = _project(phi, alpha * y)
    G = y * _expand(phi, weights) * mask - 1.0
    yG = y * G
    upper_side = (at_upper & (y < 0)) | (at_lower & (y > 0))
    lower_side = (at_upper & (y > 0)) | (at_lower & (y < 0))
    ub = jnp.min(jnp.where(upper_side, yG, jnp.inf), axis=1)
    lb = jnp.max(jnp.where(lower_side, yG, -jnp.inf), axis=1)
    n_free = jnp.sum(free, axis=1)
    mean_free = jnp.sum(jnp.where(free, yG, 0.0), axis=1) / jnp.maximum(n_free, 1)
    midpoint = jnp.where(jnp.isfinite(ub) & jnp.isfinite(lb), 0.5 * (ub + lb),
                         jnp.where(jnp.isfinite(ub), ub, jnp.where(jnp.isfinite(lb), lb, 0.0)))
    rho = jnp.where(n_free > 0, mean_free, midpoint)
    objective = jnp.sum((0.5 * (G + 1.0) - 1.0) * alpha, axis=1)
    return alpha, rho, objective, weights


@dataclass(frozen=True)
class LinearSolution:
    """A batch of binary duals on features, in libsvm's units.

    Attributes:
        alpha: (B, N) dual variables (0 outside each problem's rows).
        rho: (B,) intercepts; decision value ``phi(x) . weights[b] - rho[b]``.
        weights: (B, M) ``Phi' (alpha * y)``.
        objective: (B,) ``1/2 a'Qa - e'a``.
        converged, iterations, error: as :class:`.jax_svm.DualSolution`.
    """

    alpha: np.ndarray
    rho: np.ndarray
    weights: np.ndarray
    objective: np.ndarray
    converged: np.ndarray
    iterations: np.ndarray
    error: np.ndarray


def _padded_size(n: int) -> int:
    """Rows to a power of two (at least 64) up to ROW_BLOCK, then to a multiple of it, so that
    few shapes (few compilations) serve every problem; columns likewise go to a power of two
    (zero columns leave phi phi' as it is), so features of different ranks share one."""
    return max(64, 1 << (n - 1).bit_length()) if n <= ROW_BLOCK else -(-n // ROW_BLOCK) * ROW_BLOCK


@jax.jit
def _problem_means(phi, mask):
    count = jnp.maximum(jnp.sum(mask, axis=1), 1.0)
    return _project(phi, mask) / count[:, None]


@jax.jit
def _diagonal(phi, mean):
    """||phi_i - mu_b||^2, the diagonal of each centred Q (for the ridge's scale)."""
    norms = jnp.sum(phi * phi, axis=2)
    return norms - 2.0 * _expand(phi, mean) + jnp.sum(mean * mean, axis=1)[:, None]


def _gathered(phi: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Each problem's rows of phi and y, zero-padded to one size (see :func:`_padded`)."""
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
        q = _LowRank(phi, _problem_means(phi, mask), y, mask)
        diag_q = _diagonal(phi, q.mean) * mask
        state = _start(q, C)
        steps, taken = 1, 0
        while taken < max_iter:
            started = time.perf_counter()
            steps = min(steps, max_iter - taken)
            state = _run_chunk(q, C, diag_q, tol, steps, state)
            finished = np.asarray(state.stopped)
            taken += steps
            if on_iterations is not None:
                on_iterations(np.asarray(state.iterations))
            if check_cancel is not None:
                check_cancel()
            if finished.all():
                break
            elapsed = max(time.perf_counter() - started, 1e-4)
            steps = int(min(max(1, steps * CHUNK_SECONDS / elapsed), 2 * steps + 1, 32))
        alpha, rho, objective, weights = _finish(phi, y, C, mask, state)
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
    tol: float = DEFAULT_TOL,
    max_iter: int = DEFAULT_MAX_ITER,
    check_cancel: Callable[[], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> list[dict[float, Fit]]:
    """One-vs-one linear C-SVMs for every task and C, as ``SVC(kernel="linear", C=C)`` on the
    task's features would fit; each task's C values and class pairs are one batch.

    Returns, per task, ``{C: Fit}``.
    """
    fits: list[dict[float, Fit]] = []
    for number, task in enumerate(tasks):
        classes, encoded = np.unique(np.asarray(task.y_train), return_inverse=True)
        if classes.size < 2:
            raise ValueError(f"the number of classes has to be greater than one; got {classes.size} class")
        if _dense_is_cheaper(encoded, np.shape(task.features)[1]):
            fits.append(_fit_dense(task, tol, max_iter, check_cancel))
            if on_progress is not None:
                on_progress(number + 1, len(tasks))
            continue
        pairs = ovo_pairs(classes.size)
        signs = np.zeros((len(task.Cs) * len(pairs), encoded.size))
        Cs = np.repeat(np.asarray(task.Cs, float), len(pairs))
        for index, (i, j) in enumerate(pairs * len(task.Cs)):
            signs[index] = np.where(encoded == i, 1.0, np.where(encoded == j, -1.0, 0.0))
        solution = _solve_in_batches(np.asarray(task.features, np.float64), signs, Cs, tol, max_iter,
                                     check_cancel)
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
            per_C[C] = Fit(predictions=classes[predicted[:, c_index]].astype(np.int64), solver="linear",
                              converged=bool(solution.converged[mine].all()),
                              iterations=int(solution.iterations[mine].max()),
                              error=float(solution.error[mine].max()),
                              objectives=tuple(float(o) for o in solution.objective[mine]))
        fits.append(per_C)
        if on_progress is not None:
            on_progress(number + 1, len(tasks))
    return fits


def _dense_is_cheaper(encoded: np.ndarray, width: int) -> bool:
    """An iteration costs n^3 on the kernel Phi Phi' (n rows of the largest pair), n M^2 by
    Woodbury: with no more rows than features, the dense interior point is the cheaper one."""
    counts = np.bincount(encoded)
    largest_pair = int(np.sort(counts)[-2:].sum()) if counts.size >= 2 else int(counts.sum())
    return largest_pair <= width


def _fit_dense(task: LinearTask, tol: float, max_iter: int,
               check_cancel: Callable[[], None] | None) -> dict[float, Fit]:
    """The same problem on the kernel Phi Phi' (the dual sees only the kernel)."""
    from .jax_svm import SvmTask, fit_predict_many

    features = np.asarray(task.features, np.float64)
    kernel = features @ features.T
    evaluate = np.asarray(task.evaluate, np.float64) @ features.T
    [per_C] = fit_predict_many([SvmTask(kernel, np.asarray(task.y_train), evaluate, list(task.Cs))],
                               tol=tol, max_iter=max_iter, check_cancel=check_cancel)
    return {C: dataclasses.replace(fit, solver="linear") for C, fit in per_C.items()}


#: Bytes of gathered problem rows (B x n x M float64) one solve may hold: problems beyond it
#: are solved in further batches.
BATCH_BYTES = 1 << 30


def _solve_in_batches(phi: np.ndarray, signs: np.ndarray, Cs: np.ndarray, tol: float, max_iter: int,
                      check_cancel: Callable[[], None] | None) -> LinearSolution:
    """:func:`solve_linear_duals` over batches of problems whose gathered rows fit BATCH_BYTES."""
    per_problem = _padded_size(int((signs != 0).sum(axis=1).max())) * phi.shape[1] * 8
    size = max(1, BATCH_BYTES // max(per_problem, 1))
    parts = [solve_linear_duals(phi, signs[start:start + size], Cs[start:start + size], tol=tol,
                                max_iter=max_iter, check_cancel=check_cancel)
             for start in range(0, len(Cs), size)]
    if len(parts) == 1:
        return parts[0]
    return LinearSolution(*(np.concatenate([getattr(part, name) for part in parts])
                            for name in ("alpha", "rho", "weights", "objective", "converged", "iterations", "error")))
