"""Tiles, the memory budget, symmetry, devices and the grid mapping."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import rntk_core
from rntk_core.tiling import plan_tiles
from tests.helpers import REPO, relative_error

GRID = dict(sigma_w=1.3, sigma_u=(0.5, 1.0), sigma_b=(0.0, 0.2), layers=2)



@pytest.fixture(scope="module")
def data() -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.standard_normal((37, 6, 2))


def test_tiled_equals_untiled(data):
    whole = rntk_core.gram_grid(data, **GRID)
    stats: dict = {}
    # A budget this small forces 8-wide tiles and one sigma pair per call.
    tiled = rntk_core.gram_grid(data, **GRID, memory_budget=200_000, stats=stats)
    assert stats["tile_side"] <= 16 and stats["sigma_pairs_per_call"] < 4
    assert stats["working_bytes"] <= 200_000
    for key in whole:
        assert relative_error(tiled[key], whole[key]) < 1e-6, key


def test_symmetric_computes_upper_tiles_and_mirrors(data):
    stats: dict = {}
    symmetric = rntk_core.gram_grid(data, **GRID, memory_budget=200_000, stats=stats)
    side = stats["tile_side"]
    blocks = -(-len(data) // side)
    chunks = -(-4 // stats["sigma_pairs_per_call"])  # sigma pairs split over calls
    assert stats["tiles_computed"] == chunks * blocks * (blocks + 1) // 2
    full_stats: dict = {}
    rectangular = rntk_core.gram_grid(
        data, data.copy(), **GRID, memory_budget=200_000, stats=full_stats
    )
    assert full_stats["tiles_computed"] == chunks * blocks * blocks
    for key in symmetric:
        np.testing.assert_allclose(symmetric[key], symmetric[key].T, rtol=0, atol=0)
        assert relative_error(symmetric[key], rectangular[key]) < 1e-6, key


def test_rectangular_tiles_cover_every_entry(data):
    x, y = data[:21], data[21:]
    direct = rntk_core.gram_grid(x, y, **GRID)
    tiled = rntk_core.gram_grid(x, y, **GRID, memory_budget=150_000)
    transposed = rntk_core.gram_grid(y, x, **GRID, memory_budget=150_000)
    for key in direct:
        assert direct[key].shape == (21, 16)
        assert relative_error(tiled[key], direct[key]) < 1e-6
        assert relative_error(transposed[key].T, direct[key]) < 1e-6


@pytest.mark.parametrize("n", [10, 1_000, 100_000, 1_000_000])
def test_plan_respects_budget_whatever_n(n):
    budget = 64 * 2**20
    plan = plan_tiles(n, n, 2, 4, 2, 4, budget, max_tile=None)
    assert plan.peak_bytes <= budget
    assert plan.side >= 8
    # the largest such tile: one step bigger would not fit (unless it already covers n)
    assert plan.side >= n or (plan.side + 8) ** 2 * plan.bytes_per_pair > budget
    # the working set grows with the sigma pairs batched together
    assert plan_tiles(n, n, 2, 1, 2, 4, budget, max_tile=None).bytes_per_pair < plan.bytes_per_pair


def test_budget_too_small_is_a_clear_error(data):
    with pytest.raises(ValueError, match="memory_budget"):
        rntk_core.gram_grid(data, **GRID, memory_budget=1000)


def test_grid_mapping_keys(data):
    grid = rntk_core.gram_grid(data[:5], **GRID)
    keys = list(grid)
    assert len(keys) == len(grid) == 4 * 4 * 2 * 3
    assert keys[0] == ("ck", "last", 1, "fwd", 0.5, 0.0)
    assert isinstance(keys[0], rntk_core.GridKey)
    plain = ("ntk", "avg", 2, "bi", 1.0, 0.2)
    np.testing.assert_array_equal(grid[plain], grid[rntk_core.GridKey(*plain)])
    for missing in [("ntk", "avg", 3, "bi", 1.0, 0.2), ("ntk", "avg", 1, "bi", 0.3, 0.2),
                    ("ntk", "mean", 1, "fwd", 1.0, 0.2), "ntk"]:
        with pytest.raises(KeyError):
            grid[missing]


@pytest.mark.parametrize("directions", [("fwd",), ("rev",), ("bi",), ("fwd", "rev")])
def test_a_grid_runs_only_the_sweeps_its_directions_need(data, directions, monkeypatch):
    """Forward kernels only: one sweep, half the work, the same values as the whole grid's;
    the kernels of a sweep not run are not in the grid."""
    import rntk_core.api as api

    swept = []
    real = api.compute_readouts
    monkeypatch.setattr(api, "compute_readouts", lambda *a, **k: swept.append(k["directions"]) or real(*a, **k))
    x, z = data[:21], data[21:]
    whole = rntk_core.gram_grid(x, z, **GRID)
    part = rntk_core.gram_grid(x, z, **GRID, directions=directions)
    needed = ("fwd", "rev") if "bi" in directions else directions
    assert swept == [("fwd", "rev"), tuple(d for d in ("fwd", "rev") if d in needed)]
    held = set(needed) | ({"bi"} if set(needed) == {"fwd", "rev"} else set())
    assert {key.direction for key in part} == held and len(part) == len(list(part)) == 4 * 4 * 2 * len(held)
    for key in whole:
        if key.direction in held:
            np.testing.assert_allclose(part[key], whole[key], rtol=1e-6, atol=0)
        else:
            with pytest.raises(KeyError):
                part[key]


@pytest.mark.parametrize("directions", [(), ("up",), "sideways"])
def test_unknown_or_no_directions_are_clear_errors(data, directions):
    with pytest.raises(ValueError, match="direction"):
        rntk_core.gram_grid(data[:5], **GRID, directions=directions)


def test_tiles_spread_over_devices(tmp_path, data):
    """With two (host) devices, tiles go to both and the result is unchanged."""
    np.save(tmp_path / "x.npy", data)
    script = textwrap.dedent(
        f"""
        import json, numpy as np, jax, rntk_core
        x = np.load({str(tmp_path / 'x.npy')!r})
        stats = {{}}
        grid = rntk_core.gram_grid(x, sigma_u=(0.5, 1.0), sigma_b=(0.0, 0.2), sigma_w=1.3,
                                   layers=2, memory_budget=200_000, stats=stats)
        np.save({str(tmp_path / 'k.npy')!r}, grid[("ntk", "avg", 2, "bi", 1.0, 0.2)])
        print(json.dumps({{"devices": stats["devices"], "count": len(jax.devices())}}))
        """
    )
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2",
               JAX_PLATFORMS="cpu")
    run = subprocess.run([sys.executable, "-c", script], env=env, cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    info = json.loads(run.stdout.strip().splitlines()[-1])
    assert info["count"] == 2 and len(info["devices"]) == 2
    expected = rntk_core.gram_grid(data, **GRID)[("ntk", "avg", 2, "bi", 1.0, 0.2)]
    assert relative_error(np.load(tmp_path / "k.npy"), expected) < 1e-6


def test_benchmark_baseline_agrees_with_engine():
    """`make bench` compares against a correct baseline, not just a slow one.

    In float64: the float32 baseline's unsnapped diagonal is itself off by ~1e-4.
    """
    import jax

    from benchmarks.naive_rntk import naive_grid

    rng = np.random.default_rng(0)
    x = rng.standard_normal((9, 5))
    x /= np.linalg.norm(x, axis=1).max()
    with jax.enable_x64(True):
        base = naive_grid(x, 2**0.5, (0.25, 0.5), (0.001, 0.1), 2)
    grid = rntk_core.gram_grid(
        x, sigma_u=(0.25, 0.5), sigma_b=(0.001, 0.1), layers=2, dtype="float64"
    )
    assert len(base) == 64
    for key, kernel in base.items():
        assert kernel.dtype == np.float64
        assert relative_error(grid[key], kernel) < 1e-6, key
