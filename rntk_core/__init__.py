"""rntk_core: exact, fused, tiled neural tangent kernels of recurrent architectures.

Importing the package is cheap: JAX loads on first use of ``gram``, ``gram_grid`` and the
grid types, so tools that only need :mod:`rntk_core.evaluation.datasets` (the API process,
for one) never import it.
"""

from __future__ import annotations

import os
from importlib import import_module
from typing import TYPE_CHECKING, Any

# jaxlib's CPU LAPACK (the SVM solver's batched Cholesky) runs on scipy's OpenBLAS, whose
# threads oversubscribe busy cores on small matrices: 64 factorisations at n = 128 took 9 s
# instead of 6 ms on 2 loaded cores. One thread unless the user chose; OpenBLAS reads this
# when it loads, so it holds wherever scipy is first imported after rntk_core.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

# XLA's multi-threaded Eigen pool on the CPU can wedge: a full test run hung in the JAX SVM
# solver with every XLA worker idle and the caller waiting on its result (the jaxlib 0.10.2
# CPU runtime; the flag below is the known workaround). Single-threaded Eigen costs the engine
# ~12% (gram_grid N=1000, T=20: 1.62 s vs 1.44 s) and speeds the solver up (0.58 s vs 0.70 s).
# GPU computations are unaffected. A user's own setting of the flag wins.
_FLAG = "--xla_cpu_multi_thread_eigen"
if _FLAG not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_FLAG}=false".strip()

__all__ = ["GramGrid", "GridKey", "gram", "gram_grid"]
__version__ = "0.1.0"

if TYPE_CHECKING:
    from .api import GramGrid, GridKey, gram, gram_grid


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(import_module(".api", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
