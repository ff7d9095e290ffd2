"""rntk_core: exact, fused, tiled neural tangent kernels of recurrent architectures."""

from .api import GramGrid, GridKey, gram, gram_grid

__all__ = ["GramGrid", "GridKey", "gram", "gram_grid"]
__version__ = "0.1.0"
