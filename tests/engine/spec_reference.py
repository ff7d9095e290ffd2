"""A plain-NumPy float64 reference for the recurrent CK/NTK, written from SPEC-kernels.md.

This module is deliberately independent of ``rntk_core``: it is what the engine is checked
against. It follows the spec line by line, with an explicit loop over the time step ``t`` and
the layer ``l``; only the pairs ``(i, j)`` are vectorised, as whole ``N x M`` matrices.

Notation (spec):

    S(l,t)  covariance of g(l,t)(x) and g(l,t)(x')
    P(l,t)  NTK of g(l,t)
    Vphi[l,t], Vphi'[l,t]  the ReLU dual activation of (S(x,x), S(x',x'), S(x,x'))

Variable lengths follow the spec's extension: sequences are front-padded, ``s_i(t)`` is 1 once
sequence ``i`` has started, and every ``S`` and ``P`` entry is multiplied by ``s_i(t) s_j(t)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

KINDS = ("ck", "ntk")
POOLS = ("last", "avg")
DIRECTIONS = ("fwd", "rev", "bi")

KernelKey = tuple[str, str, int, str]


def dual_activation(
    var_x: np.ndarray, var_y: np.ndarray, cov: np.ndarray, identical: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """ReLU dual activation: (Vphi, Vphi') for variances ``var_x`` (N,1), ``var_y`` (1,M), ``cov`` (N,M).

    Vphi  = sqrt(a b) (sin(theta) + (pi - theta) c) / (2 pi)
    Vphi' = (pi - theta) / (2 pi)
    with c = s / sqrt(a b) clipped to [-1, 1] and theta = arccos(c). A pair with a zero
    variance gives Vphi = Vphi' = 0. Where ``identical`` is True the pair is (x, x), so c = 1
    exactly (Vphi = a/2, Vphi' = 1/2) rather than 1 - O(ulp), which arccos would turn into
    theta ~ 1e-8.
    """
    product = var_x * var_y
    positive = product > 0.0
    norm = np.sqrt(np.where(positive, product, 1.0))
    cosine = np.clip(np.where(positive, cov / norm, 0.0), -1.0, 1.0)
    if identical is not None:
        cosine = np.where(identical, 1.0, cosine)
    theta = np.arccos(cosine)
    sine = np.sqrt(np.maximum(1.0 - cosine * cosine, 0.0))
    vphi = np.where(positive, norm * (sine + (math.pi - theta) * cosine) / (2.0 * math.pi), 0.0)
    vphi_dot = np.where(positive, (math.pi - theta) / (2.0 * math.pi), 0.0)
    return vphi, vphi_dot


def start_mask(lengths: np.ndarray | None, count: int, steps: int) -> np.ndarray:
    """``s_i(t)`` as a (count, T) 0/1 float array: 1 once front-padded sequence i has started."""
    if lengths is None:
        return np.ones((count, steps))
    lengths = np.asarray(lengths)
    first_step = steps - lengths  # 0-based index of the first valid step
    return (np.arange(steps)[None, :] >= first_step[:, None]).astype(np.float64)


def reverse_valid(inputs: np.ndarray, lengths: np.ndarray | None) -> np.ndarray:
    """Reverse each sequence's valid part in time; front padding stays at the front."""
    if lengths is None:
        return inputs[:, ::-1, :].copy()
    steps = inputs.shape[1]
    reversed_inputs = np.zeros_like(inputs)
    for index, length in enumerate(np.asarray(lengths)):
        start = steps - int(length)
        reversed_inputs[index, start:] = inputs[index, start:][::-1]
    return reversed_inputs


def identical_pairs(X: np.ndarray, Y: np.ndarray, mask_x: np.ndarray, mask_y: np.ndarray) -> np.ndarray:
    """(N, M) bool: x_i and y_j are the same sequence (same length, same valid part).

    For these pairs S(x, x') = S(x, x) at every (l, t), so the spec's "x = x' gives c = 1
    exactly" applies (the diagonal of K(X, X), duplicated rows, X rows repeated in Y).
    """
    same_length = np.all(mask_x[:, None, :] == mask_y[None, :, :], axis=2)
    valid_x = X * mask_x[:, :, None]
    valid_y = Y * mask_y[:, :, None]
    same_values = np.all(valid_x[:, None] == valid_y[None, :], axis=(2, 3))
    return same_length & same_values


def _as_3d(inputs: np.ndarray) -> np.ndarray:
    inputs = np.asarray(inputs, dtype=np.float64)
    return inputs[:, :, None] if inputs.ndim == 2 else inputs


def forward_kernels(
    X: np.ndarray,
    Y: np.ndarray | None,
    *,
    sigma_w: float,
    sigma_u: float,
    sigma_b: float,
    layers: int,
    lengths: Sequence[int] | None = None,
    y_lengths: Sequence[int] | None = None,
) -> dict[tuple[str, str, int], np.ndarray]:
    """One forward sweep of the spec's recursion, sv = 1.

    Returns {(kind, pool, L'): (N, M) kernel} for every L' in 1..layers.
    """
    symmetric = Y is None
    X = _as_3d(X)
    Y = X if symmetric else _as_3d(Y)
    if symmetric and y_lengths is None:
        y_lengths = lengths
    count_x, steps, width_in = X.shape
    count_y = Y.shape[0]
    mask_x = start_mask(None if lengths is None else np.asarray(lengths), count_x, steps)
    mask_y = start_mask(None if y_lengths is None else np.asarray(y_lengths), count_y, steps)
    identical = identical_pairs(X, Y, mask_x, mask_y)

    sw2, su2, sb2 = sigma_w**2, sigma_u**2, sigma_b**2

    # State carried from step t-1, for every layer (index 0 = layer 1).
    vphi_prev = [np.zeros((count_x, count_y)) for _ in range(layers)]
    vphi_dot_prev = [np.zeros((count_x, count_y)) for _ in range(layers)]
    ntk_prev = [np.zeros((count_x, count_y)) for _ in range(layers)]  # P(l, t-1)
    diag_x_prev = [np.zeros(count_x) for _ in range(layers)]  # S(l, t-1)(x, x)
    diag_y_prev = [np.zeros(count_y) for _ in range(layers)]

    ck_sum = [np.zeros((count_x, count_y)) for _ in range(layers)]
    ntk_sum = [np.zeros((count_x, count_y)) for _ in range(layers)]
    ck_last: list[np.ndarray] = [np.zeros((count_x, count_y))] * layers
    ntk_last: list[np.ndarray] = [np.zeros((count_x, count_y))] * layers

    for t in range(steps):
        pair_mask = np.outer(mask_x[:, t], mask_y[:, t])
        vphi_now: list[np.ndarray] = []
        vphi_dot_now: list[np.ndarray] = []
        ntk_now: list[np.ndarray] = []
        diag_x_now: list[np.ndarray] = []
        diag_y_now: list[np.ndarray] = []
        for l in range(layers):
            # Input term: the data at layer 1, the layer below at the same step otherwise.
            if l == 0:
                input_cov = su2 / width_in * (X[:, t, :] @ Y[:, t, :].T)
                input_x = su2 / width_in * np.sum(X[:, t, :] ** 2, axis=1)
                input_y = su2 / width_in * np.sum(Y[:, t, :] ** 2, axis=1)
            else:
                input_cov = su2 * vphi_now[l - 1]
                input_x = su2 * diag_x_now[l - 1] / 2.0  # Vphi on the diagonal = a / 2
                input_y = su2 * diag_y_now[l - 1] / 2.0
            # Recurrent term (zero at t = 1 because h(l, 0) = 0).
            recur_cov = sw2 * vphi_prev[l] if t > 0 else 0.0
            recur_x = sw2 * diag_x_prev[l] / 2.0 if t > 0 else 0.0
            recur_y = sw2 * diag_y_prev[l] / 2.0 if t > 0 else 0.0

            cov = pair_mask * (input_cov + recur_cov + sb2)
            var_x = mask_x[:, t] * (input_x + recur_x + sb2)
            var_y = mask_y[:, t] * (input_y + recur_y + sb2)

            ntk = cov.copy()
            if t > 0:
                ntk = ntk + sw2 * ntk_prev[l] * vphi_dot_prev[l]
            if l > 0:
                ntk = ntk + su2 * ntk_now[l - 1] * vphi_dot_now[l - 1]
            ntk = pair_mask * ntk

            vphi, vphi_dot = dual_activation(var_x[:, None], var_y[None, :], cov, identical)

            vphi_now.append(vphi)
            vphi_dot_now.append(vphi_dot)
            ntk_now.append(ntk)
            diag_x_now.append(var_x)
            diag_y_now.append(var_y)

            # Readout after layer l: the (l+1)-layer network's kernel at step t.
            ck_step = vphi
            ntk_step = vphi + ntk * vphi_dot
            ck_sum[l] = ck_sum[l] + ck_step
            ntk_sum[l] = ntk_sum[l] + ntk_step
            if t == steps - 1:
                ck_last[l] = ck_step
                ntk_last[l] = ntk_step

        vphi_prev, vphi_dot_prev, ntk_prev = vphi_now, vphi_dot_now, ntk_now
        diag_x_prev, diag_y_prev = diag_x_now, diag_y_now

    result: dict[tuple[str, str, int], np.ndarray] = {}
    for l in range(layers):
        result[("ck", "last", l + 1)] = ck_last[l]
        result[("ck", "avg", l + 1)] = ck_sum[l]
        result[("ntk", "last", l + 1)] = ntk_last[l]
        result[("ntk", "avg", l + 1)] = ntk_sum[l]
    return result


def reference_kernels(
    X: np.ndarray,
    Y: np.ndarray | None = None,
    *,
    sigma_w: float,
    sigma_u: float,
    sigma_b: float,
    sigma_v: float = 1.0,
    layers: int,
    lengths: Sequence[int] | None = None,
    y_lengths: Sequence[int] | None = None,
) -> dict[KernelKey, np.ndarray]:
    """Every variant of the spec's kernels in float64.

    X: (N, T) or (N, T, m); Y likewise or None for K(X, X). ``lengths``/``y_lengths`` are the
    lengths of front-padded sequences. Returns {(kind, pool, L', direction): (N, M) array} for
    kind in ck/ntk, pool in last/avg (avg = plain sum over steps), L' in 1..layers and
    direction in fwd/rev/bi. Every kernel is scaled by sigma_v**2.
    """
    X = _as_3d(X)
    Y_3d = None if Y is None else _as_3d(Y)
    hyper = dict(sigma_w=sigma_w, sigma_u=sigma_u, sigma_b=sigma_b, layers=layers)
    forward = forward_kernels(X, Y_3d, lengths=lengths, y_lengths=y_lengths, **hyper)
    x_lengths_arr = None if lengths is None else np.asarray(lengths)
    if Y_3d is None:
        y_rev = None
        y_lengths_arr = None
    else:
        y_lengths_arr = None if y_lengths is None else np.asarray(y_lengths)
        y_rev = reverse_valid(Y_3d, y_lengths_arr)
    backward = forward_kernels(
        reverse_valid(X, x_lengths_arr), y_rev, lengths=lengths, y_lengths=y_lengths, **hyper
    )
    scale = sigma_v**2
    result: dict[KernelKey, np.ndarray] = {}
    for (kind, pool, depth), fwd_kernel in forward.items():
        rev_kernel = backward[(kind, pool, depth)]
        result[(kind, pool, depth, "fwd")] = scale * fwd_kernel
        result[(kind, pool, depth, "rev")] = scale * rev_kernel
        result[(kind, pool, depth, "bi")] = scale * (fwd_kernel + rev_kernel)
    return result
