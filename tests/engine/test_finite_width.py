"""The kernels' definitions: finite-width ReLU RNNs converge to the engine's CK and NTK.

A width-n network with exactly the spec's NTK parametrisation (every weight N(0, 1)):

    g(1,t) = sw/sqrt(n) W1 h(1,t-1) + su/sqrt(m) U1 x_t      + sb b1
    g(l,t) = sw/sqrt(n) Wl h(l,t-1) + su/sqrt(n) Ul h(l-1,t) + sb bl      (l >= 2)
    h(l,t) = relu(g(l,t)),   h(l,0) = 0
    last:  f = sv/sqrt(n) V h(L,T)
    avg:   f = sum_t sv/sqrt(n) V(t) h(L,t)     (one V(t) per step, indexed from the end)

* NTK: <grad_params f(x), grad_params f(x')> by autodiff over the whole parameter pytree,
  averaged over a few networks. Its V-block <df/dV, df/dV'> = sv^2/n <h(L)(x), h(L)(x')> is the
  finite-width CK, checked as well.
* CK: the average of f(x) f(x') over many random networks (vmap).
* Variable lengths: each sequence runs at its own length (no padding, no mask); the engine gets
  the front-padded inputs and ``lengths``.
* Reversed direction: networks run on the time-reversed sequences against direction="rev".

Every network carries both readouts (a last-step V and per-step V(t)); the gradient of one
pool's output with respect to the other pool's readout is zero, so one set of networks yields
both pools' kernels. The estimates are cached per configuration and shared by the tests.

Tolerances are relative Frobenius errors, set from errors measured with these sizes over 10
seeds (numbers next to each constant): about 2.5x the error at the seed the tests use, 4x the
mean and 1.7x the worst over seeds (the seeds are fixed, but jax.random's stream may change
between JAX versions). The NTK estimate's error falls like 1/sqrt(width * networks); the CK
estimate at width 128 is dominated by the finite-width bias, about 2/width.
"""

from __future__ import annotations

import math
from functools import lru_cache, partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rntk_core

from tests.engine.spec_reference import reference_kernels, reverse_valid
from tests.helpers import relative_error

FLOAT = jnp.float32
POOLS = ("last", "avg")

# One hyperparameter set for the whole file.
HYPER = dict(sigma_w=1.2, sigma_u=1.0, sigma_b=0.3, sigma_v=1.0)

# Empirical NTK. The spec measured ~1% at n=4096, 4 networks, 4 inputs, T=4, m=3, L=2.
# Here, over 10 seeds x 14 (inputs, L, kind, pool) estimates (NTK and its V-block): mean 0.018,
# max 0.047; at the seed used below, max 0.032.
NTK_WIDTH = 512
NTK_NETWORKS = 32
NTK_TOLERANCE = 0.08

# CK as the average of f(x) f(x') over networks x readout heads (heads share the recurrent
# weights; every (network, head) is a draw of the full network). Over 10 seeds x 2 pools:
# mean 0.019, max 0.046; at the seed used below, 0.014.
CK_WIDTH = 128
CK_NETWORKS = 1024
CK_HEADS = 64
CK_TOLERANCE = 0.08

STEPS = 4
FEATURES = 3
VARLEN_LENGTHS = (4, 2, 3, 1)



# --------------------------------------------------------------------------------------------
# The finite network
# --------------------------------------------------------------------------------------------


def init_params(key: jax.Array, *, width: int, features: int, layers: int, steps: int, heads: int = 0) -> dict:
    """All weights N(0, 1), drawn as one flat vector (one RNG op compiles much faster than many).

    ``V_last`` is (n,), ``V_avg`` is (T, n) (one V(t) per step); with ``heads`` > 0 both get a
    leading axis of that many independent readouts sharing the recurrent weights.
    """
    head_axis = () if heads == 0 else (heads,)
    shapes: dict = {
        "W": [(width, width) for _ in range(layers)],
        "U": [(width, features if layer == 0 else width) for layer in range(layers)],
        "b": [(width,) for _ in range(layers)],
        "V_last": (*head_axis, width),
        "V_avg": (*head_axis, steps, width),
    }
    leaves, treedef = jax.tree_util.tree_flatten(shapes, is_leaf=lambda leaf: isinstance(leaf, tuple))
    sizes = [math.prod(shape) for shape in leaves]
    flat = jax.random.normal(key, (sum(sizes),), FLOAT)
    offsets = np.cumsum([0, *sizes])
    arrays = [flat[offsets[i] : offsets[i + 1]].reshape(shape) for i, shape in enumerate(leaves)]
    return jax.tree_util.tree_unflatten(treedef, arrays)


def top_hidden_states(params: dict, sequence: jax.Array) -> jax.Array:
    """h(L, t) for t = 1..len(sequence), shape (len, n): the network run on ``sequence``."""
    sigma_w, sigma_u, sigma_b = HYPER["sigma_w"], HYPER["sigma_u"], HYPER["sigma_b"]
    width = params["W"][0].shape[0]
    layers = len(params["W"])

    def cell(state: list, x_t: jax.Array) -> tuple[list, jax.Array]:
        below = x_t
        new_state = []
        for layer in range(layers):
            fan_in = below.shape[0]
            pre = (
                sigma_w / math.sqrt(width) * (params["W"][layer] @ state[layer])
                + sigma_u / math.sqrt(fan_in) * (params["U"][layer] @ below)
                + sigma_b * params["b"][layer]
            )
            below = jax.nn.relu(pre)
            new_state.append(below)
        return new_state, below

    initial = [jnp.zeros(width, FLOAT) for _ in range(layers)]  # h(l, 0) = 0
    _, top = jax.lax.scan(cell, initial, sequence)
    return top


def network_outputs(params: dict, sequence: jax.Array) -> jax.Array:
    """(f_last, f_avg) for one sequence at its own length; V(t) is indexed from the end.

    With readout heads, each entry has a leading head axis.
    """
    width = params["W"][0].shape[0]
    top = top_hidden_states(params, sequence)  # (len, n)
    scale = HYPER["sigma_v"] / math.sqrt(width)
    f_last = scale * (params["V_last"] @ top[-1])
    total_steps = params["V_avg"].shape[-2]
    readout = params["V_avg"][..., total_steps - top.shape[0] :, :]  # this sequence's V(t)
    f_avg = scale * jnp.sum(readout * top, axis=(-2, -1))
    return jnp.stack([f_last, f_avg])


_init_params = jax.jit(init_params, static_argnames=("width", "features", "layers", "steps", "heads"))


@jax.jit
def _sequence_jacobian(params: dict, sequence: jax.Array) -> tuple[jax.Array, jax.Array]:
    """d(f_last, f_avg)/d(every parameter) for one sequence at its own length, shape (2, P).

    Also returns the readout block d(f_last, f_avg)/d(V_last, V_avg). One compile per length.
    """
    jac = jax.jacrev(network_outputs)(params, sequence)  # every leaf gets a leading pool axis
    flat = jnp.concatenate([leaf.reshape(2, -1) for leaf in jax.tree_util.tree_leaves(jac)], axis=1)
    readout = jnp.concatenate([jac["V_last"].reshape(2, -1), jac["V_avg"].reshape(2, -1)], axis=1)
    return flat, readout


def _pool_grams(rows: list[jax.Array]) -> np.ndarray:
    """Per-sequence (2, P) Jacobians -> the (2, N, N) Gram matrices <J_i, J_j> per pool."""
    jacobian = jnp.stack(rows, axis=1)  # (2, N, P)
    return np.asarray(jacobian @ jnp.swapaxes(jacobian, 1, 2), dtype=np.float64)


@lru_cache(maxsize=None)
def empirical_ntk(inputs_name: str, layers: int, reverse: bool, seed: int = 0) -> dict[tuple[str, str], np.ndarray]:
    """Empirical NTK and its V-block per pool, averaged over NTK_NETWORKS networks of NTK_WIDTH."""
    X, lengths = named_inputs(inputs_name)
    sequences = unpad(X, lengths)
    if reverse:
        sequences = [seq[::-1] for seq in sequences]
    sequences = tuple(jnp.asarray(seq, FLOAT) for seq in sequences)
    keys = jax.random.split(jax.random.PRNGKey(seed), NTK_NETWORKS)
    ntk = np.zeros((2, len(sequences), len(sequences)))
    readout = np.zeros_like(ntk)
    steps = max(seq.shape[0] for seq in sequences)
    for key in keys:
        params = _init_params(key, width=NTK_WIDTH, features=FEATURES, layers=layers, steps=steps)
        jacobians = [_sequence_jacobian(params, seq) for seq in sequences]  # each at its own length
        ntk += _pool_grams([full for full, _ in jacobians])
        readout += _pool_grams([block for _, block in jacobians])
    ntk /= NTK_NETWORKS
    readout /= NTK_NETWORKS
    return {
        **{("ntk", pool): ntk[index] for index, pool in enumerate(POOLS)},
        **{("ck", pool): readout[index] for index, pool in enumerate(POOLS)},
    }


@partial(jax.jit, static_argnames=("layers", "width", "heads"))
def _output_products(keys: jax.Array, inputs: jax.Array, *, layers: int, width: int, heads: int) -> jax.Array:
    """Sum over networks and heads of f(x) f(x')^T, shape (2 pools, N, N); inputs (N, T, m)."""

    def one_network(key: jax.Array) -> jax.Array:
        steps, features = inputs.shape[1], inputs.shape[2]
        params = init_params(key, width=width, features=features, layers=layers, steps=steps, heads=heads)
        outputs = jax.vmap(lambda seq: network_outputs(params, seq), out_axes=2)(inputs)  # (2, heads, N)
        return jnp.einsum("phi,phj->pij", outputs, outputs)

    return jnp.sum(jax.vmap(one_network)(keys), axis=0)


@lru_cache(maxsize=None)
def monte_carlo_ck(layers: int, seed: int = 0) -> dict[str, np.ndarray]:
    """The average of f(x) f(x') over CK_NETWORKS x CK_HEADS random networks, per pool."""
    X, _ = named_inputs("equal")
    keys = jax.random.split(jax.random.PRNGKey(seed), CK_NETWORKS)
    chunk = 256
    total = np.zeros((2, X.shape[0], X.shape[0]))
    inputs = jnp.asarray(X, FLOAT)
    for start in range(0, CK_NETWORKS, chunk):
        products = _output_products(keys[start : start + chunk], inputs, layers=layers, width=CK_WIDTH, heads=CK_HEADS)
        total += np.asarray(products, dtype=np.float64)
    total /= CK_NETWORKS * CK_HEADS
    return {pool: total[index] for index, pool in enumerate(POOLS)}


# --------------------------------------------------------------------------------------------
# Inputs: 4 sequences, T = 4, m = 3 (the spec's measurement)
# --------------------------------------------------------------------------------------------


def named_inputs(name: str) -> tuple[np.ndarray, np.ndarray | None]:
    """("equal", None) or ("varlen", lengths): front-padded with zeros to T = 4."""
    rng = np.random.default_rng(2024)
    X = rng.standard_normal((len(VARLEN_LENGTHS), STEPS, FEATURES))
    if name == "equal":
        return X, None
    lengths = np.array(VARLEN_LENGTHS)
    for row, length in enumerate(lengths):
        X[row, : STEPS - length] = 0.0
    return X, lengths


def unpad(X: np.ndarray, lengths: np.ndarray | None) -> list[np.ndarray]:
    """The valid part of each front-padded sequence."""
    if lengths is None:
        return list(X)
    return [row[X.shape[1] - int(length) :] for row, length in zip(X, lengths)]


@lru_cache(maxsize=None)
def engine_kernels(inputs_name: str, layers: int, dtype: str = "float64") -> dict:
    """Every (kind, pool, layers, direction) kernel of the engine for these inputs."""
    X, lengths = named_inputs(inputs_name)
    grid = rntk_core.gram_grid(
        X,
        sigma_w=HYPER["sigma_w"],
        sigma_u=(HYPER["sigma_u"],),
        sigma_b=(HYPER["sigma_b"],),
        sigma_v=HYPER["sigma_v"],
        layers=layers,
        lengths=lengths,
        dtype=dtype,
    )
    return {tuple(key[:4]): np.asarray(kernel) for key, kernel in grid.items()}


def engine_kernel(inputs_name: str, *, kind: str, pool: str, layers: int, direction: str = "fwd",
                  dtype: str = "float64") -> np.ndarray:
    return engine_kernels(inputs_name, layers, dtype)[(kind, pool, layers, direction)]


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["ntk", "ck"])
@pytest.mark.parametrize("pool", POOLS)
@pytest.mark.parametrize("layers", [1, 2])
def test_empirical_kernel_matches_engine(kind: str, pool: str, layers: int) -> None:
    """<grad f(x), grad f(x')> (ntk) and its readout block (ck) against the engine."""
    empirical = empirical_ntk("equal", layers, reverse=False)[(kind, pool)]
    expected = engine_kernel("equal", kind=kind, pool=pool, layers=layers)
    assert relative_error(empirical, expected) <= NTK_TOLERANCE


@pytest.mark.parametrize("kind", ["ntk", "ck"])
@pytest.mark.parametrize("pool", POOLS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_empirical_kernel_variable_lengths(kind: str, pool: str, dtype: str) -> None:
    """Sequences of lengths 4, 2, 3, 1 each run at their own length; aligned at their ends.
    float32 runs the masked complement recursion (dual.py), float64 the spec's literal one."""
    empirical = empirical_ntk("varlen", 2, reverse=False)[(kind, pool)]
    expected = engine_kernel("varlen", kind=kind, pool=pool, layers=2, dtype=dtype)
    assert relative_error(empirical, expected) <= NTK_TOLERANCE


@pytest.mark.parametrize("pool", POOLS)
def test_empirical_kernel_reversed_direction(pool: str) -> None:
    """direction="rev" with lengths is the NTK of networks run on each sequence reversed.

    (Equal lengths are covered by the exact identity test below plus the forward tests.)
    """
    empirical = empirical_ntk("varlen", 2, reverse=True)[("ntk", pool)]
    expected = engine_kernel("varlen", kind="ntk", pool=pool, layers=2, direction="rev")
    assert relative_error(empirical, expected) <= NTK_TOLERANCE
    # The reversed kernel must differ from the forward one here, or this test proves nothing.
    forward = engine_kernel("varlen", kind="ntk", pool=pool, layers=2, direction="fwd")
    assert relative_error(forward, expected) > 2 * NTK_TOLERANCE


@pytest.mark.parametrize("pool", POOLS)
def test_output_products_average_to_ck(pool: str) -> None:
    """L = 2 here; the L = 1 CK is covered by the NTK's readout block above."""
    empirical = monte_carlo_ck(layers=2)[pool]
    expected = engine_kernel("equal", kind="ck", pool=pool, layers=2)
    assert relative_error(empirical, expected) <= CK_TOLERANCE


@pytest.mark.parametrize("inputs_name", ["equal", "varlen"])
def test_engine_reverse_is_forward_on_reversed_inputs(inputs_name: str) -> None:
    """Exactly: rev = fwd on each sequence's valid part reversed (front padding kept)."""
    X, lengths = named_inputs(inputs_name)
    for pool in POOLS:
        rev = engine_kernel(inputs_name, kind="ntk", pool=pool, layers=2, direction="rev")
        forward_on_reversed = rntk_core.gram(
            reverse_valid(X, lengths), kind="ntk", pool=pool, layers=2, lengths=lengths, dtype="float64", **HYPER
        )
        assert relative_error(rev, forward_on_reversed) <= 1e-12


@pytest.mark.parametrize("inputs_name", ["equal", "varlen"])
def test_engine_agrees_with_spec_reference_on_these_inputs(inputs_name: str) -> None:
    """The analytic side of this file, cross-checked against the independent NumPy reference."""
    X, lengths = named_inputs(inputs_name)
    reference = reference_kernels(X, layers=2, lengths=lengths, **HYPER)
    engine = engine_kernels(inputs_name, 2)
    for key, expected in reference.items():
        assert relative_error(engine[key], expected) <= 1e-10, key
