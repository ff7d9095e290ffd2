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


def arccos_polynomial(c: jnp.ndarray) -> jnp.ndarray:
    """arccos from multiplies, adds and one sqrt (XLA's CPU arccos is ~40x slower).

    Absolute error about 5e-7 in float32; use ``native`` for float64 work.
    """
    x = jnp.abs(c)
    poly = jnp.asarray(_ACOS_COEFFS[0], c.dtype)
    for coeff in _ACOS_COEFFS[1:]:
        poly = poly * x + coeff
    angle = jnp.sqrt(1.0 - x) * poly
    return jnp.where(c < 0, math.pi - angle, angle)


def arccos(c: jnp.ndarray, method: ArccosMethod) -> jnp.ndarray:
    if method == "polynomial":
        return arccos_polynomial(c)
    return jnp.arccos(c)


def snap_cosine(c: jnp.ndarray) -> jnp.ndarray:
    """Clip c to [-1, 1], and snap it to +-1 within 16 ulps (float32).

    arccos has an infinite slope at +-1, so the rounding error of a float32 covariance
    (a few ulps of c) becomes a ~1e-3 error in theta for x = x' pairs (the diagonal,
    duplicate rows). Within 16 ulps a pair is indistinguishable from parallel at this
    precision, and snapping makes those entries exact.
    """
    tol = 2.0**-20
    c = jnp.where(c > 1.0 - tol, 1.0, c)
    return jnp.where(c < tol - 1.0, -1.0, c)


def _dual_from_cosine(
    c: jnp.ndarray, sqrt_ab: jnp.ndarray, method: ArccosMethod
) -> tuple[jnp.ndarray, jnp.ndarray]:
    pi_minus_theta = math.pi - arccos(c, method)
    sin_theta = jnp.sqrt(jnp.maximum(1.0 - c * c, 0.0))
    vphi = sqrt_ab * (sin_theta + pi_minus_theta * c) * INV_TWO_PI
    return vphi, pi_minus_theta * INV_TWO_PI


def relu_dual_fast(
    cov: jnp.ndarray,
    sqrt_a: jnp.ndarray,
    sqrt_b: jnp.ndarray,
    inv_sqrt_a: jnp.ndarray,
    inv_sqrt_b: jnp.ndarray,
    method: ArccosMethod = "native",
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Vphi and Vphi' from broadcastable per-sample scales: no division or sqrt per entry.

    ``inv_sqrt_*`` must be 0 where the variance is 0: then ``c = 0`` and ``Vphi = 0``
    through ``sqrt_a * sqrt_b``. ``Vphi'`` keeps its ``c = 0`` value there, which the
    recursion only multiplies by an NTK entry that is itself 0 for such a pair.
    """
    c = snap_cosine(cov * inv_sqrt_a * inv_sqrt_b)
    return _dual_from_cosine(c, sqrt_a * sqrt_b, method)


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
    vphi, dvphi = _dual_from_cosine(c, sqrt_ab, "native")
    return jnp.where(positive, vphi, 0.0), jnp.where(positive, dvphi, 0.0)
