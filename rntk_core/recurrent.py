"""The fused recursion over steps and layers that yields every RNTK variant.

Axis names used throughout (sizes in parentheses):
  D  directions swept together (1 or 2: forward, reversed)
  G  (sigma_u, sigma_b) pairs batched together
  L  layers; the readout after layer l is the l-layer network's kernel
  T  steps, m features per step, and a tile of ta x tb sample pairs

One dual-activation evaluation per (layer, step) feeds the layer above, the next
step and the readouts (CK/NTK x last/avg), so a single sweep gives them all.
"""

from __future__ import annotations

import math
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .dual import ArccosMethod, cauchy_schwarz_gap, relu_dual, relu_dual_defect

# Readout order of the second axis of a tile's output.
READOUTS = (("ck", "last"), ("ck", "avg"), ("ntk", "last"), ("ntk", "avg"))


def sample_variances(
    inputs: np.ndarray,
    started: np.ndarray,
    sigma_w: float,
    sigma_u: np.ndarray,
    sigma_b: np.ndarray,
    layers: int,
) -> np.ndarray:
    """Per-sample variances S(l,t)(x, x) in float64, O(N T L), by the closed form Vphi = a/2.

    inputs: (D, N, T, m); started: (D, N, T); sigma_u, sigma_b: (G,).
    Returns (D, G, L, T, N).
    """
    directions, n, steps, features = inputs.shape
    su2 = (np.asarray(sigma_u, dtype=np.float64) ** 2)[None, :, None]
    sb2 = (np.asarray(sigma_b, dtype=np.float64) ** 2)[None, :, None]
    sw2 = float(sigma_w) ** 2
    sq_norms = np.einsum("dntm,dntm->dtn", inputs, inputs)  # (D, T, N)
    mask = np.transpose(started, (0, 2, 1))[:, None]  # (D, 1, T, N)
    out = np.zeros((directions, len(sigma_u), layers, steps, n))
    prev = np.zeros((layers, directions, len(sigma_u), n))
    for t in range(steps):
        below = su2 / features * sq_norms[:, None, t]
        for layer in range(layers):
            var = (below + sw2 * 0.5 * prev[layer] + sb2) * mask[:, :, t]
            out[:, :, layer, t] = var
            prev[layer] = var
            below = su2 * 0.5 * var
    return out


def variance_scales(variances: np.ndarray, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """What the tile kernel consumes per sample: sqrt(a) and 1/sqrt(a) (0 where a = 0)
    for float32; for float64 (exact mode) the variance itself, twice."""
    if dtype == np.float64:
        return variances, variances
    root = np.sqrt(variances)
    inv_root = np.divide(1.0, root, out=np.zeros_like(root), where=root > 0)
    return root.astype(dtype), inv_root.astype(dtype)


class Operand(NamedTuple):
    """One side (X or Y) of a tile, time-major; a pytree, so it passes through ``jit`` whole.

    values: (T, D, n, m) inputs; roots, inv_roots: (T, D, G, L, n) per-sample sqrt(variance)
    and its inverse (in float64, the variance itself, twice); started: (T, D, n) masks.
    The sample axis is the last but one of ``values`` and the last of the others.
    """

    values: jnp.ndarray
    roots: jnp.ndarray
    inv_roots: jnp.ndarray
    started: jnp.ndarray

    def rows(self, rows: slice) -> "Operand":
        """The samples ``rows`` of every field."""
        return Operand(self.values[:, :, rows], self.roots[..., rows], self.inv_roots[..., rows],
                       self.started[..., rows])


class Sigmas(NamedTuple):
    """The hyperparameters of one tile call: sigma_w a scalar, sigma_u and sigma_b (G,)."""

    sigma_w: jnp.ndarray
    sigma_u: jnp.ndarray
    sigma_b: jnp.ndarray


def _norms(values: jnp.ndarray) -> jnp.ndarray:
    """|x| over the last axis; |x| itself for one feature (exact, so x/|x| is exactly +-1)."""
    if values.shape[-1] == 1:
        return jnp.abs(jnp.squeeze(values, -1))  # a squeeze, not a slice: Triton lowers it
    return jnp.sqrt(jnp.sum(values * values, axis=-1))


def inputs_defect(xa: jnp.ndarray, xb: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    """|x|, |x'| and the inputs' defect |x||x'| - x.x' = |x||x'| |x/|x| - x'/|x'||^2 / 2 for
    every pair: exactly 0 for equal or parallel steps, 2 |x x'| or 0 for one feature.

    xa: (..., na, m), xb: (..., nb, m). Returns (..., na), (..., nb), (..., na, nb).
    Shared by :func:`fused_tile` and the Pallas kernel (pallas_tile.py).
    """
    norm_a, norm_b = _norms(xa), _norms(xb)
    unit_a = xa / jnp.where(norm_a > 0, norm_a, 1.0)[..., None]
    unit_b = xb / jnp.where(norm_b > 0, norm_b, 1.0)[..., None]
    spread = jnp.sum(jnp.square(unit_a[..., :, None, :] - unit_b[..., None, :, :]), axis=-1)
    return norm_a, norm_b, 0.5 * norm_a[..., :, None] * norm_b[..., None, :] * spread


def next_q(cov, q_prev, below_q, dvphi, sw2, su2):
    """P only ever appears as P(l,t) Vphi'(l,t), so the recursion carries Q = P Vphi'."""
    return (cov + sw2 * q_prev + su2 * below_q) * dvphi


def defect_layer(below_input, below_q, state_prev, q_prev, scale, ra, rb, ia, ib, parts_a, parts_b,
                 sw2, su2, arccos_method: ArccosMethod):
    """One (layer, step) of the float32 recursion, for arrays that broadcast per pair.

    E = sqrt(a b) - s, from a = |u|^2, b = |v|^2 over the three parts of each variance
    (``parts_*``: input, recurrent, bias roots): the gap |u||v| - u.v plus each part's own
    defect (input: ``scale * below_input``, recurrent: ``sw2 * state_prev``; the bias's is 0).
    Every term is >= 0, so nothing cancels; a pair not both started gets E = 0.
    Returns the carried state Ephi, Vphi and Q. Shared by :func:`fused_tile` and the Pallas
    kernel (pallas_tile.py).
    """
    defect = cauchy_schwarz_gap(parts_a, parts_b, ra * rb) + scale * below_input + sw2 * state_prev
    vphi, state, dvphi = relu_dual_defect(defect, ra, rb, ia, ib, arccos_method)
    cov = ra * rb - defect  # 0 for a pair not both started (both terms are 0)
    return state, vphi, next_q(cov, q_prev, below_q, dvphi, sw2, su2)


@partial(jax.jit, static_argnames=("layers", "masked", "arccos_method"))
def fused_tile(
    a: Operand,
    b: Operand,
    sigmas: Sigmas,
    *,
    layers: int,
    masked: bool,
    arccos_method: ArccosMethod,
) -> jnp.ndarray:
    """Every readout of one tile of sample pairs (ta rows of ``a`` x tb rows of ``b``).

    ``started`` masks are ignored unless ``masked``.
    In float64 the scales are the variances and the dual follows the spec literally,
    with c = 1 exactly for pairs whose sequences are identical so far (x = x'). In float32
    the recursion carries the defect sqrt(a b) - s (dual.py), from the roots of each
    variance's input, recurrent and bias parts.
    Returns (D, 4, L, G, ta, tb): readouts in READOUTS order, with sigma_v = 1.
    """
    x_a, root_a, inv_root_a, started_a = a
    x_b, root_b, inv_root_b, started_b = b
    sigma_w, sigma_u, sigma_b = sigmas
    directions, tile_a, features = x_a.shape[1:]
    tile_b = x_b.shape[2]
    dtype = x_a.dtype
    exact = dtype == jnp.float64
    groups = sigma_u.shape[0]
    sw2 = sigma_w * sigma_w
    su2 = (sigma_u * sigma_u)[None, :, None, None]
    sb2 = (sigma_b * sigma_b)[None, :, None, None]
    shape = (directions, groups, tile_a, tile_b)
    # The layer below's input is scaled by su^2/m at layer 1 and su^2 above it.
    input_scale = jnp.stack([su2 / features] + [su2] * (layers - 1))  # (L, 1, G, 1, 1)
    # Layers run in an inner scan: its carry materialises each layer's Vphi and Q once.
    # As one unrolled body, XLA:CPU fuses every consumer with its producers and
    # recomputes the layers below inside each fusion of the layer above.
    layer_major = lambda a: jnp.moveaxis(a, 3, 1)  # (T, D, G, L, t) -> (T, L, D, G, t)
    root_a, root_b, inv_root_a, inv_root_b = map(
        layer_major, (root_a, root_b, inv_root_a, inv_root_b)
    )
    zeros = jnp.zeros((layers,) + shape, dtype)
    # float32: the roots of each variance's three parts (input, recurrent, bias), per sample.
    # Layer l's input part is su^2/m |x_t|^2 (l = 1) or su^2 a(l-1, t)/2; its recurrent part
    # sw^2 a(l, t-1)/2; its bias part sb^2 once the sequence has started.
    half_root = math.sqrt(0.5)
    su = sigma_u[None, :, None]  # (1, G, 1)
    root_w = sigma_w * half_root

    def layer_step(below, per_layer):
        # ``state`` is Vphi in float64 and its defect Ephi = sqrt(a b)/2 - Vphi in float32
        # (see dual.py).
        below_input, input_a, input_b, below_q, pair_started, identical = below
        state_prev, q_prev, scale, ra, rb, ia, ib, prev_a, prev_b, bias_a, bias_b = per_layer
        ra, rb = ra[:, :, :, None], rb[:, :, None, :]
        ia, ib = ia[:, :, :, None], ib[:, :, None, :]
        if exact:
            cov = scale * below_input + sw2 * state_prev + sb2
            if masked:
                cov = cov * pair_started
            vphi, dvphi = relu_dual(ra, rb, cov, identical)
            state = vphi
            q = next_q(cov, q_prev, below_q, dvphi, sw2, su2)
        else:
            parts_a = (input_a[:, :, :, None], root_w * prev_a[:, :, :, None], bias_a[:, :, :, None])
            parts_b = (input_b[:, :, None, :], root_w * prev_b[:, :, None, :], bias_b[:, :, None, :])
            state, vphi, q = defect_layer(below_input, below_q, state_prev, q_prev, scale, ra, rb, ia, ib,
                                          parts_a, parts_b, sw2, su2, arccos_method)
        if not exact:  # the next layer's input part: su^2 a(l, t)/2
            input_a, input_b = su * half_root * ra[..., 0], su * half_root * rb[:, :, 0, :]
        return (state, input_a, input_b, q, pair_started, identical), (state, vphi, q)

    def time_step(carry, inputs):
        state_prev, q_prev, vphi_prev, vphi_sum, q_sum, identical, prev_a, prev_b = carry
        xa, xb, ra, rb, ia, ib, sa, sb = inputs
        pair_started = (sa[:, :, None] * sb[:, None, :])[:, None] if masked else jnp.ones((), dtype)
        if exact:
            # HIGHEST: on GPUs float32 einsums default to TF32 (1e-4 relative errors in K).
            inputs_term = jnp.einsum("dam,dbm->dab", xa, xb, precision=jax.lax.Precision.HIGHEST)
            # Pairs identical up to step t have c = 1 exactly; computed, c can be an ulp off,
            # and arccos turns that ulp into a 1e-8 error in theta.
            same_step = jnp.all(xa[:, :, None, :] == xb[:, None, :, :], axis=-1)
            same_step &= sa[:, :, None] == sb[:, None, :]
            identical = identical & same_step[:, None]
            input_a = input_b = bias_a = bias_b = jnp.zeros((layers, 1, 1, 1), dtype)
        else:
            norm_a, norm_b, inputs_term = inputs_defect(xa, xb)  # (D, n), (D, n), (D, ta, tb)
            started_a = sa[:, None, :] if masked else jnp.ones((), dtype)
            started_b = sb[:, None, :] if masked else jnp.ones((), dtype)
            input_a = su * (norm_a[:, None, :] / math.sqrt(features)) * started_a  # (D, G, ta)
            input_b = su * (norm_b[:, None, :] / math.sqrt(features)) * started_b
            bias = jnp.broadcast_to(sigma_b[None, :, None], (directions, groups, 1))
            bias_a = jnp.broadcast_to((bias * started_a)[None], (layers, directions, groups, tile_a))
            bias_b = jnp.broadcast_to((bias * started_b)[None], (layers, directions, groups, tile_b))
        inputs_term = jnp.broadcast_to(inputs_term[:, None], shape)
        _, (state, vphi, q) = jax.lax.scan(
            layer_step,
            (inputs_term, input_a, input_b, jnp.zeros(shape, dtype), pair_started, identical),
            (state_prev, q_prev, input_scale, ra, rb, ia, ib, prev_a, prev_b, bias_a, bias_b),
        )
        return (state, q, vphi, vphi_sum + vphi, q_sum + q, identical, ra, rb), None

    identical = jnp.ones((directions, 1, tile_a, tile_b), bool) if exact else jnp.zeros((), bool)
    # The previous step's roots, per layer: (L, D, G, t); float64 does not read them.
    prev_a = jnp.zeros((layers, directions, groups, tile_a), dtype)
    prev_b = jnp.zeros((layers, directions, groups, tile_b), dtype)
    (_, q, vphi, vphi_sum, q_sum, _, _, _), _ = jax.lax.scan(
        time_step,
        (zeros, zeros, zeros, zeros, zeros, identical, prev_a, prev_b),
        (x_a, x_b, root_a, root_b, inv_root_a, inv_root_b, started_a, started_b),
    )
    # (L, D, G, ta, tb) x 4 -> (D, 4, L, G, ta, tb)
    per_layer = jnp.stack([vphi, vphi_sum, vphi + q, vphi_sum + q_sum], axis=0)
    return jnp.transpose(per_layer, (2, 0, 1, 3, 4, 5)).astype(dtype)

