"""rntk_core: exact, fused, tiled neural tangent kernels of recurrent architectures.

Importing the package is cheap: JAX loads on first use of ``gram``, ``gram_grid`` and the
grid types, so tools that only need :mod:`rntk_core.evaluation.datasets` (the API process,
for one) never import it.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__all__ = ["GramGrid", "GridKey", "gram", "gram_grid"]
__version__ = "0.1.0"

if TYPE_CHECKING:
    from .api import GramGrid, GridKey, gram, gram_grid


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(import_module(".api", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
