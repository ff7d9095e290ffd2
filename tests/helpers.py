"""What many tests share: the relative Frobenius error, the paths to ../shared, the archive data."""

from __future__ import annotations

from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
#: ``../shared`` beside the checkout (CI lays it out the same way).
SHARED = REPO.parent / "shared"
UCI = SHARED / "data" / "uci"
#: UCR/UEA problems copied from the aeon 1.6.0 wheel: <NAME>.zip holds NAME_TRAIN.ts, NAME_TEST.ts.
TS_DATA = REPO / "tests" / "data" / "ts"


def archive_ts_lines(name: str, part: str) -> list[str]:
    """The lines of ``NAME_<part>.ts`` (part: TRAIN or TEST) from ``tests/data/ts``."""
    import zipfile

    with zipfile.ZipFile(TS_DATA / f"{name}.zip") as archive:
        return archive.read(f"{name}_{part}.ts").decode().splitlines()


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    """||actual - expected||_F / ||expected||_F, in float64."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    return float(np.linalg.norm(actual - expected) / np.linalg.norm(expected))


def assert_close(actual: np.ndarray, expected: np.ndarray, rtol: float, what: object = "") -> None:
    """Assert a relative Frobenius error of at most ``rtol``; the message gives the error."""
    error = relative_error(actual, expected)
    assert error <= rtol, f"{what}: relative Frobenius error {error:.3g} > {rtol:g}"

#: What the worker sets for JAX's compilation cache (worker.jax_env.use_compile_cache): kept out
#: of the environment services inherit, so each test's worker caches under its own data_dir.
CACHE_VARIABLES = ("JAX_COMPILATION_CACHE_DIR", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS",
                   "JAX_COMPILATION_CACHE_MAX_SIZE")
