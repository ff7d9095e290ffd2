"""Infinite-width fully-connected ReLU kernels: the MLP NTK and CK (NNGP) baseline.

This is the baseline of Arora et al., "Harnessing the Power of Infinitely Wide Deep Nets on
Small-data Tasks" (ICLR 2020), used on the 90 UCI datasets: a bias-free ReLU MLP with
``depth`` hidden layers in the NTK parametrisation, every weight N(0, 1)::

    g(1)   = W(1) x                                   (no 1/sqrt(d) on the input layer)
    g(h+1) = sqrt(2 / n) W(h+1) relu(g(h))            h = 1 .. depth-1
    f(x)   = sqrt(2 / n) W(depth+1) relu(g(depth))     (scalar output; n = width -> inf)

Layers are numbered 1 .. depth+1: the hidden layers' weights W(1) .. W(depth), then the output
layer W(depth+1).

Kernels (c_sigma = 2, with (u, v) ~ N(0, [[S(x,x), S(x,x')], [S(x,x'), S(x',x')]]))::

    Sigma(0)(x, x')   = <x, x'>
    Sigma(h)(x, x')   = 2 E[relu(u) relu(v)]      over S = Sigma(h-1)       h = 1 .. depth
    Sigma'(h)(x, x')  = 2 E[relu'(u) relu'(v)]    over S = Sigma(h-1)

In closed form, with ``c = clip(Sigma(h-1)(x,x') / (|x| |x'|), -1, 1)`` and ``theta = arccos c``
(c_sigma = 2 keeps every variance equal to the input's: ``Sigma(h)(x, x) = |x|^2``)::

    Sigma(h)(x, x')   = |x| |x'| (sin(theta) + (pi - theta) c) / pi
    Sigma'(h)(x, x')  = (pi - theta) / pi

* CK (NNGP), the output covariance E[f(x) f(x')]:  ``CK(depth) = Sigma(depth)``.
* NTK with the first ``k`` layers fixed (their weights get no gradient), k = 0 .. depth-1: the
  sum of the per-layer contributions <df/dW(h), df/dW(h)'> of the trained layers h = k+1 ..
  depth+1 (the output layer is always trained)::

      NTK(depth, k) = sum_{h=k+1}^{depth+1} Sigma(h-1) * prod_{h'=h}^{depth} Sigma'(h')

  computed by the recursion ``Theta_k <- Theta_k * Sigma'(h) + Sigma(h)`` over the layers, for
  every k at once. ``NTK(depth, 0)`` is the usual fully-trained NTK.

Relation to Arora et al.'s public code (``NTK.kernel_value_batch(X, d_max)``, which uses
c_sigma = 1, i.e. a 1/(2 pi) instead of 1/pi above, and indexes by the number of hidden layers)::

    mlp_gram(X, kind="ntk", depth=D, fixed_layers=k) == 2**D * K[D][k]     (k < D)
    mlp_gram(X, kind="ck",  depth=D)                 == 2**D * K[D][D]

(their "all hidden layers fixed" entry is the CK). The factor 2**D is one common scale per depth,
so the kernel machines fitted on either agree up to their regularisation constant. Their
depth-0 (linear) kernel is not part of this grid.

Numerics (float64 NumPy): the recursion runs on cosines and multiplies by ``|x| |x'|`` at the
end, so a zero-norm row (where the cosine is undefined) gives an exactly zero kernel row and no
NaN; cosines are clipped to [-1, 1]; pairs of identical rows (the diagonal of K(X, X), and equal
rows of X and Y) get c = 1 exactly at every layer. ``mlp_kernels(X)`` is exactly symmetric.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

__all__ = ["MLPKernelKey", "mlp_gram", "mlp_kernels"]

MLPKind = Literal["ck", "ntk"]
MLPKernelKey = tuple[str, int, int]
KINDS: tuple[str, ...] = ("ck", "ntk")


# --------------------------------------------------------------------------- validation


def _as_matrix(array: Any, name: str) -> np.ndarray:
    """A finite, non-empty (N, d) float64 copy-or-view of ``array``."""
    if np.iscomplexobj(array):
        raise ValueError(f"{name} must be a real numeric array; got a complex array")
    try:
        values = np.asarray(array, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a numeric array: {exc}") from None
    if values.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array of shape (N, d); got rank {values.ndim}")
    if 0 in values.shape:
        raise ValueError(f"{name} is empty: shape {values.shape}")
    if not np.all(np.isfinite(values)):
        row, col = np.argwhere(~np.isfinite(values))[0]
        raise ValueError(f"{name} contains NaN or inf (first at row {row}, column {col})")
    return values


def _check_int(value: Any, name: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer; got {value!r}")
    value = int(value)
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in {low}..{high}"
        raise ValueError(f"{name} must be {bound}; got {value}")
    return value


def _prepare(X: Any, Y: Any) -> tuple[np.ndarray, np.ndarray | None]:
    x = _as_matrix(X, "X")
    if Y is None:
        return x, None
    y = _as_matrix(Y, "Y")
    if y.shape[1] != x.shape[1]:
        raise ValueError(
            f"X and Y must have the same number of features d; got {x.shape[1]} and {y.shape[1]}"
        )
    return x, y


# --------------------------------------------------------------------------- kernels


def _identical_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(N, M) bool: row i of x equals row j of y (value-wise, so -0.0 == 0.0)."""
    both = np.vstack([x, y]) + 0.0  # + 0.0 turns -0.0 into 0.0 for the byte-wise row compare
    _, inverse = np.unique(both, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    return inverse[: x.shape[0], None] == inverse[None, x.shape[0] :]


def _input_layer(x: np.ndarray, y: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scale ``|x| |y|`` (N, M), cosine ``c`` of Sigma(0) (N, M), and the identical-pair mask."""
    norm_x = np.sqrt(np.einsum("ij,ij->i", x, x))
    if y is None:
        dots = x @ x.T
        dots = 0.5 * (dots + dots.T)  # exactly symmetric
        scale = np.outer(norm_x, norm_x)
        same = np.eye(x.shape[0], dtype=bool)
    else:
        norm_y = np.sqrt(np.einsum("ij,ij->i", y, y))
        dots = x @ y.T
        scale = np.outer(norm_x, norm_y)
        same = _identical_rows(x, y)
    defined = scale > 0.0
    cos = np.zeros_like(dots)
    np.divide(dots, scale, out=cos, where=defined)
    np.clip(cos, -1.0, 1.0, out=cos)
    snap = same & defined
    cos[snap] = 1.0
    return scale, cos, snap


def _relu_layer(cos: np.ndarray, snap: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One ReLU layer on cosines (c_sigma = 2): (next cosine, Sigma'), both (N, M).

    ``Sigma(h) = |x||x'| * next``; the variances stay ``|x|^2``, so the next cosine is
    ``(sin(theta) + (pi - theta) c) / pi`` and ``Sigma' = (pi - theta) / pi``.
    """
    theta = np.arccos(cos)
    rest = np.pi - theta
    derivative = rest / np.pi
    nxt = (np.sqrt(np.maximum(1.0 - cos * cos, 0.0)) + rest * cos) / np.pi
    np.clip(nxt, -1.0, 1.0, out=nxt)
    nxt[snap] = 1.0
    return nxt, derivative


def mlp_kernels(
    X: Any, Y: Any = None, *, max_depth: int = 5
) -> dict[MLPKernelKey, np.ndarray]:
    """Every ReLU-MLP CK and NTK up to ``max_depth`` hidden layers, in one pass.

    Args:
        X: (N, d) finite real array.
        Y: (M, d) finite real array, or None for K(X, X) (then M = N and every kernel is
            exactly symmetric).
        max_depth: largest number of hidden layers (>= 1).

    Returns:
        A dict of (N, M) float64 arrays keyed by ``(kind, depth, fixed_layers)``:

        * ``("ntk", depth, k)`` for depth in 1..max_depth and k in 0..depth-1: the NTK with the
          first k layers' weights fixed (see the module docstring);
        * ``("ck", depth, 0)`` for depth in 1..max_depth: the CK / NNGP kernel. It does not
          depend on which layers are trained, so it is stored under fixed_layers = 0 only
          (iterating over the dict visits each distinct kernel once).

        The depth-D kernels are read off after layer D of the depth-``max_depth`` recursion,
        so they are bit-identical to ``mlp_gram(..., depth=D)``.

    Raises:
        ValueError: X or Y not a non-empty finite 2-D real array, different d, or a bad
            max_depth.
    """
    x, y = _prepare(X, Y)
    max_depth = _check_int(max_depth, "max_depth", 1)
    scale, cos, snap = _input_layer(x, y)

    out: dict[MLPKernelKey, np.ndarray] = {}
    # theta[k]: NTK with the first k layers fixed, divided by |x||x'|; starts as Sigma(0).
    theta: list[np.ndarray] = [cos.copy()]
    for depth in range(1, max_depth + 1):
        cos, derivative = _relu_layer(cos, snap)
        for k in range(depth):
            theta[k] *= derivative
            theta[k] += cos
            out[("ntk", depth, k)] = scale * theta[k]
        out[("ck", depth, 0)] = scale * cos
        theta.append(cos.copy())  # layer depth+1 trained alone: the output layer of depth+1
    return out


def mlp_gram(
    X: Any,
    Y: Any = None,
    *,
    kind: MLPKind = "ntk",
    depth: int = 1,
    fixed_layers: int = 0,
) -> np.ndarray:
    """One ReLU-MLP kernel: the CK or the NTK of ``depth`` hidden layers.

    Args:
        X: (N, d) finite real array.
        Y: (M, d) finite real array, or None for K(X, X).
        kind: "ntk" or "ck".
        depth: number of hidden layers (>= 1).
        fixed_layers: number of leading layers whose weights are not trained, 0..depth-1.
            Validated for both kinds; the CK ignores it.

    Returns:
        (N, M) float64 array, equal to ``mlp_kernels(X, Y)[(kind, depth, fixed_layers)]``
        (fixed_layers read as 0 for the CK).

    Raises:
        ValueError: bad arrays (see :func:`mlp_kernels`), kind, depth or fixed_layers.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(map(repr, KINDS))}; got {kind!r}")
    depth = _check_int(depth, "depth", 1)
    fixed_layers = _check_int(fixed_layers, "fixed_layers", 0, depth - 1)
    kernels = mlp_kernels(X, Y, max_depth=depth)
    return kernels[(kind, depth, fixed_layers if kind == "ntk" else 0)]
