"""The ReLU-MLP NTK / CK baseline (rntk_core.mlp): finite-width limits and exact algebra.

Finite width. A width-n network with exactly the module's parametrisation (weights N(0, 1),
float32, no biases)::

    g(1) = W1 x,   g(h+1) = sqrt(2/n) W(h+1) relu(g(h)),   f = sqrt(2/n) v . relu(g(depth))

* NTK: <grad f(x), grad f(x')> by autodiff with respect to the trainable layers only (the first
  ``fixed_layers`` weight matrices are closed over as constants), averaged over a few networks.
* CK: the average of f(x) f(x') over many networks (each with several readout heads v).

Tolerances are relative Frobenius errors ||emp - K||_F / ||K||_F, set to about 2.5x the largest
error measured over many seeds at these sizes (N = 6 inputs, d = 4):

* NTK, width 512 x 32 networks: max 0.056 over 20 seeds x 6 (depth, fixed_layers) pairs
  (typical 0.015-0.04; 16 networks gave up to 0.093). The Monte Carlo error falls roughly like
  1/sqrt(width * networks) (mean error at depth 3: 0.06 for 256 x 8, 0.016 for 512 x 32,
  0.005 for 1024 x 128), so the tolerance is NTK_C / sqrt(width * networks) with NTK_C = 18
  (0.14 here). Each estimate must also be closer to its own kernel than to the neighbouring
  fixed_layers' kernels (exact gaps 0.23-0.89; estimates never came within 0.18 of one).
* CK, width 128 x 1024 networks x 32 heads: max 0.025 over 20 seeds x 3 depths.
  Error ~ 1/sqrt(networks); tolerance CK_C / sqrt(networks) with CK_C = 2 (0.0625 here).
"""

from __future__ import annotations

import math
import warnings
from functools import lru_cache, partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rntk_core.mlp import mlp_gram, mlp_kernels
from tests.helpers import relative_error

FLOAT = np.float32
FEATURES = 4
SAMPLES = 6

NTK_WIDTH = 512
NTK_NETWORKS = 32
NTK_C = 18.0  # measured max error 0.056 = 7.2 / sqrt(512 * 32) over 20 seeds
NTK_TOLERANCE = NTK_C / math.sqrt(NTK_WIDTH * NTK_NETWORKS)

CK_WIDTH = 128
CK_NETWORKS = 1024
CK_HEADS = 32
CK_CHUNK = 128
CK_C = 2.0  # measured max error 0.025 = 0.8 / sqrt(1024) over 20 seeds
CK_TOLERANCE = CK_C / math.sqrt(CK_NETWORKS)

DEPTHS = (1, 2, 3)


def inputs() -> np.ndarray:
    """(SAMPLES, FEATURES) inputs with norms from 0.5 to 2 (the kernels scale with them)."""
    rng = np.random.default_rng(0)
    return rng.standard_normal((SAMPLES, FEATURES)) * np.linspace(0.5, 2.0, SAMPLES)[:, None]



# --------------------------------------------------------------------------- finite width


def init_network(
    rng: np.random.Generator, depth: int, width: int, lead: tuple[int, ...] = (), heads: int = 0
) -> list[jnp.ndarray]:
    """[W1 (width, d), W2.. (width, width), v (width,) or (heads, width)], each with ``lead``
    batch axes in front; N(0, 1) entries drawn with NumPy (cheaper to compile than jax.random)."""
    shapes = [(width, FEATURES)] + [(width, width)] * (depth - 1)
    shapes.append((heads, width) if heads else (width,))
    return [jnp.asarray(rng.standard_normal(lead + shape, dtype=FLOAT)) for shape in shapes]


def forward(params: list[jnp.ndarray], x: jnp.ndarray) -> jnp.ndarray:
    """f(x) for one input x (d,): a scalar, or (heads,) for a multi-head readout."""
    width = params[0].shape[0]
    scale = math.sqrt(2.0 / width)
    g = params[0] @ x
    for weight in params[1:-1]:
        g = scale * (weight @ jax.nn.relu(g))
    return scale * (params[-1] @ jax.nn.relu(g))


@partial(jax.jit, static_argnums=2)
def empirical_ntk(params: list[jnp.ndarray], x: jnp.ndarray, fixed_layers: int) -> jnp.ndarray:
    """(N, N) <df/dtheta, df/dtheta'> over the trainable layers params[fixed_layers:] only."""
    frozen, trainable = params[:fixed_layers], params[fixed_layers:]

    def f(train: list[jnp.ndarray], xi: jnp.ndarray) -> jnp.ndarray:
        return forward(frozen + train, xi)

    grads = jax.vmap(jax.grad(f), in_axes=(None, 0))(trainable, x)
    flat = [g.reshape(g.shape[0], -1) for g in grads]
    return sum(j @ j.T for j in flat)


@jax.jit
def mean_output_products(params: list[jnp.ndarray], x: jnp.ndarray) -> jnp.ndarray:
    """(N, N) mean of f(x) f(x') over a batch of networks (leading axis) and their heads."""

    def one(p: list[jnp.ndarray]) -> jnp.ndarray:
        f = jax.vmap(lambda xi: forward(p, xi))(x)  # (N, heads)
        return f @ f.T / f.shape[1]

    return jax.vmap(one)(params).mean(axis=0)


@lru_cache(maxsize=None)
def finite_width_ntks(depth: int) -> dict[int, np.ndarray]:
    """fixed_layers -> average empirical NTK, all from the same NTK_NETWORKS networks."""
    rng = np.random.default_rng(1000 + depth)
    x = jnp.asarray(inputs(), FLOAT)
    networks = [init_network(rng, depth, NTK_WIDTH) for _ in range(NTK_NETWORKS)]
    return {
        k: np.mean([np.asarray(empirical_ntk(p, x, k)) for p in networks], axis=0, dtype=np.float64)
        for k in range(depth)
    }


def finite_width_ck(depth: int) -> np.ndarray:
    rng = np.random.default_rng(2000 + depth)
    x = jnp.asarray(inputs(), FLOAT)
    chunks = [
        np.asarray(
            mean_output_products(
                init_network(rng, depth, CK_WIDTH, (CK_CHUNK,), heads=CK_HEADS), x
            ),
            dtype=np.float64,
        )
        for _ in range(CK_NETWORKS // CK_CHUNK)
    ]
    return np.mean(chunks, axis=0)


@pytest.mark.parametrize(
    "depth,fixed_layers", [(d, k) for d in DEPTHS for k in range(d)], ids=lambda v: str(v)
)
def test_ntk_matches_finite_width_networks(depth: int, fixed_layers: int) -> None:
    estimate = finite_width_ntks(depth)[fixed_layers]
    exact = mlp_gram(inputs(), kind="ntk", depth=depth, fixed_layers=fixed_layers)
    error = relative_error(estimate, exact)
    assert error < NTK_TOLERANCE, f"relative error {error:.4f} >= {NTK_TOLERANCE:.4f}"
    # Discriminating power: closer to its own kernel than to the neighbouring fixed_layers'
    # ones, so an off-by-one in which layers are trained would be caught.
    kernels = mlp_kernels(inputs(), max_depth=depth)
    neighbours = [
        kernels[("ntk", depth, k)] for k in (fixed_layers - 1, fixed_layers + 1) if 0 <= k < depth
    ]
    if fixed_layers == depth - 1:
        neighbours.append(kernels[("ck", depth, 0)])  # every hidden layer fixed
    for other in neighbours:
        assert relative_error(estimate, other) > error


@pytest.mark.parametrize("depth", DEPTHS)
def test_ck_matches_output_covariance_of_networks(depth: int) -> None:
    estimate = finite_width_ck(depth)
    exact = mlp_gram(inputs(), kind="ck", depth=depth)
    error = relative_error(estimate, exact)
    assert error < CK_TOLERANCE, f"relative error {error:.4f} >= {CK_TOLERANCE:.4f}"
    # Closer to its own depth's CK than to the neighbouring depths' (exact gaps 0.08-0.2).
    kernels = mlp_kernels(inputs(), max_depth=depth + 1)
    for other in {depth - 1, depth + 1} - {0}:
        assert relative_error(estimate, kernels[("ck", other, 0)]) > error


# --------------------------------------------------------------------------- exact algebra


def reference_kernels(x: np.ndarray, y: np.ndarray, depth: int, c_sigma: float) -> dict:
    """Explicit-sum reference on raw covariances (no cosine shortcut, general c_sigma):
    NTK(k) = sum_{h=k+1}^{depth+1} Sigma(h-1) prod_{h'=h}^{depth} Sigma'(h'), CK = Sigma(depth)."""
    var_x, var_y, cov = np.sum(x * x, 1), np.sum(y * y, 1), x @ y.T
    sigmas, derivs = [cov], [None]
    for _ in range(depth):
        root = np.sqrt(np.outer(var_x, var_y))
        angle = np.arccos(np.clip(cov / root, -1.0, 1.0))
        cov = c_sigma * root * (np.sin(angle) + (np.pi - angle) * np.cos(angle)) / (2 * np.pi)
        derivs.append(c_sigma * (np.pi - angle) / (2 * np.pi))
        var_x, var_y = c_sigma * var_x / 2, c_sigma * var_y / 2
        sigmas.append(cov)
    out = {"ck": sigmas[depth]}
    for k in range(depth):
        total = np.zeros_like(cov)
        for h in range(k + 1, depth + 2):
            term = sigmas[h - 1].copy()
            for hp in range(h, depth + 1):
                term = term * derivs[hp]
            total += term
        out[k] = total
    return out


def random_data(n: int, m: int, d: int = 5, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), 2.0 * rng.standard_normal((m, d))


def test_keys_of_the_one_pass_grid() -> None:
    x, _ = random_data(4, 1)
    kernels = mlp_kernels(x, max_depth=4)
    expected = {("ntk", d, k) for d in range(1, 5) for k in range(d)}
    expected |= {("ck", d, 0) for d in range(1, 5)}
    assert set(kernels) == expected
    assert all(a.shape == (4, 4) and a.dtype == np.float64 for a in kernels.values())


@pytest.mark.parametrize("cross", [False, True], ids=["gram", "cross"])
def test_one_pass_equals_separate_calls(cross: bool) -> None:
    x, y = random_data(7, 5)
    y = y if cross else None
    kernels = mlp_kernels(x, y, max_depth=5)
    for (kind, depth, k), value in kernels.items():
        np.testing.assert_array_equal(
            value, mlp_gram(x, y, kind=kind, depth=depth, fixed_layers=k)
        )
    # The CK ignores fixed_layers (still validated).
    np.testing.assert_array_equal(
        mlp_gram(x, y, kind="ck", depth=3, fixed_layers=2), kernels[("ck", 3, 0)]
    )


@pytest.mark.parametrize("depth", [1, 2, 4])
def test_matches_explicit_sum_and_arora_scaling(depth: int) -> None:
    """c_sigma = 2 here; Arora et al.'s code (c_sigma = 1) is 2**-depth times these."""
    x, y = random_data(6, 5)
    kernels = mlp_kernels(x, y, max_depth=depth)
    ref2 = reference_kernels(x, y, depth, 2.0)
    ref1 = reference_kernels(x, y, depth, 1.0)
    for k in range(depth):
        np.testing.assert_allclose(kernels[("ntk", depth, k)], ref2[k], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(
            kernels[("ntk", depth, k)], 2.0**depth * ref1[k], rtol=1e-12, atol=1e-12
        )
    np.testing.assert_allclose(kernels[("ck", depth, 0)], ref2["ck"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(
        kernels[("ck", depth, 0)], 2.0**depth * ref1["ck"], rtol=1e-12, atol=1e-12
    )


def test_symmetry_and_transpose() -> None:
    x, y = random_data(8, 5)
    gram = mlp_kernels(x, max_depth=4)
    same = mlp_kernels(x, x, max_depth=4)
    xy = mlp_kernels(x, y, max_depth=4)
    yx = mlp_kernels(y, x, max_depth=4)
    for key in gram:
        np.testing.assert_array_equal(gram[key], gram[key].T)
        np.testing.assert_allclose(same[key], gram[key], rtol=1e-13, atol=1e-13)
        np.testing.assert_allclose(xy[key], yx[key].T, rtol=1e-13, atol=1e-13)


def test_diagonal_and_duplicate_rows_are_exact() -> None:
    """x = x' gives c = 1 at every layer: CK = |x|^2, NTK(depth, k) = (depth + 1 - k) |x|^2."""
    x, y = random_data(40, 4)
    x *= np.random.default_rng(4).uniform(0.1, 10.0, (40, 1))  # unsnapped, ~1/4 of c would be < 1
    x[0, 1] = 0.0
    duplicate = x[0].copy()
    duplicate[1] = -0.0  # equal in value, not in bytes
    y = np.vstack([y, x[2], duplicate])  # Y rows 4 and 5 duplicate X rows 2 and 0
    sq = np.sum(x * x, axis=1)
    gram, cross = mlp_kernels(x, max_depth=5), mlp_kernels(x, y, max_depth=5)
    for (kind, depth, k), value in gram.items():
        factor = 1 if kind == "ck" else depth + 1 - k
        np.testing.assert_allclose(np.diag(value), factor * sq, rtol=1e-14)
        pairs = cross[(kind, depth, k)][[2, 0], [4, 5]]
        np.testing.assert_allclose(pairs, factor * sq[[2, 0]], rtol=1e-14)


def test_positive_homogeneity() -> None:
    x, y = random_data(5, 4)
    base = mlp_kernels(x, y, max_depth=3)
    scaled = mlp_kernels(3.0 * x, 0.25 * y, max_depth=3)
    for key in base:
        np.testing.assert_allclose(scaled[key], 0.75 * base[key], rtol=1e-12, atol=1e-14)


def test_removed_layer_contribution_is_psd() -> None:
    """NTK(k) - NTK(k+1) = Sigma(k) prod Sigma' is a kernel: no significantly negative eigenvalue.
    So is NTK(depth-1) - CK, and every NTK and CK itself."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((40, 3))
    x[5] = x[4]  # a duplicate and a parallel row make the Gram singular
    x[6] = 3.0 * x[4]
    kernels = mlp_kernels(x, max_depth=4)

    def min_relative_eig(a: np.ndarray) -> float:
        eig = np.linalg.eigvalsh(a)
        return eig[0] / max(eig[-1], 1e-300)

    for depth in range(1, 5):
        chain = [kernels[("ntk", depth, k)] for k in range(depth)] + [kernels[("ck", depth, 0)]]
        for kernel in chain:
            assert min_relative_eig(kernel) > -1e-12
        for upper, lower in zip(chain, chain[1:]):
            difference = upper - lower
            assert np.linalg.norm(difference) > 1e-3 * np.linalg.norm(upper)
            assert min_relative_eig(difference) > -1e-12


def test_zero_rows_give_zero_and_no_nan() -> None:
    x, y = random_data(5, 4)
    x[1] = 0.0
    y[3] = -0.0
    with warnings.catch_warnings(), np.errstate(divide="raise", invalid="raise"):
        warnings.simplefilter("error")
        gram = mlp_kernels(x, max_depth=3)
        cross = mlp_kernels(x, y, max_depth=3)
    keep_x, keep_y = [0, 2, 3, 4], [0, 1, 2]
    clean = mlp_kernels(x[keep_x], y[keep_y], max_depth=3)
    for key in gram:
        for value, zero_column in ((gram[key], 1), (cross[key], 3)):
            assert np.all(np.isfinite(value))
            assert np.all(value[1] == 0.0) and np.all(value[:, zero_column] == 0.0)
        np.testing.assert_allclose(cross[key][np.ix_(keep_x, keep_y)], clean[key], rtol=1e-13)
    zeros = mlp_gram(np.zeros((2, 3)), kind="ntk", depth=2)
    np.testing.assert_array_equal(zeros, np.zeros((2, 2)))


def test_list_and_int_inputs_are_accepted() -> None:
    x = [[1, 0], [0, 2], [1, 1]]
    np.testing.assert_allclose(
        mlp_gram(x, depth=2), mlp_gram(np.asarray(x, float), depth=2), rtol=0, atol=0
    )


# --------------------------------------------------------------------------- validation

GOOD = np.ones((3, 2))


def nan_at(value: float) -> np.ndarray:
    out = GOOD.copy()
    out[1, 0] = value
    return out


BAD_ARRAYS = [
    ("x_rank_1", dict(X=np.ones(3)), r"2-D"),
    ("x_rank_3", dict(X=np.ones((3, 2, 1))), r"2-D"),
    ("y_rank_1", dict(X=GOOD, Y=np.ones(2)), r"2-D"),
    ("x_empty", dict(X=np.ones((0, 2))), r"empty"),
    ("x_no_features", dict(X=np.ones((3, 0))), r"empty"),
    ("x_nan", dict(X=nan_at(np.nan)), r"NaN"),
    ("x_inf", dict(X=nan_at(np.inf)), r"inf"),
    ("y_minus_inf", dict(X=GOOD, Y=nan_at(-np.inf)), r"Y.*inf"),
    ("y_other_d", dict(X=GOOD, Y=np.ones((2, 3))), r"same number of features"),
    ("x_strings", dict(X=[["a", "b"]]), r"numeric"),
    ("x_complex", dict(X=GOOD + 1j), r"real"),
]


@pytest.mark.parametrize("case", BAD_ARRAYS, ids=lambda c: c[0])
@pytest.mark.parametrize("fn", [mlp_kernels, mlp_gram], ids=["kernels", "gram"])
def test_bad_arrays(fn, case) -> None:
    _, kwargs, pattern = case
    with pytest.raises(ValueError, match=pattern):
        fn(**kwargs)


@pytest.mark.parametrize(
    "kwargs,pattern",
    [
        (dict(kind="nngp"), r"kind"),
        (dict(depth=0), r"depth"),
        (dict(depth=-1), r"depth"),
        (dict(depth=1.0), r"depth.*integer"),
        (dict(depth=True), r"depth.*integer"),
        (dict(depth=2, fixed_layers=2), r"fixed_layers.*0\.\.1"),
        (dict(depth=2, fixed_layers=-1), r"fixed_layers"),
        (dict(depth=1, fixed_layers=1), r"fixed_layers"),
        (dict(kind="ck", depth=2, fixed_layers=3), r"fixed_layers"),
        (dict(depth=3, fixed_layers=None), r"fixed_layers.*integer"),
    ],
)
def test_bad_options_for_gram(kwargs, pattern) -> None:
    with pytest.raises(ValueError, match=pattern):
        mlp_gram(GOOD, **kwargs)


@pytest.mark.parametrize("max_depth", [0, -2, 2.0, False, "3", None])
def test_bad_max_depth(max_depth) -> None:
    with pytest.raises(ValueError, match="max_depth"):
        mlp_kernels(GOOD, max_depth=max_depth)


def test_numpy_integer_options_are_accepted() -> None:
    a = mlp_gram(GOOD, depth=np.int64(2), fixed_layers=np.int32(1))
    np.testing.assert_array_equal(a, mlp_gram(GOOD, depth=2, fixed_layers=1))
    assert set(mlp_kernels(GOOD, max_depth=np.int64(1))) == {("ntk", 1, 0), ("ck", 1, 0)}
