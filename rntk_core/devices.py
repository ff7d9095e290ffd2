"""What the accelerators hold: the one place that reads device memory.

JAX is imported only where the caller allows it: a worker's main process must stay free of
JAX (it forks the pool child that runs jobs), so :func:`device_memory` reads only a JAX that
this process has already loaded.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["device_memory", "free_device_bytes"]


def _stats(device: Any) -> dict | None:
    try:
        stats = device.memory_stats()
    except Exception:  # backends without stats (CPU) or one still initialising
        return None
    return stats or None


def free_device_bytes(*, unknown: int = 0) -> int:
    """Free memory of the first device; ``unknown`` on a CPU or where the backend does not tell."""
    import jax

    device = jax.devices()[0]
    if device.platform == "cpu":
        return unknown
    stats = _stats(device) or {}
    if "bytes_limit" not in stats:
        return unknown
    return max(0, int(stats["bytes_limit"] - stats.get("bytes_in_use", 0)))


def device_memory() -> list[dict] | None:
    """Memory in use on each local accelerator, or None where it cannot be read.

    Only from a JAX that this process has already imported (never imports it). CPU devices
    report no stats, so on a CPU this is None.
    """
    jax = sys.modules.get("jax")
    if jax is None:
        return None
    try:
        devices = jax.local_devices()
    except Exception:  # the backend is still initialising, or failed to
        return None
    found = []
    for device in devices:
        stats = _stats(device)
        if stats and "bytes_in_use" in stats:
            found.append({"device": f"{device.platform}:{device.id}",
                          "bytes_in_use": int(stats["bytes_in_use"]),
                          "peak_bytes_in_use": int(stats.get("peak_bytes_in_use", 0)),
                          "bytes_limit": int(stats.get("bytes_limit", 0))})
    return found or None
