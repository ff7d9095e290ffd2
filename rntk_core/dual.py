"""The ReLU dual activation (arc-cosine kernel of degree 1 and 0).

For a 2x2 covariance with variances ``a``, ``b`` and covariance ``s``::

    c      = clip(s / sqrt(a b), -1, 1),  theta = arccos(c)
    Vphi   = sqrt(a b) (sin(theta) + (pi - theta) c) / (2 pi)
    Vphi'  = (pi - theta) / (2 pi)

Two evaluations: :func:`relu_dual_fast` (float32) takes per-sample ``sqrt(a)`` and
``1/sqrt(a)``, so no division or square root of a variance happens per matrix entry;
:func:`relu_dual` (float64) follows the spec's formula literally, to 1e-16.
"""

from __future__ import annotations

import math
from typing import Literal

import jax.numpy as jnp

ArccosMethod = Literal["native", "polynomial"]

INV_TWO_PI = 1.0 / (2.0 * math.pi)

# Abramowitz & Stegun 4.4.46: arccos(x) = sqrt(1 - x) * poly(x) on [0, 1], |error| <= 2e-8.
_ACOS_COEFFS = (
    -0.0012624911,
    0.0066700901,
    -0.0170881256,
    0.0308918810,
    -0.0501743046,
    0.0889789874,
    -0.2145988016,
    1.5707963050,
)


def _arccos_abs_polynomial(x: jnp.ndarray) -> jnp.ndarray:
    """arccos(x) for x in [0, 1] from multiplies, adds and one sqrt."""
    poly = jnp.asarray(_ACOS_COEFFS[0], x.dtype)
    for coeff in _ACOS_COEFFS[1:]:
        poly = poly * x + coeff
    return jnp.sqrt(1.0 - x) * poly


def arccos_polynomial(c: jnp.ndarray) -> jnp.ndarray:
    """arccos on [-1, 1]; absolute error about 5e-7 in float32 (XLA's CPU arccos is ~40x slower)."""
    angle = _arccos_abs_polynomial(jnp.abs(c))
    return jnp.where(c < 0, math.pi - angle, angle)


# Within 16 ulps of +-1 a float32 cosine is snapped to +-1 (see relu_dual_fast).
SNAP_TOLERANCE = 2.0**-20


def relu_dual_fast(
    cov: jnp.ndarray,
    sqrt_a: jnp.ndarray,
    sqrt_b: jnp.ndarray,
    inv_sqrt_a: jnp.ndarray,
    inv_sqrt_b: jnp.ndarray,
    method: ArccosMethod = "native",
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Vphi and Vphi' from broadcastable per-sample scales: no division or sqrt of a
    variance per entry (float32 work).

    ``inv_sqrt_*`` must be 0 where the variance is 0: then ``c = 0`` and ``Vphi = 0``
    through ``sqrt_a * sqrt_b``. ``Vphi'`` keeps its ``c = 0`` value there, which the
    recursion only multiplies by an NTK entry that is itself 0 for such a pair.

    |c| is clipped to 1 and snapped to 1 within 16 ulps: arccos has an infinite slope
    at +-1, so the rounding error of a float32 covariance would otherwise become a
    ~1e-3 error in theta for x = x' pairs (the diagonal, duplicate rows), which this
    precision cannot tell from parallel anyway.
    """
    c = cov * inv_sqrt_a * inv_sqrt_b
    abs_c = jnp.minimum(jnp.abs(c), 1.0)
    abs_c = jnp.where(abs_c > 1.0 - SNAP_TOLERANCE, 1.0, abs_c)
    c = jnp.copysign(abs_c, c)
    if method == "polynomial":
        angle = _arccos_abs_polynomial(abs_c)  # arccos(|c|)
        pi_minus_theta = jnp.where(c < 0, angle, math.pi - angle)
    else:
        pi_minus_theta = math.pi - jnp.arccos(c)
    sin_theta = jnp.sqrt(1.0 - abs_c * abs_c)
    vphi = (sqrt_a * sqrt_b) * (sin_theta + pi_minus_theta * c) * INV_TWO_PI
    return vphi, pi_minus_theta * INV_TWO_PI


def relu_dual(
    a: jnp.ndarray,
    b: jnp.ndarray,
    s: jnp.ndarray,
    is_diagonal: jnp.ndarray | bool = False,
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Vphi(a, b, s) and Vphi'(a, b, s) as the spec writes them, for float64 work.

    Both are exactly 0 where a or b is 0. Where ``is_diagonal`` the pair is (x, x) and
    c = 1 exactly, as the closed form on the diagonal requires.
    """
    ab = a * b
    positive = ab > 0
    sqrt_ab = jnp.sqrt(jnp.where(positive, ab, 1.0))
    c = jnp.clip(jnp.where(positive, s / sqrt_ab, 0.0), -1.0, 1.0)
    c = jnp.where(is_diagonal, 1.0, c)
    pi_minus_theta = math.pi - jnp.arccos(c)
    sin_theta = jnp.sqrt(jnp.maximum(1.0 - c * c, 0.0))
    vphi = sqrt_ab * (sin_theta + pi_minus_theta * c) * INV_TWO_PI
    dvphi = pi_minus_theta * INV_TWO_PI
    return jnp.where(positive, vphi, 0.0), jnp.where(positive, dvphi, 0.0)
