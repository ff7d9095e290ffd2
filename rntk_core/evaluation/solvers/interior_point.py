"""The batched interior-point solve of binary C-SVM duals, in JAX.

Each binary problem is libsvm's dual,

    min_a  1/2 a'Qa - e'a   s.t.  y'a = 0,  0 <= a <= C,   Q_ij = y_i y_j K_ij,

solved by a primal-dual interior-point method (Mehrotra predictor-corrector) in float64,
many problems at once: every iteration is one batched Cholesky factorisation. Why this and
not SMO:

- Its iteration count hardly depends on C or on the conditioning of K (15 to 40 iterations
  from C = 1e-2 to 1e6, measured by the tests and ``benchmarks.svm_benchmark``), so the time
  of a fit is bounded at any C. libsvm's SMO moves one pair per step and needs millions of
  steps on non-separable data at large C.
- An iteration is dense linear algebra (GEMM-like Cholesky), which is what a GPU does well;
  large-working-set SMO (ThunderSVM) still takes a data-dependent number of rounds.

Variables are scaled as ``u = a / C`` so every C is solved in the same units. The solve
stops at a stated tolerance, :data:`DEFAULT_TOL`, on the relative complementarity gap and the
relative primal and dual residuals; a problem that misses it within ``max_iter`` iterations
is reported (``converged=False``), never hidden.

Then, as libsvm does: each variable is classified as at its lower bound, upper bound or
free (by comparing it with its bound multiplier, which identifies the active set once the
gap is small), bounded ones are set exactly to 0 or C, and the intercept ``rho`` is the mean
of ``y_i G_i`` over the free variables (``G = Qa - e``), or the midpoint of libsvm's bounds
when none is free.

Cancel: the iterations run in chunks of about a second from the host; ``check_cancel()``
runs between chunks. The one-vs-one multi-class fits built on this are :mod:`.jax_svm`'s.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Protocol

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["DEFAULT_MAX_ITER", "DEFAULT_TOL", "POLISH_STEPS", "DenseQ", "DualSolution", "QOperator", "finish",
           "iterate", "per_problem_on_cpu", "solve_duals", "solve_on_device"]

#: Relative duality gap and residuals at which a problem counts as solved. Tight enough that
#: the dual objective agrees with an exact solution to ~1e-9 and the decision values to
#: well under libsvm's own stopping tolerance (1e-3).
DEFAULT_TOL = 1e-9
DEFAULT_MAX_ITER = 150
#: Host seconds one chunk of iterations should take, so that a cancel lands quickly.
CHUNK_SECONDS = 1.0
#: Steps taken past ``tol`` (until the gap reaches _POLISH_TOL) so the active set -- which
#: variables sit at 0 or C -- is identified without doubt. At large C the free a_i can be
#: 1e-6 of C, and telling them from bounded ones needs a gap well below 1e-9.
POLISH_STEPS = 4
_POLISH_TOL = 1e-14
_STEP_TO_BOUNDARY = 0.995
_MIN_RIDGE, _MAX_RIDGE = 1e-11, 1e-3


class _State(NamedTuple):
    u: jax.Array  # (B, n) a / C, strictly inside (0, 1) on valid entries
    z: jax.Array  # (B, n) multipliers of u >= 0
    w: jax.Array  # (B, n) multipliers of u <= 1
    b: jax.Array  # (B,) multiplier of y'u = 0
    done: jax.Array  # (B,) reached ``tol`` (converged)
    stopped: jax.Array  # (B,) no more steps: polished, polishing ran out, or a step broke down
    iterations: jax.Array  # (B,) int32
    error: jax.Array  # (B,) the largest of the three relative measures at the last check
    polish: jax.Array  # (B,) int32 steps taken since reaching ``tol``
    ridge: jax.Array  # (B,) relative diagonal shift of the Newton matrix (grows on breakdown)


class QOperator(Protocol):
    """What the iteration needs of each problem's Q = Y K Y (a JAX pytree, e.g. a NamedTuple):
    its labels and mask (B, n), products with Q, the magnitude of its diagonal, and solves of
    the Newton system (C Q + diag(E)) x = r."""

    y: jax.Array
    mask: jax.Array

    def times(self, v: jax.Array) -> jax.Array: ...

    def diagonal(self) -> jax.Array: ...

    def newton(self, C: jax.Array, E: jax.Array) -> Callable[[jax.Array], jax.Array]: ...


class DenseQ(NamedTuple):
    """Q as (B, n, n) blocks; the Newton system by one Cholesky factor per problem."""

    Q: jax.Array
    y: jax.Array
    mask: jax.Array

    def times(self, v: jax.Array) -> jax.Array:
        return jnp.einsum("bij,bj->bi", self.Q, v)

    def diagonal(self) -> jax.Array:
        return jnp.abs(jnp.diagonal(self.Q, axis1=1, axis2=2))

    def newton(self, C: jax.Array, E: jax.Array) -> Callable[[jax.Array], jax.Array]:
        factor = _cholesky(C[:, None, None] * self.Q + jax.vmap(jnp.diag)(E))
        return lambda rhs: _cho_solve(factor, rhs)


def _measures(op: QOperator, C, state: _State):
    """Relative gap, dual and primal residuals of each problem, and the scaled objective."""
    y, mask = op.y, op.mask
    u, z, w, b = state.u, state.z, state.w, state.b
    Qu = op.times(u * mask)
    CQu = C[:, None] * Qu
    residual_dual = (CQu - 1.0 + b[:, None] * y - z + w) * mask
    residual_primal = jnp.sum(y * u * mask, axis=1)
    complementarity = jnp.sum((u * z + (1.0 - u) * w) * mask, axis=1)
    objective = jnp.sum((0.5 * CQu - 1.0) * u * mask, axis=1)
    # Relative to the objective itself (never 0 at a dual optimum: a small step from a = 0
    # along y'a = 0 lowers it), so a tiny objective (large C, separable data) is not solved
    # to an absolute tolerance only.
    gap = complementarity / jnp.maximum(jnp.abs(objective), 1e-300)
    # Relative to the gradient's largest term: at C = 1e6 on a near-constant kernel C Q u is
    # ~1e6 and float64 cannot cancel it below ~1e-10 absolute.
    dual = jnp.max(jnp.abs(residual_dual), axis=1) / (1.0 + jnp.max(jnp.abs(CQu) * mask, axis=1))
    primal = jnp.abs(residual_primal) / jnp.maximum(jnp.sum(u * mask, axis=1), 1e-300)
    return jnp.maximum(gap, jnp.maximum(dual, primal)), residual_dual, residual_primal


def _max_step(x, dx, mask):
    """Largest t <= 1 with x + t dx >= 0 on the valid entries."""
    ratio = jnp.where((dx < 0) & (mask > 0), -x / jnp.where(dx < 0, dx, -1.0), jnp.inf)
    return jnp.minimum(1.0, jnp.min(ratio, axis=1))


def _iteration(op: QOperator, C, n_valid, tol, state: _State) -> _State:
    """One Mehrotra predictor-corrector step for every problem not yet done."""
    y, mask = op.y, op.mask
    u, z, w, b = state.u, state.z, state.w, state.b
    error, residual_dual, residual_primal = _measures(op, C, state)
    done = state.done | (error <= tol)
    stopped = state.stopped | (error <= _POLISH_TOL) | (state.polish >= POLISH_STEPS)
    mu = jnp.sum((u * z + (1.0 - u) * w) * mask, axis=1) / (2.0 * n_valid)

    # Newton matrix (C Q + D); padded entries get an identity row so their step is zero.
    d = jnp.where(mask > 0, z / u + w / (1.0 - u), 1.0)
    scale = 1.0 + jnp.max(C[:, None] * op.diagonal() * mask, axis=1)
    # A ridge keeps Cholesky defined when Q_FF is singular (duplicate points) or numerically
    # so (a near-constant kernel at C = 1e6). It only perturbs the Newton direction: residuals
    # are exact, so the iteration still converges, more slowly for a larger ridge.
    ridge = state.ridge * scale
    solve = op.newton(C, d + ridge[:, None])

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
        dual = jnp.minimum(_max_step(z, dz, mask), _max_step(w, dw, mask))
        return jnp.minimum(primal, dual)

    # Predictor (affine scaling), then the centred, second-order corrected step.
    du_a, dz_a, dw_a, _ = direction(-u * z, -(1.0 - u) * w)
    t_a = step_length(du_a, dz_a, dw_a)[:, None]
    mu_a = jnp.sum(((u + t_a * du_a) * (z + t_a * dz_a)
                    + (1.0 - u - t_a * du_a) * (w + t_a * dw_a)) * mask, axis=1) / (2.0 * n_valid)
    sigma = jnp.clip(mu_a / mu, 0.0, 1.0) ** 3
    target = (sigma * mu)[:, None]
    du, dz, dw, db = direction(target - u * z - du_a * dz_a, target - (1.0 - u) * w + du_a * dw_a)
    t = jnp.minimum(1.0, _STEP_TO_BOUNDARY * step_length(du, dz, dw))[:, None]

    new_u, new_z, new_w, new_b = u + t * du, z + t * dz, w + t * dw, b + t[:, 0] * db
    finite = (jnp.all(jnp.isfinite(new_u), axis=1) & jnp.all(jnp.isfinite(new_z), axis=1)
              & jnp.all(jnp.isfinite(new_w), axis=1) & jnp.isfinite(new_b))
    # A step that breaks down (Cholesky of a numerically singular matrix) is not taken; the
    # ridge grows 100x and the next iteration retries, up to _MAX_RIDGE, then the problem stops.
    broke = ~stopped & ~finite
    ridge_next = jnp.where(broke, state.ridge * 100.0, state.ridge)
    keep = stopped | ~finite
    stopped = stopped | (broke & (state.ridge >= _MAX_RIDGE))
    step = (~keep).astype(jnp.int32)
    return _State(
        u=jnp.where(keep[:, None], u, new_u),
        z=jnp.where(keep[:, None], z, new_z),
        w=jnp.where(keep[:, None], w, new_w),
        b=jnp.where(keep, b, new_b),
        done=done,
        stopped=stopped,
        iterations=state.iterations + step,
        error=error,
        polish=state.polish + step * done.astype(jnp.int32),
        ridge=ridge_next,
    )


def _cholesky(M: jax.Array) -> jax.Array:
    """Lower Cholesky factors of a (B, n, n) batch; see :func:`per_problem_on_cpu`."""
    return per_problem_on_cpu(jnp.linalg.cholesky, M)


def _cho_solve(factor: jax.Array, rhs: jax.Array) -> jax.Array:
    """``M^-1 rhs`` for each of a batch of factors (B, n, n) and right-hand sides (B, n)."""

    def one(factor, rhs):
        return jax.scipy.linalg.cho_solve((factor, True), rhs[..., None])[..., 0]

    return per_problem_on_cpu(one, factor, rhs)


def per_problem_on_cpu(function: Callable[..., jax.Array], *operands: jax.Array) -> jax.Array:
    """``function`` on a batch: one batched call on accelerators, one LAPACK call per problem on
    the CPU.

    jaxlib 0.10's CPU LAPACK kernels split a batch into chunks on XLA's intra-op thread pool and
    block until they finish. Called from inside a compiled loop that itself runs on that pool,
    they can wait for chunks that no free thread will ever run: the solver deadlocked in
    ``lapack_dtrsm_ffi`` -> ``ParallelBatchMap`` -> ``BlockingCounter::Wait`` (twice in CI,
    under load). A batch of one is always run inline by the caller (``chunk_size >= batch``),
    so on the CPU each problem gets its own call through ``lax.map``; GPUs keep the batched
    cuSOLVER call.
    """
    return jax.lax.platform_dependent(
        *operands,
        cpu=lambda *xs: jax.lax.map(lambda x: function(*x), xs),
        default=function,
    )


@jax.jit
def _run_chunk(op: QOperator, C, tol, steps, state: _State) -> _State:
    n_valid = jnp.maximum(jnp.sum(op.mask, axis=1), 1.0)
    body = lambda _, s: _iteration(op, C, n_valid, tol, s)  # noqa: E731
    state = jax.lax.fori_loop(0, steps, body, state)
    # Re-measure so ``done`` and ``error`` describe the state handed back.
    error = _measures(op, C, state)[0]
    return state._replace(done=state.done | (error <= tol), error=error,
                          stopped=state.stopped | (error <= _POLISH_TOL))


@jax.jit
def _start(op: QOperator, C) -> _State:
    """A balanced interior start (y'u = 0) with zero dual residual."""
    y, mask = op.y, op.mask
    positives = jnp.sum((y > 0) * mask, axis=1)
    negatives = jnp.sum((y < 0) * mask, axis=1)
    minority = jnp.maximum(jnp.minimum(positives, negatives), 1.0)
    per_class = jnp.where(y > 0, positives[:, None], negatives[:, None])
    u = jnp.where(mask > 0, 0.5 * minority[:, None] / jnp.maximum(per_class, 1.0), 0.5)
    gradient = C[:, None] * op.times(u * mask) - 1.0
    z = (1.0 + jnp.maximum(gradient, 0.0)) * mask
    w = (1.0 + jnp.maximum(-gradient, 0.0)) * mask
    batch = y.shape[0]
    return _State(u, z, w, jnp.zeros(batch), jnp.zeros(batch, bool), jnp.zeros(batch, bool),
                  jnp.zeros(batch, jnp.int32), jnp.full(batch, jnp.inf), jnp.zeros(batch, jnp.int32),
                  jnp.full(batch, _MIN_RIDGE))


@jax.jit
def finish(op: QOperator, C, state: _State):
    """libsvm's reading of a solution: snap bounded variables, then rho from the free ones.
    ``op`` is Q of the kernel as given (the centring is exact only where y'a = 0, which
    snapping bounded variables keeps only to rounding). Returns alpha, rho, the objective."""
    y, mask = op.y, op.mask
    u, z, w = state.u, state.z, state.w
    # u_i z_i = mu, so u_i <= z_i is u_i <= sqrt(mu): with mu ~ 1e-16 or less after
    # polishing, a free a_i >= 1e-8 C is never taken for a bounded one.
    at_lower = (u <= z) & (u <= 1.0 - u) & (mask > 0)
    at_upper = ((1.0 - u) <= w) & (u > 1.0 - u) & (mask > 0)
    free = (mask > 0) & ~at_lower & ~at_upper
    alpha = C[:, None] * jnp.where(at_upper, 1.0, jnp.where(at_lower, 0.0, u)) * mask
    G = op.times(alpha) - 1.0
    yG = y * G
    # libsvm's calculate_rho: bounds from bounded variables, the mean over free ones.
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
    return alpha, rho, objective


@dataclass(frozen=True)
class DualSolution:
    """The solutions of a batch of binary duals, in libsvm's units.

    Attributes:
        alpha: (B, n) the dual variables (0 on padded entries).
        rho: (B,) the intercept; the decision value is ``K(x, train) @ (alpha * y) - rho``.
        objective: (B,) ``1/2 a'Qa - e'a`` at ``alpha``.
        converged: (B,) reached the tolerance.
        iterations: (B,) interior-point iterations taken.
        error: (B,) the largest relative gap / residual at the end.
    """

    alpha: np.ndarray
    rho: np.ndarray
    objective: np.ndarray
    converged: np.ndarray
    iterations: np.ndarray
    error: np.ndarray


def solve_duals(
    K: Any,
    y: Any,
    C: Any,
    *,
    mask: Any = None,
    tol: float = DEFAULT_TOL,
    max_iter: int = DEFAULT_MAX_ITER,
    check_cancel: Callable[[], None] | None = None,
    on_iterations: Callable[[np.ndarray], None] | None = None,
) -> DualSolution:
    """Solve a batch of binary C-SVM duals of one (padded) size.

    Args:
        K: (B, n, n) kernel blocks (symmetric).
        y: (B, n) labels in {+1, -1}; 0 on padded entries.
        C: (B,) penalties.
        mask: (B, n) 1 on real entries; default ``y != 0``.
        tol: relative gap / residual to stop at.
        max_iter: iterations after which an unsolved problem is reported as not converged.
        check_cancel: called between chunks of iterations; raise from it to stop.
        on_iterations: called between chunks with the (B,) iteration counts so far.
    """
    with jax.enable_x64(True):
        y = jnp.asarray(y, jnp.float64)
        mask = (y != 0).astype(jnp.float64) if mask is None else jnp.asarray(mask, jnp.float64)
        alpha, rho, objective, state = solve_on_device(
            jnp.asarray(K, jnp.float64), y, jnp.asarray(C, jnp.float64), mask, tol, max_iter,
            check_cancel, on_iterations)
        return DualSolution(
            alpha=np.asarray(alpha), rho=np.asarray(rho), objective=np.asarray(objective),
            converged=np.asarray(state.done), iterations=np.asarray(state.iterations),
            error=np.asarray(state.error),
        )


def solve_on_device(K, y, C, mask, tol, max_iter, check_cancel, on_iterations):
    """:func:`solve_duals` on float64 device arrays (inside the caller's x64 scope); alpha, rho
    and the objective stay on the device, with the final state."""
    signs = y[:, :, None] * y[:, None, :]
    state = iterate(DenseQ(_centred(K, mask) * signs, y, mask), C, tol, max_iter, check_cancel, on_iterations)
    alpha, rho, objective = finish(DenseQ(K * signs, y, mask), C, state)
    return alpha, rho, objective, state


def iterate(op: QOperator, C: jax.Array, tol: float, max_iter: int,
            check_cancel: Callable[[], None] | None,
            on_iterations: Callable[[np.ndarray], None] | None) -> _State:
    """Interior-point iterations from the start until every problem stopped or ``max_iter``,
    in chunks of about CHUNK_SECONDS (cancel and progress run between chunks)."""
    state = _start(op, C)
    steps, taken = 1, 0
    while taken < max_iter:
        started = time.perf_counter()
        steps = min(steps, max_iter - taken)
        state = _run_chunk(op, C, tol, steps, state)
        finished = np.asarray(state.stopped)
        taken += steps
        if on_iterations is not None:
            on_iterations(np.asarray(state.iterations))
        if check_cancel is not None:
            check_cancel()
        if finished.all():
            break
        # Grow or shrink the chunk so one call takes about CHUNK_SECONDS.
        elapsed = max(time.perf_counter() - started, 1e-4)
        steps = int(min(max(1, steps * CHUNK_SECONDS / elapsed), 2 * steps + 1, 32))
    return state


@jax.jit
def _centred(K, mask):
    """``K_ij - m_i - m_j + m`` (m_i: row means, m: their mean, over the valid entries).

    The dual is unchanged: a'Y(g 1' + 1 g')Ya = 2 (sum_i a_i y_i g_i)(y'a) = 0 on y'a = 0, for
    any g. It removes the near-constant part of a kernel such as a small-gamma RBF
    (K ~ 1 - gamma d), whose C y y' term (~C n at C = 1e6) swamped the Newton matrix: abalone's
    RBF fits at C = 1e6 stalled there, and libsvm took minutes over them.
    """
    count = jnp.maximum(jnp.sum(mask, axis=1), 1.0)
    means = jnp.einsum("bij,bj->bi", K, mask) / count[:, None]
    grand = jnp.sum(means * mask, axis=1) / count
    pair_mask = mask[:, :, None] * mask[:, None, :]
    return (K - means[:, :, None] - means[:, None, :] + grand[:, None, None]) * pair_mask
