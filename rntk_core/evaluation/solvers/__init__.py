"""C-SVM solvers behind one interface: libsvm (scikit-learn) and the batched JAX solver.

The names live here, with no imports, so the config schema and the CLI can use them without
loading a solver: :data:`Solver` is what a config asks for, :data:`ResolvedSolver` what runs
(:func:`.strategy.choose_solver` picks it, once per job).
"""

from __future__ import annotations

from typing import Literal, get_args

__all__ = ["LINEAR_KERNEL_ROWS", "SOLVERS", "ResolvedSolver", "Solver"]

#: What a config or ``--solver`` may ask for.
Solver = Literal["auto", "jax", "libsvm"]
SOLVERS: tuple[str, ...] = get_args(Solver)
#: What runs: ``auto`` resolves to ``hybrid`` (see :mod:`.strategy`).
ResolvedSolver = Literal["libsvm", "jax", "hybrid"]
#: The landmark path's linear fits of up to this many training rows go to libsvm on the kernel
#: Phi Phi' first (``auto`` on a CPU, and ``libsvm``): its n x n float64 is 512 MiB at the limit.
LINEAR_KERNEL_ROWS = 8192
