"""Loaded before every test module: rntk_core first, so its one-BLAS-thread default
(``OPENBLAS_NUM_THREADS``) and single-threaded XLA CPU Eigen (``XLA_FLAGS``) are in place
before any test imports scipy or JAX."""

import rntk_core  # noqa: F401
