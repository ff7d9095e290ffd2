"""The Pallas tile kernel (rntk_core/pallas_tile.py) against XLA's fused_tile, in interpret
mode on CPU; its lowering to Triton IR (no GPU needed); and the choice between the two."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import jax
import numpy as np
import pytest

from rntk_core import pallas_tile
from rntk_core.inputs import as_sequences
from rntk_core.pallas_tile import pallas_fused_tile, tile_function
from rntk_core.recurrent import Sigmas, fused_tile
from rntk_core.tiling import _prepare
from tests.helpers import relative_error

SIGMA_W = 1.3
SIGMA_U = np.array([0.5, 1.0])
SIGMA_B = np.array([0.0, 0.2])  # sigma_b = 0 and > 0 in one call (G = 2)
STEPS = 7


def tile_inputs(layers: int, directions: tuple[str, ...], masked: bool, features: int,
                rows: int = 20, cols: int = 13, seed: int = 0):
    """Operands as tiling.compute_readouts builds them (K(X, Y), no padding), and Sigmas."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, STEPS, features))
    y = rng.standard_normal((cols, STEPS, features))
    y[0] = x[0]  # an identical pair: defect exactly 0
    lengths_x = rng.integers(1, STEPS + 1, rows) if masked else None
    lengths_y = rng.integers(1, STEPS + 1, cols) if masked else None
    if masked:
        lengths_x[0] = lengths_y[0] = STEPS
    dtype = np.dtype("float32")
    a = _prepare(as_sequences(x, lengths_x, "X"), directions, SIGMA_W, SIGMA_U, SIGMA_B, layers, rows, dtype)
    b = _prepare(as_sequences(y, lengths_y, "Y"), directions, SIGMA_W, SIGMA_U, SIGMA_B, layers, cols, dtype)
    sigmas = Sigmas(np.asarray(SIGMA_W, dtype), SIGMA_U.astype(dtype), SIGMA_B.astype(dtype))
    return a, b, sigmas


# layers, directions, masked, features, arccos method, block: every layer count and direction
# count both masked and not; 20 x 13 tiles pad to the block (16 x 16: 32 x 16; 8 x 8: 24 x 16).
CASES = [
    (1, ("fwd",), False, 1, "polynomial", (16, 16)),
    (2, ("fwd", "rev"), True, 3, "native", (8, 8)),
    (2, ("rev",), False, 3, "polynomial", (16, 16)),
    (1, ("fwd", "rev"), True, 1, "native", (16, 8)),
]


@pytest.mark.parametrize("layers, directions, masked, features, method, block", CASES)
def test_pallas_matches_fused_tile(layers, directions, masked, features, method, block):
    a, b, sigmas = tile_inputs(layers, directions, masked, features)
    expected = np.asarray(fused_tile(a, b, sigmas, layers=layers, masked=masked, arccos_method=method))
    actual = np.asarray(pallas_fused_tile(a, b, sigmas, layers=layers, masked=masked, arccos_method=method,
                                          interpret=True, block=block))
    assert actual.shape == expected.shape == (len(directions), 4, layers, 2, 20, 13)
    assert actual.dtype == np.float32
    assert np.isfinite(actual).all()
    for index in np.ndindex(expected.shape[:4]):  # (direction, readout, layer, sigma pair)
        error = relative_error(actual[index], expected[index])
        assert error <= 1e-5, f"{index}: relative Frobenius error {error:.2e}"


@pytest.mark.parametrize("features, masked", [(3, True), (1, False)])
def test_kernel_lowers_to_triton(features, masked):
    """Lowered for CUDA without a GPU: the kernel passes the Pallas Triton lowering (power-of-two
    loads and stores, supported primitives). Compiling that Triton IR needs a GPU."""
    pytest.importorskip("jax._src.pallas.triton.pallas_call_registration")
    a, b, sigmas = tile_inputs(2, ("fwd", "rev"), masked, features)
    lowered = pallas_fused_tile.trace(a, b, sigmas, layers=2, masked=masked, arccos_method="native").lower(
        lowering_platforms=("cuda",))
    assert "xla.gpu.triton" in lowered.as_text()


def test_automatic_choice(monkeypatch):
    monkeypatch.delenv("RNTK_PALLAS", raising=False)
    monkeypatch.setattr(pallas_tile, "_pallas_failed", False)
    cpu = jax.devices("cpu")[0]
    gpu = SimpleNamespace(platform="gpu")
    assert tile_function(cpu, np.float32) is fused_tile
    assert tile_function(gpu, np.float64) is fused_tile
    assert tile_function(gpu, np.float32) is pallas_tile._pallas_or_xla
    monkeypatch.setenv("RNTK_PALLAS", "0")
    assert tile_function(gpu, np.float32) is fused_tile
    monkeypatch.setenv("RNTK_PALLAS", "1")
    assert tile_function(gpu, np.float32) is pallas_tile._pallas_or_xla


def test_failure_falls_back_to_xla_once(monkeypatch, caplog):
    monkeypatch.delenv("RNTK_PALLAS", raising=False)
    monkeypatch.setattr(pallas_tile, "_pallas_failed", False)
    calls = []

    def broken(*args, **kwargs):
        calls.append(1)
        raise NotImplementedError("no Triton here")

    monkeypatch.setattr(pallas_tile, "pallas_fused_tile", broken)
    a, b, sigmas = tile_inputs(1, ("fwd",), False, 1, rows=5, cols=3)
    gpu = SimpleNamespace(platform="gpu")
    kwargs = dict(layers=1, masked=False, arccos_method="polynomial")
    expected = np.asarray(fused_tile(a, b, sigmas, **kwargs))
    with caplog.at_level(logging.WARNING, logger="rntk_core.pallas_tile"):
        for _ in range(2):
            np.testing.assert_array_equal(np.asarray(tile_function(gpu, np.float32)(a, b, sigmas, **kwargs)),
                                          expected)
    assert len(calls) == 1
    assert len([r for r in caplog.records if "Pallas" in r.getMessage()]) == 1
    assert tile_function(gpu, np.float32) is fused_tile


def test_a_kernel_that_computes_wrong_is_dropped_after_its_first_tile(monkeypatch, caplog):
    """The kernel has not run on a GPU: its first tile of each shape is checked against XLA,
    and a wrong one is caught there (XLA's result returned, the kernel off for the process)."""
    monkeypatch.delenv("RNTK_PALLAS", raising=False)
    monkeypatch.setattr(pallas_tile, "_pallas_failed", False)
    monkeypatch.setattr(pallas_tile, "_checked", set())
    monkeypatch.setattr(pallas_tile, "pallas_fused_tile", lambda a, b, s, **k: fused_tile(a, b, s, **k) * 1.001)
    a, b, sigmas = tile_inputs(1, ("fwd",), False, 1, rows=5, cols=3)
    kwargs = dict(layers=1, masked=False, arccos_method="polynomial")
    gpu = SimpleNamespace(platform="gpu")
    with caplog.at_level(logging.WARNING, logger="rntk_core.pallas_tile"):
        result = tile_function(gpu, np.float32)(a, b, sigmas, **kwargs)
    np.testing.assert_array_equal(np.asarray(result), np.asarray(fused_tile(a, b, sigmas, **kwargs)))
    assert "differs from fused_tile" in caplog.text and tile_function(gpu, np.float32) is fused_tile
    # A right kernel passes the check once per shape and is then trusted.
    monkeypatch.setattr(pallas_tile, "_pallas_failed", False)
    monkeypatch.setattr(pallas_tile, "pallas_fused_tile", lambda a, b, s, **k: fused_tile(a, b, s, **k))
    for _ in range(2):
        tile_function(gpu, np.float32)(a, b, sigmas, **kwargs)
    assert len(pallas_tile._checked) == 1 and not pallas_tile._pallas_failed
