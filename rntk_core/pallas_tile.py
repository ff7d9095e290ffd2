"""One tile of the fused recursion as a Pallas kernel (float32), and the choice of tile path.

:func:`pallas_fused_tile` returns what :func:`recurrent.fused_tile` returns, (D, 4, L, G,
ta, tb) float32, from the same Operands. XLA runs ``fused_tile`` as scans whose every step
moves the (L, D, G, ta, tb) state through device memory; here one program of a grid owns a
block of bt_a x bt_b pairs for one direction and one sigma pair, runs the T steps in a
``fori_loop`` with the layers unrolled, keeps the state (5 L arrays of bt_a x bt_b) in
local values, and writes its output block once.

The per-(layer, step) math is recurrent.py's own (:func:`recurrent.inputs_defect`,
:func:`recurrent.defect_layer`, hence dual.py's ``relu_dual_defect`` and
``cauchy_schwarz_gap``), applied to (bt_a, 1) x (1, bt_b) blocks instead of (D, G, ta, 1) x
(D, G, 1, tb) arrays, so the two paths cannot drift.

Target: the Pallas Triton lowering (GPU). Block sides and the padded feature count are
powers of two, as Triton requires of every loaded or stored array; only scalar and
(bt,)/(bt, m)/(bt_a, bt_b) arrays are loaded or stored. The float64 ("exact") path stays
XLA. Status: run only in interpret mode (``interpret=True``, CPU) so far; the Triton
lowering (arcsin/sqrt/division precision included) has not been run on a GPU yet. Hence
:func:`tile_function` falls back to ``fused_tile`` if compiling the kernel raises, or if its
first tile of a shape differs from ``fused_tile``'s by more than :data:`CHECK_TOLERANCE`.
"""

from __future__ import annotations

import logging
import math
import os
from functools import partial
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from .dual import ArccosMethod
from .recurrent import Operand, Sigmas, defect_layer, fused_tile, inputs_defect

logger = logging.getLogger(__name__)

#: Pairs per program (rows of a, rows of b); powers of two. The working set per program is
#: about (5 L + 20) x bt_a x bt_b floats, plus bt_a x bt_b x m for the inputs' defect.
DEFAULT_BLOCK = (16, 16)


def _next_power_of_2(value: int) -> int:
    return 1 << max(0, int(value) - 1).bit_length()


def _pad_axis(array: jnp.ndarray, axis: int, size: int) -> jnp.ndarray:
    pad = [(0, 0)] * array.ndim
    pad[axis] = (0, size - array.shape[axis])
    return jnp.pad(array, pad)


def _kernel(xa_ref, xb_ref, ra_ref, rb_ref, ia_ref, ib_ref, sa_ref, sb_ref, params_ref, out_ref, *,
            steps: int, layers: int, features: int, masked: bool, arccos_method: ArccosMethod):
    """One direction, one sigma pair, a bt_a x bt_b block of pairs, all T steps and L layers.

    Refs (D and G squeezed): x (T, bt, m_pad); roots, inv_roots (T, L, bt); started (T, bt);
    params (4,) = (sigma_w, sigma_u, sigma_b, 0); out (4, L, bt_a, bt_b).
    """
    bt_a, bt_b = out_ref.shape[-2:]
    dtype = jnp.float32
    sigma_w, sigma_u, sigma_b = params_ref[0], params_ref[1], params_ref[2]
    sw2, su2 = sigma_w * sigma_w, sigma_u * sigma_u
    half_root = math.sqrt(0.5)
    root_w = sigma_w * half_root
    # As fused_tile: the layer below's input is scaled by su^2/m at layer 1 and su^2 above it.
    scales = [su2 / features] + [su2] * (layers - 1)
    zeros = jnp.zeros((bt_a, bt_b), dtype)

    def time_step(t, carry):
        state_prev, q_prev, _, vphi_sum, q_sum, prev_a, prev_b = carry
        norm_a, norm_b, below_input = inputs_defect(xa_ref[t], xb_ref[t])  # (bt_a,), (bt_b,), pairs
        started_a = sa_ref[t] if masked else jnp.ones((bt_a,), dtype)
        started_b = sb_ref[t] if masked else jnp.ones((bt_b,), dtype)
        # Each variance's input and bias parts, per sample (as fused_tile's time_step).
        input_a = sigma_u * (norm_a / math.sqrt(features)) * started_a
        input_b = sigma_u * (norm_b / math.sqrt(features)) * started_b
        bias_a, bias_b = sigma_b * started_a, sigma_b * started_b
        below_q = zeros
        states, qs, vphis, ras, rbs = [], [], [], [], []
        for layer in range(layers):
            ra, rb = ra_ref[t, layer], rb_ref[t, layer]
            ia, ib = ia_ref[t, layer], ib_ref[t, layer]
            parts_a = (input_a[:, None], root_w * prev_a[layer][:, None], bias_a[:, None])
            parts_b = (input_b[None, :], root_w * prev_b[layer][None, :], bias_b[None, :])
            state, vphi, q = defect_layer(
                below_input, below_q, state_prev[layer], q_prev[layer], scales[layer],
                ra[:, None], rb[None, :], ia[:, None], ib[None, :], parts_a, parts_b,
                sw2, su2, arccos_method,
            )
            states.append(state)
            qs.append(q)
            vphis.append(vphi)
            ras.append(ra)
            rbs.append(rb)
            # The next layer's input part: su^2 a(l, t)/2.
            input_a, input_b = sigma_u * half_root * ra, sigma_u * half_root * rb
            below_input, below_q = state, q
        vphi_sum = tuple(s + v for s, v in zip(vphi_sum, vphis))
        q_sum = tuple(s + q for s, q in zip(q_sum, qs))
        return tuple(states), tuple(qs), tuple(vphis), vphi_sum, q_sum, tuple(ras), tuple(rbs)

    pairs = tuple(zeros for _ in range(layers))
    init = (pairs, pairs, pairs, pairs, pairs,
            tuple(jnp.zeros((bt_a,), dtype) for _ in range(layers)),
            tuple(jnp.zeros((bt_b,), dtype) for _ in range(layers)))
    _, q, vphi, vphi_sum, q_sum, _, _ = jax.lax.fori_loop(0, steps, time_step, init)
    for layer in range(layers):  # READOUTS order: ck-last, ck-avg, ntk-last, ntk-avg
        out_ref[0, layer] = vphi[layer]
        out_ref[1, layer] = vphi_sum[layer]
        out_ref[2, layer] = vphi[layer] + q[layer]
        out_ref[3, layer] = vphi_sum[layer] + q_sum[layer]


@partial(jax.jit, static_argnames=("layers", "masked", "arccos_method", "interpret", "block"))
def pallas_fused_tile(
    a: Operand,
    b: Operand,
    sigmas: Sigmas,
    *,
    layers: int,
    masked: bool,
    arccos_method: ArccosMethod,
    interpret: bool = False,
    block: tuple[int, int] = DEFAULT_BLOCK,
) -> jnp.ndarray:
    """:func:`recurrent.fused_tile` for float32 Operands, as a Pallas kernel.

    ``block``: pairs per program (powers of two), reduced to the tile's size rounded up to
    a power of two; ta and tb are zero-padded to multiples of it (zero rows give zero
    readouts) and the result sliced back. Returns (D, 4, L, G, ta, tb) float32.
    """
    from jax.experimental import pallas as pl
    from jax.experimental.pallas import triton as pltriton

    if a.values.dtype != jnp.float32 or b.values.dtype != jnp.float32:
        raise TypeError(f"pallas_fused_tile supports float32 only, not {a.values.dtype}")
    if any(side != _next_power_of_2(side) for side in block):
        raise ValueError(f"block sides must be powers of two, not {block}")
    steps, directions, tile_a, features = a.values.shape
    tile_b = b.values.shape[2]
    groups = sigmas.sigma_u.shape[0]
    bt_a = min(block[0], _next_power_of_2(tile_a))
    bt_b = min(block[1], _next_power_of_2(tile_b))
    pad_a, pad_b = -(-tile_a // bt_a) * bt_a, -(-tile_b // bt_b) * bt_b
    m_pad = _next_power_of_2(features)  # zero features change no norm or distance

    def operand(op: Operand, size: int):
        values = _pad_axis(_pad_axis(op.values, 3, m_pad), 2, size)  # (T, D, n, m_pad)
        roots = _pad_axis(op.roots, 4, size)  # (T, D, G, L, n)
        inv_roots = _pad_axis(op.inv_roots, 4, size)
        started = _pad_axis(op.started, 2, size)  # (T, D, n)
        return values, roots, inv_roots, started

    xa, ra, ia, sa = operand(a, pad_a)
    xb, rb, ib, sb = operand(b, pad_b)
    sigma_w = jnp.broadcast_to(jnp.asarray(sigmas.sigma_w, jnp.float32), (groups,))
    params = jnp.stack([sigma_w, sigmas.sigma_u, sigmas.sigma_b, jnp.zeros((groups,), jnp.float32)],
                       axis=1).astype(jnp.float32)  # (G, 4)

    # Grid (d, g, i, j): direction, sigma pair, block of a-rows, block of b-rows.
    values_a = pl.BlockSpec((steps, None, bt_a, m_pad), lambda d, g, i, j: (0, d, i, 0))
    values_b = pl.BlockSpec((steps, None, bt_b, m_pad), lambda d, g, i, j: (0, d, j, 0))
    roots_a = pl.BlockSpec((steps, None, None, layers, bt_a), lambda d, g, i, j: (0, d, g, 0, i))
    roots_b = pl.BlockSpec((steps, None, None, layers, bt_b), lambda d, g, i, j: (0, d, g, 0, j))
    started_a = pl.BlockSpec((steps, None, bt_a), lambda d, g, i, j: (0, d, i))
    started_b = pl.BlockSpec((steps, None, bt_b), lambda d, g, i, j: (0, d, j))
    param_spec = pl.BlockSpec((None, 4), lambda d, g, i, j: (g, 0))
    out_spec = pl.BlockSpec((None, 4, layers, None, bt_a, bt_b), lambda d, g, i, j: (d, 0, 0, g, i, j))
    kernel = partial(_kernel, steps=steps, layers=layers, features=features, masked=masked,
                     arccos_method=arccos_method)
    out = pl.pallas_call(
        kernel,
        out_shape=jax.ShapeDtypeStruct((directions, 4, layers, groups, pad_a, pad_b), jnp.float32),
        grid=(directions, groups, pad_a // bt_a, pad_b // bt_b),
        in_specs=[values_a, values_b, roots_a, roots_b, roots_a, roots_b, started_a, started_b, param_spec],
        out_specs=out_spec,
        interpret=interpret,
        # Triton, explicitly: jax >= 0.8 lowers a pallas_call without compiler_params to Mosaic GPU.
        compiler_params=pltriton.CompilerParams(),
        name="rntk_fused_tile",
    )(xa, xb, ra, rb, ia, ib, sa, sb, params)
    return out[..., :tile_a, :tile_b]


# Set once the Pallas path has failed to compile in this process.
_pallas_failed = False


def pallas_enabled(device: jax.Device, dtype) -> bool:
    """Whether tiles on ``device`` in ``dtype`` go through the Pallas kernel: GPU, float32,
    ``RNTK_PALLAS`` not "0", and no earlier failure in this process."""
    return (
        not _pallas_failed
        and device.platform in ("gpu", "cuda", "rocm")
        and np.dtype(dtype) == np.float32
        and os.environ.get("RNTK_PALLAS", "1") != "0"
    )


def tile_function(device: jax.Device, dtype) -> Callable[..., jnp.ndarray]:
    """The tile function for ``device`` and ``dtype``, called as ``fused_tile`` is: the
    Pallas kernel where :func:`pallas_enabled`, which falls back to ``fused_tile`` (with one
    warning, for the rest of the process) if lowering or compiling it raises; else
    ``fused_tile``."""
    return _pallas_or_xla if pallas_enabled(device, dtype) else fused_tile


#: Largest relative Frobenius difference from ``fused_tile`` the kernel may show on its first
#: tile of each shape (the float32 bound the engine's tests hold).
CHECK_TOLERANCE = 1e-5
_checked: set = set()


def _pallas_or_xla(a: Operand, b: Operand, sigmas: Sigmas, *, layers: int, masked: bool,
                   arccos_method: ArccosMethod) -> jnp.ndarray:
    """The kernel's tile; its first tile of each compiled shape is also computed by XLA and
    compared, so a kernel that compiles but computes wrong on this GPU (it has not run on
    one yet) is caught and dropped, not trusted."""
    global _pallas_failed
    xla = partial(fused_tile, layers=layers, masked=masked, arccos_method=arccos_method)
    if _pallas_failed:
        return xla(a, b, sigmas)
    try:
        result = pallas_fused_tile(a, b, sigmas, layers=layers, masked=masked, arccos_method=arccos_method)
        signature = (layers, masked, arccos_method, a.values.shape, b.values.shape, sigmas.sigma_u.shape)
        if signature not in _checked:
            expected = xla(a, b, sigmas)
            scale = float(jnp.linalg.norm(expected))
            error = float(jnp.linalg.norm(result - expected)) / (scale if scale > 0 else 1.0)
            if not error <= CHECK_TOLERANCE:  # also catches NaN
                raise ArithmeticError(f"its first tile differs from fused_tile's by {error:.3g} (relative)")
            _checked.add(signature)
        return result
    except Exception as exc:  # lowering/compilation (Triton's limits, the installed jaxlib), or the check
        _pallas_failed = True
        logger.warning("the Pallas tile kernel failed (%s: %s); using XLA's fused_tile for the rest "
                       "of this process (set RNTK_PALLAS=0 to skip it)", type(exc).__name__, exc)
    return xla(a, b, sigmas)
