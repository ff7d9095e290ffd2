"""C-SVM solvers behind one interface: libsvm (scikit-learn) and the batched JAX solver.

The names live here, with no imports, so the config schema and the CLI can use them without
loading a solver: :data:`Solver` is what a config asks for, :data:`ResolvedSolver` what runs
(:func:`.strategy.choose_solver` picks it, once per job).
"""

from __future__ import annotations

from typing import Literal, get_args

__all__ = ["SOLVERS", "ResolvedSolver", "Solver"]

#: What a config or ``--solver`` may ask for.
Solver = Literal["auto", "jax", "libsvm"]
SOLVERS: tuple[str, ...] = get_args(Solver)
#: What runs: ``auto`` resolves to ``hybrid`` (see :mod:`.strategy`).
ResolvedSolver = Literal["libsvm", "jax", "hybrid"]
