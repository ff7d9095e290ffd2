"""Bad input to ``gram`` / ``gram_grid`` raises ValueError with a message that names the problem."""

from __future__ import annotations

import numpy as np
import pytest

import rntk_core

RNG = np.random.default_rng(0)
X = RNG.standard_normal((4, 6, 3))
Y = RNG.standard_normal((3, 6, 3))


def with_value(array: np.ndarray, value: float, position: tuple = (1, 2, 0)) -> np.ndarray:
    out = array.copy()
    out[position] = value
    return out


# (id, keyword arguments, regex the message must match). Every case is run through both gram
# and gram_grid, except options only gram takes (kind, pool, direction).
BAD_DATA = [
    ("nan_in_x", dict(X=with_value(X, np.nan)), r"(?i)nan"),
    ("nan_in_y", dict(X=X, Y=with_value(Y, np.nan)), r"(?i)nan"),
    ("inf_in_x", dict(X=with_value(X, np.inf)), r"(?i)inf"),
    ("minus_inf_in_y", dict(X=X, Y=with_value(Y, -np.inf)), r"(?i)inf"),
    ("x_rank_1", dict(X=np.ones(6)), r"(?i)shape|rank|dim"),
    ("x_rank_4", dict(X=np.ones((4, 6, 3, 1))), r"(?i)shape|rank|dim"),
    ("y_rank_4", dict(X=X, Y=np.ones((3, 6, 3, 1))), r"(?i)shape|rank|dim"),
    ("y_other_steps", dict(X=X, Y=Y[:, :5]), r"(?i)step|\bT\b"),
    ("y_other_features", dict(X=X, Y=Y[:, :, :2]), r"(?i)feature|\bm\b"),
    ("y_2d_when_x_has_3_features", dict(X=X, Y=Y[:, :, 0]), r"(?i)feature|\bm\b"),
    ("lengths_wrong_shape", dict(X=X, lengths=np.array([6, 6, 6])), r"(?i)length"),
    ("lengths_2d", dict(X=X, lengths=np.full((4, 1), 6)), r"(?i)length"),
    ("lengths_zero", dict(X=X, lengths=np.array([6, 0, 3, 6])), r"(?i)length"),
    ("lengths_negative", dict(X=X, lengths=np.array([6, -1, 3, 6])), r"(?i)length"),
    ("lengths_above_T", dict(X=X, lengths=np.array([6, 7, 3, 6])), r"(?i)length"),
    ("y_lengths_above_T", dict(X=X, Y=Y, y_lengths=np.array([1, 7, 6])), r"(?i)length"),
    ("y_lengths_wrong_shape", dict(X=X, Y=Y, y_lengths=np.array([1, 2, 3, 4])), r"(?i)length"),
    ("layers_zero", dict(X=X, layers=0), r"(?i)layers"),
    ("layers_negative", dict(X=X, layers=-2), r"(?i)layers"),
    ("sigma_w_zero", dict(X=X, sigma_w=0.0), r"sigma_w"),
    ("sigma_w_negative", dict(X=X, sigma_w=-1.0), r"sigma_w"),
    ("sigma_v_zero", dict(X=X, sigma_v=0.0), r"sigma_v"),
    ("sigma_v_negative", dict(X=X, sigma_v=-0.5), r"sigma_v"),
    ("sigma_w_nan", dict(X=X, sigma_w=float("nan")), r"sigma_w"),
    ("dtype_float16", dict(X=X, dtype="float16"), r"(?i)dtype"),
    ("dtype_unknown", dict(X=X, dtype="double-ish"), r"(?i)dtype"),
]

# sigma_u and sigma_b are scalars for gram and sequences (grids) for gram_grid.
BAD_SIGMAS = [
    ("sigma_u_zero", "sigma_u", 0.0, r"sigma_u"),
    ("sigma_u_negative", "sigma_u", -0.5, r"sigma_u"),
    ("sigma_b_negative", "sigma_b", -0.1, r"sigma_b"),
    ("sigma_u_inf", "sigma_u", float("inf"), r"sigma_u"),
]

SIGMA_IDS = [case[0] for case in BAD_SIGMAS]

BAD_CHOICES = [
    ("kind", "nngp", r"(?i)kind"),
    ("pool", "max", r"(?i)pool"),
    ("pool", "mean", r"(?i)pool"),
    ("direction", "backward", r"(?i)direction"),
    ("direction", "reverse", r"(?i)direction"),
]


@pytest.mark.parametrize("arguments, pattern", [case[1:] for case in BAD_DATA], ids=[case[0] for case in BAD_DATA])
def test_gram_rejects(arguments: dict, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        rntk_core.gram(**arguments)


@pytest.mark.parametrize("arguments, pattern", [case[1:] for case in BAD_DATA], ids=[case[0] for case in BAD_DATA])
def test_gram_grid_rejects(arguments: dict, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        rntk_core.gram_grid(**arguments)


@pytest.mark.parametrize("name, value, pattern", [case[1:] for case in BAD_SIGMAS], ids=SIGMA_IDS)
def test_gram_rejects_sigma(name: str, value: float, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        rntk_core.gram(X, **{name: value})


@pytest.mark.parametrize("name, value, pattern", [case[1:] for case in BAD_SIGMAS], ids=SIGMA_IDS)
def test_gram_grid_rejects_sigma_in_grid(name: str, value: float, pattern: str) -> None:
    """One bad value anywhere in a grid axis is enough."""
    good = {"sigma_u": 0.5, "sigma_b": 0.1}[name]
    with pytest.raises(ValueError, match=pattern):
        rntk_core.gram_grid(X, **{name: (good, value)})


@pytest.mark.parametrize("option, value, pattern", BAD_CHOICES, ids=[f"{c[0]}={c[1]}" for c in BAD_CHOICES])
def test_gram_rejects_unknown_choice(option: str, value: str, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        rntk_core.gram(X, **{option: value})


def test_edge_values_are_accepted() -> None:
    """sigma_b = 0, lengths of 1 and T, and (N, T) inputs are all valid."""
    kernel = rntk_core.gram(
        X, Y, sigma_b=0.0, lengths=np.array([1, 6, 3, 6]), y_lengths=np.array([6, 1, 2]), kind="ck", pool="avg"
    )
    assert kernel.shape == (4, 3) and np.all(np.isfinite(kernel))
    grid = rntk_core.gram_grid(X[:, :, 0], sigma_b=(0.0,), sigma_u=(1.0,), layers=1)
    assert np.all(np.isfinite(grid[("ntk", "last", 1, "bi", 1.0, 0.0)]))


@pytest.mark.parametrize("output", ["host", "device"])
def test_a_kernel_that_overflows_float32_is_refused_with_its_cause(output: str) -> None:
    """sigma_w = 2 doubles the kernel per step: float32 overflows over 200 steps (it returned
    NaN kernels before); float64 holds 2**200, and the default sigma_w = sqrt(2) stays bounded."""
    long = np.random.default_rng(3).standard_normal((4, 200)) / 10
    with pytest.raises(ValueError, match=r"overflowed float32.*sigma_w = 2 > sqrt\(2\).*T = 200.*float64"):
        rntk_core.gram_grid(long, sigma_w=2.0, layers=1, output=output)
    kernel = np.asarray(rntk_core.gram_grid(long, sigma_w=2.0, layers=1, dtype="float64", output=output)
                        [("ntk", "avg", 1, "fwd", 0.5, 0.1)])
    assert np.all(np.isfinite(kernel)) and kernel.max() > 1e38
    assert np.all(np.isfinite(rntk_core.gram(long, layers=1)))
