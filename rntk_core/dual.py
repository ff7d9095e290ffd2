"""The ReLU dual activation (arc-cosine kernel of degree 1 and 0).

For a 2x2 covariance with variances ``a``, ``b`` and covariance ``s``::

    c      = clip(s / sqrt(a b), -1, 1),  theta = arccos(c)
    Vphi   = sqrt(a b) (sin(theta) + (pi - theta) c) / (2 pi)
    Vphi'  = (pi - theta) / (2 pi)

Two evaluations: :func:`relu_dual_defect` (float32) takes per-sample ``sqrt(a)`` and
``1/sqrt(a)``, so no division or square root of a variance happens per matrix entry;
:func:`relu_dual` (float64) follows the spec's formula literally, to 1e-16.

In float32 the recursion carries the defect ``E = sqrt(a b) - s = sqrt(a b) (1 - c)``
instead of ``s``: near ``c = 1`` the angle depends on ``1 - c``, and ``1 - c`` formed from
``s`` and ``sqrt(a b)`` loses every digit that the rounding of ``s`` (about 1e-7 of ``a``)
touches. On long real sequences most pairs sit there, and the error of ``Vphi' = (pi -
theta)/(2 pi)`` grew through the NTK's sums to 2e-1 (ACSF1, T = 1460). ``E`` is a sum of
non-negative terms (the recursion in recurrent.py, with :func:`cauchy_schwarz_gap`), exactly
0 for identical sequences, so ``1 - c`` keeps its relative precision whatever the
variances. The complement ``D = (a + b)/2 - s`` carried before (:func:`relu_dual_complement`)
does that only for comparable variances: a series of small amplitude against a large one
(sign-changing series of unequal lengths at sigma_b = 0) gave 1e-4 to 1.5e-3.
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


def relu_dual_defect(
    defect: jnp.ndarray,
    sqrt_a: jnp.ndarray,
    sqrt_b: jnp.ndarray,
    inv_sqrt_a: jnp.ndarray,
    inv_sqrt_b: jnp.ndarray,
    method: ArccosMethod = "native",
) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    """Vphi, its angular defect Ephi = sqrt(a b)/2 - Vphi, and Vphi', from the pre-activations'
    defect ``defect = sqrt(a b) - s`` (= sqrt(a b) (1 - c), never negative).

    ``1 - c = defect / sqrt(a b)`` and ``Ephi = sqrt(a b) (pi (1 - c) + theta c - sin(theta))
    / (2 pi)``; no term cancels near c = 1. ``inv_sqrt_*`` must be 0 where the variance is 0:
    there Vphi, Ephi and Vphi' are 0.
    """
    root_ab = sqrt_a * sqrt_b
    inv_ab = inv_sqrt_a * inv_sqrt_b
    positive = inv_ab > 0
    one_minus_c = jnp.clip(defect * inv_ab, 0.0, 2.0)
    theta = _theta_from_gap(one_minus_c, method)
    c = 1.0 - one_minus_c
    sin_theta = jnp.sqrt(one_minus_c * (2.0 - one_minus_c))
    # theta c - sin(theta) = (theta - sin(theta)) - theta (1 - c); theta - sin(theta) by
    # its series below 0.5, where the difference would cancel.
    t2 = theta * theta
    series = theta * t2 * (1.0 / 6.0 - t2 * (1.0 / 120.0 - t2 * (1.0 / 5040.0 - t2 / 362880.0)))
    theta_minus_sin = jnp.where(theta < 0.5, series, theta - sin_theta)
    ephi = root_ab * INV_TWO_PI * (math.pi * one_minus_c + theta_minus_sin - theta * one_minus_c)
    pi_minus_theta = math.pi - theta
    vphi = root_ab * (sin_theta + pi_minus_theta * c) * INV_TWO_PI
    dvphi = jnp.where(positive, pi_minus_theta * INV_TWO_PI, 0.0)
    return vphi, ephi, dvphi


def relu_dual_complement(
    dist: jnp.ndarray,
    sqrt_a: jnp.ndarray,
    sqrt_b: jnp.ndarray,
    inv_sqrt_a: jnp.ndarray,
    inv_sqrt_b: jnp.ndarray,
    method: ArccosMethod = "native",
) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    """Vphi, its complement Dphi = (a + b)/4 - Vphi, and Vphi', from ``dist = (a + b)/2 - s``.

    With g = sqrt(a) - sqrt(b): ``1 - c = (dist - g^2/2) / sqrt(a b)`` and Dphi = g^2/4 +
    Ephi (:func:`relu_dual_defect`). Near c = 1 with comparable variances no term cancels;
    where the variances differ by orders of magnitude ``dist - g^2/2`` does (both about
    max(a, b)/2), which is why the engine carries the defect instead.
    """
    gap_ab = sqrt_a - sqrt_b
    half_sq = 0.5 * gap_ab * gap_ab
    vphi, ephi, dvphi = relu_dual_defect(dist - half_sq, sqrt_a, sqrt_b, inv_sqrt_a, inv_sqrt_b, method)
    return vphi, 0.5 * half_sq + ephi, dvphi


def cauchy_schwarz_gap(parts_a: tuple[jnp.ndarray, ...], parts_b: tuple[jnp.ndarray, ...],
                       norms: jnp.ndarray) -> jnp.ndarray:
    """``|u| |v| - u . v`` for non-negative vectors u, v given by their components (broadcast
    per pair), without cancellation: Lagrange's identity makes it ``sum over i < j of
    (u_i v_j - u_j v_i)^2 / (|u| |v| + u . v)``, a sum of squares. ``norms``: |u| |v|, as
    the caller knows it. Exactly 0 for equal u and v; 0 where |u| |v| + u . v = 0."""
    square = 0.0
    for i in range(len(parts_a)):
        for j in range(i + 1, len(parts_a)):
            minor = parts_a[i] * parts_b[j] - parts_a[j] * parts_b[i]
            square = square + minor * minor
    dot = sum(x * y for x, y in zip(parts_a, parts_b))
    denominator = norms + dot
    return jnp.where(denominator > 0, square / jnp.where(denominator > 0, denominator, 1.0), 0.0)


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
