"""What a pool child sets before it imports JAX (a job's, a block's, the calibration's)."""

from __future__ import annotations

import importlib.util
import os

from worker.settings import Settings

__all__ = ["prepare_jax", "use_compile_cache"]


def prepare_jax(settings: Settings) -> None:
    """Device memory allocated as needed rather than 75% up front (the engine's tile budget
    bounds it), and the compile cache."""
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    use_compile_cache(settings)


def use_compile_cache(settings: Settings) -> None:
    """JAX's persistent compilation cache for this worker process (read when JAX loads; the
    environment's own JAX_* settings win). Entries are keyed by program and device kind, so
    worker hosts may share the data volume's cache."""
    if settings.compile_cache_mb <= 0:
        return
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(settings.compile_cache_dir))
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    if importlib.util.find_spec("filelock") is not None:  # JAX refuses a size limit without it
        os.environ.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", str(settings.compile_cache_mb << 20))
