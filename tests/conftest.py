"""Loaded before every test module: rntk_core first, so its one-BLAS-thread default
(``OPENBLAS_NUM_THREADS``) is in place before any test imports scipy."""

import rntk_core  # noqa: F401
