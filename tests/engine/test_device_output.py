"""``gram_grid(output="device")``: the grid assembled on the device equals the host assembly."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import rntk_core


@pytest.mark.parametrize("with_y", [False, True])
def test_device_output_equals_host_output(with_y):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((70, 6, 2)) / 4
    Y = rng.standard_normal((45, 6, 2)) / 4 if with_y else None
    # A small budget: several tiles (diagonal and off-diagonal) and several sigma-pair chunks.
    options = dict(sigma_u=(0.25, 0.5), sigma_b=(0.001, 0.1), layers=2, memory_budget=300_000)
    stats: dict = {}
    host = rntk_core.gram_grid(X, Y, **options)
    device = rntk_core.gram_grid(X, Y, output="device", stats=stats, **options)
    assert stats["tiles_computed"] > 2 and stats["sigma_pairs_per_call"] < 4
    for key in host:
        value = device[key]
        assert isinstance(value, jax.Array)
        np.testing.assert_array_equal(np.asarray(value), host[key], err_msg=str(key))
    if not with_y:
        kernel = np.asarray(device[("ntk", "avg", 2, "bi", 0.5, 0.1)])
        np.testing.assert_array_equal(kernel, kernel.T)


def test_device_output_scales_by_sigma_v_and_rejects_unknown_outputs():
    X = np.random.default_rng(1).standard_normal((20, 4)) / 2
    host = rntk_core.gram_grid(X, sigma_v=1.5, layers=1)
    device = rntk_core.gram_grid(X, sigma_v=1.5, layers=1, output="device")
    key = ("ck", "last", 1, "fwd", 0.5, 0.1)
    np.testing.assert_array_equal(np.asarray(device[key]), host[key])
    with pytest.raises(ValueError, match="output"):
        rntk_core.gram_grid(X, output="gpu")


def test_explicit_pairs_give_the_product_grids_kernels():
    """``pairs=``: any subset of (sigma_u, sigma_b) pairs, e.g. one chunk of a large grid,
    equals those pairs of the full grid (float64: bit for bit is not promised across tile
    shapes, so within 1e-12)."""
    X = np.random.default_rng(2).standard_normal((30, 5)) / 2
    full = rntk_core.gram_grid(X, sigma_u=(0.25, 0.5), sigma_b=(0.001, 0.1), layers=2, dtype="float64")
    for pairs in ([(0.5, 0.001)], [(0.25, 0.1), (0.5, 0.1)]):
        chunk = rntk_core.gram_grid(X, pairs=pairs, layers=2, dtype="float64", output="device")
        assert len(chunk) == len(pairs) * 4 * 2 * 3
        for key in chunk:
            np.testing.assert_allclose(np.asarray(chunk[key]), full[key], rtol=1e-12, atol=0, err_msg=str(key))
        with pytest.raises(KeyError):
            chunk[("ck", "last", 1, "fwd", 0.25, 0.001)]
    for bad, match in (([], "at least one"), ([0.5], "pairs"), ([(0.5, -1.0)], "sigma_b")):
        with pytest.raises(ValueError, match=match):
            rntk_core.gram_grid(X, pairs=bad)
