"""The ReLU dual activation (arc-cosine kernel of degree 1 and 0).

For a 2x2 covariance with variances ``a``, ``b`` and covariance ``s``::

    c      = clip(s / sqrt(a b), -1, 1),  theta = arccos(c)
    Vphi   = sqrt(a b) (sin(theta) + (pi - theta) c) / (2 pi)
    Vphi'  = (pi - theta) / (2 pi)

Two evaluations: :func:`relu_dual_complement` (float32) takes per-sample ``sqrt(a)`` and
``1/sqrt(a)``, so no division or square root of a variance happens per matrix entry;
:func:`relu_dual` (float64) follows the spec's formula literally, to 1e-16.

In float32 the recursion carries the complement ``D = (a + b)/2 - s`` (half the squared
distance of the pre-activations) instead of ``s``: near ``c = 1`` the angle depends on
``1 - c``, and ``1 - c`` formed from ``s`` and ``sqrt(a b)`` loses every digit that the
rounding of ``s`` (about 1e-7 of ``a``) touches. On long real sequences most pairs sit
there, and the error of ``Vphi' = (pi - theta)/(2 pi)`` grew through the NTK's sums to
2e-1 (ACSF1, T = 1460). ``D`` is exact for identical sequences and carries relative
rounding only, so ``1 - c`` and theta keep their relative precision.
"""

from __future__ import annotations

import math
from typing import Literal

import jax.numpy as jnp

ArccosMethod = Literal["native", "polynomial"]

INV_TWO_PI = 1.0 / (2.0 * math.pi)

# Abramowitz & Stegun 4.4.46 (see _poly). XLA's CPU arccos is ~40x slower than this.
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


def _theta_from_gap(gap: jnp.ndarray, method: ArccosMethod) -> jnp.ndarray:
    """theta = arccos(1 - gap) for gap = 1 - c in [0, 2], with relative precision near 0."""
    if method == "polynomial":
        # A&S 4.4.46 takes sqrt(1 - |c|) as a factor, so it never forms 1 - |c| by cancellation.
        abs_c = jnp.abs(1.0 - gap)
        angle = jnp.sqrt(jnp.minimum(gap, 2.0 - gap)) * _poly(abs_c)  # arccos(|c|)
        return jnp.where(gap <= 1.0, angle, math.pi - angle)
    return 2.0 * jnp.arcsin(jnp.sqrt(0.5 * gap))


def _poly(x: jnp.ndarray) -> jnp.ndarray:
    """A&S 4.4.46: arccos(x) = sqrt(1 - x) * _poly(x) on [0, 1], |error| <= 2e-8."""
    poly = jnp.asarray(_ACOS_COEFFS[0], x.dtype)
    for coeff in _ACOS_COEFFS[1:]:
        poly = poly * x + coeff
    return poly


def relu_dual_complement(
    dist: jnp.ndarray,
    sqrt_a: jnp.ndarray,
    sqrt_b: jnp.ndarray,
    inv_sqrt_a: jnp.ndarray,
    inv_sqrt_b: jnp.ndarray,
    method: ArccosMethod = "native",
) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    """Vphi, its complement Dphi = (a + b)/4 - Vphi, and Vphi', from ``dist = (a + b)/2 - s``.

    With g = sqrt(a) - sqrt(b): ``1 - c = (dist - g^2/2) / sqrt(a b)`` and
    ``Dphi = g^2/4 + sqrt(a b) (pi (1 - c) + theta c - sin(theta)) / (2 pi)``; no term
    cancels near c = 1. ``inv_sqrt_*`` must be 0 where the variance is 0: there Vphi and
    Vphi' are 0 and Dphi = (a + b)/4.
    """
    root_ab = sqrt_a * sqrt_b
    gap_ab = sqrt_a - sqrt_b
    half_sq = 0.5 * gap_ab * gap_ab
    positive = inv_sqrt_a * inv_sqrt_b > 0
    one_minus_c = jnp.clip((dist - half_sq) * inv_sqrt_a * inv_sqrt_b, 0.0, 2.0)
    theta = _theta_from_gap(one_minus_c, method)
    c = 1.0 - one_minus_c
    sin_theta = jnp.sqrt(one_minus_c * (2.0 - one_minus_c))
    # theta c - sin(theta) = (theta - sin(theta)) - theta (1 - c); theta - sin(theta) by
    # its series below 0.5, where the difference would cancel.
    t2 = theta * theta
    series = theta * t2 * (1.0 / 6.0 - t2 * (1.0 / 120.0 - t2 * (1.0 / 5040.0 - t2 / 362880.0)))
    theta_minus_sin = jnp.where(theta < 0.5, series, theta - sin_theta)
    dphi = 0.5 * half_sq + root_ab * INV_TWO_PI * (
        math.pi * one_minus_c + theta_minus_sin - theta * one_minus_c
    )
    pi_minus_theta = math.pi - theta
    vphi = root_ab * (sin_theta + pi_minus_theta * c) * INV_TWO_PI
    dvphi = jnp.where(positive, pi_minus_theta * INV_TWO_PI, 0.0)
    return vphi, dphi, dvphi


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
