"""A machine's own rates for the cost model (:mod:`.cost`), measured in a few seconds.

The cost model's constants were measured on a 2-core CPU; a GPU computes Gram grids tens to
hundreds of times faster, and another CPU differs too. :func:`measure` times the two rates
the model prices, on this process's default JAX device and host CPU:

- the Gram grid's seconds per cell (:func:`.cost.grid_cells`): one ``gram_grid`` call at N=256,
  T=16, L=2, 2x2 (sigma_u, sigma_b) pairs, compiled once, then the median of 3 timed calls.
  Where that call is too quick to time (a GPU: launch overhead would dominate), N doubles
  (at most 2048, each size compiled before it is timed);
- the dense SVM fit's seconds per squared training sample: libsvm (the default ``auto``
  solver starts with it) on a 200 x 200 slice of that call's kernel, C = 1, median of 3.

JAX is imported inside :func:`measure` only: importing this module stays cheap.
"""

from __future__ import annotations

import os
import socket
import statistics
import time
from typing import Any, Callable

import numpy as np

from .cost import SECONDS_PER_CELL, SECONDS_PER_FIT_SAMPLE2, grid_cells

__all__ = ["measure"]

_STEPS, _LAYERS, _SIGMA_U, _SIGMA_B = 16, 2, (0.5, 1.0), (0.001, 0.1)
#: Below this a timed call measures launch overhead more than the grid; N grows instead.
_SHORTEST_CALL_S = 0.1
_LARGEST_N = 2048
_FIT_N = 200


def _median_seconds(call: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _device() -> str:
    """The default device in words, e.g. ``gpu: NVIDIA H100 80GB HBM3`` or ``cpu: 2 cores``."""
    import jax

    device = jax.devices()[0]
    if device.platform == "cpu":
        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:  # pragma: no cover - non-Linux
            cores = os.cpu_count() or 1
        return f"cpu: {cores} cores"
    return f"{device.platform}: {getattr(device, 'device_kind', '') or device}"


def measure(memory_budget: int | None = None, *, samples: int = 256, repeats: int = 3) -> dict[str, Any]:
    """This machine's rates as the cost model's constants and as factors of its defaults
    (below 1: faster than the 2-core CPU). ``memory_budget``: the engine's tile budget, as
    the jobs use it (the tile plan changes the rate)."""
    from rntk_core.api import gram_grid

    from .solvers.libsvm import fit_svc

    started = time.perf_counter()
    rng = np.random.default_rng(0)
    options = {"sigma_u": _SIGMA_U, "sigma_b": _SIGMA_B, "layers": _LAYERS, "memory_budget": memory_budget}
    while True:
        inputs = rng.standard_normal((samples, _STEPS)).astype(np.float32)
        grid = gram_grid(inputs, **options)  # compiles this shape's tiles
        seconds = _median_seconds(lambda: gram_grid(inputs, **options), repeats)
        if seconds >= _SHORTEST_CALL_S or samples >= _LARGEST_N:
            break
        samples *= 2
    seconds_per_cell = seconds / grid_cells(samples, _STEPS, len(_SIGMA_U) * len(_SIGMA_B), _LAYERS)

    # A realistic kernel for the SVM: the grid's own, labels a function of the inputs.
    kernel = np.asarray(grid[("ntk", "last", _LAYERS, "fwd", _SIGMA_U[0], _SIGMA_B[-1])], dtype=np.float64)
    train = np.arange(min(_FIT_N, samples))
    labels = (inputs[train, -1] > 0).astype(np.int64)
    k_train = np.ascontiguousarray(kernel[np.ix_(train, train)])
    fit_seconds = _median_seconds(lambda: fit_svc(k_train, labels, k_train[:1], 1.0), repeats)
    seconds_per_fit_sample2 = fit_seconds / float(len(train)) ** 2

    return {
        "seconds_per_cell": seconds_per_cell,
        "factor": seconds_per_cell / SECONDS_PER_CELL,
        "seconds_per_fit_sample2": seconds_per_fit_sample2,
        "fit_factor": seconds_per_fit_sample2 / SECONDS_PER_FIT_SAMPLE2,
        "device": _device(),
        "host": socket.gethostname(),
        "grid_shape": {"n_samples": samples, "steps": _STEPS, "layers": _LAYERS,
                       "sigma_pairs": len(_SIGMA_U) * len(_SIGMA_B), "seconds": round(seconds, 4)},
        "measure_seconds": round(time.perf_counter() - started, 3),
        "measured_at": time.time(),
    }
