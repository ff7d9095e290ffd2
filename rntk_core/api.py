"""Public entry points: ``gram`` for one kernel, ``gram_grid`` for a whole hyperparameter grid."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

from .inputs import (
    DIRECTIONS,
    KINDS,
    POOLS,
    Sequences,
    as_sequences,
    check_choice,
    check_dtype,
    check_layers,
    check_pair,
    check_sigma,
    check_sigmas,
)
from .recurrent import READOUTS
from .tiling import compute_readouts


class GridKey(NamedTuple):
    """Names one kernel of a grid; equal to (and hashed like) the plain tuple."""

    kind: str
    pool: str
    layers: int
    direction: str
    sigma_u: float
    sigma_b: float


#: The engine's sweeps: forward, and over the time-reversed inputs.
SWEEPS = ("fwd", "rev")


def sweeps_for(directions: Iterable[str]) -> tuple[str, ...]:
    """The sweeps that kernels of these directions need ("bi" is fwd + rev), in
    :data:`SWEEPS` order."""
    needed = set()
    for direction in (directions,) if isinstance(directions, str) else directions:
        check_choice(direction, "direction", DIRECTIONS)
        needed.update(SWEEPS if direction == "bi" else (direction,))
    return tuple(sweep for sweep in SWEEPS if sweep in needed)


class GramGrid(Mapping):
    """Every kernel of a (sigma_u, sigma_b) grid, keyed by :class:`GridKey` or a plain tuple.

    ``bi`` kernels are formed on access as fwd + rev, so they cost no memory until used.
    A grid of one sweep (``sweeps``) holds only that direction's kernels.
    """

    def __init__(
        self,
        readouts: np.ndarray,
        sigma_pairs: Sequence[tuple[float, float]],
        layers: int,
        sigma_v: float,
        sweeps: Sequence[str] = SWEEPS,
    ) -> None:
        # readouts: (sweeps, 4 readouts, L, G, N, M), scaled by sigma_v**2.
        self._readouts = readouts
        self._sweeps = {sweep: index for index, sweep in enumerate(sweeps)}
        self.directions = tuple(sweeps) + (("bi",) if len(self._sweeps) == len(SWEEPS) else ())
        self._pairs = {pair: index for index, pair in enumerate(sigma_pairs)}
        self._readout_index = {name: index for index, name in enumerate(READOUTS)}
        self.layers = layers
        self.sigma_v = sigma_v
        self.shape = readouts.shape[-2:]

    def __getitem__(self, key: Any) -> np.ndarray:
        try:
            kind, pool, layers, direction, sigma_u, sigma_b = key
            readout = self._readout_index[(kind, pool)]
            pair = self._pairs[(sigma_u, sigma_b)]
            valid_layers = 1 <= layers <= self.layers
        except (TypeError, ValueError, KeyError):
            raise KeyError(key) from None
        if not valid_layers or direction not in self.directions:
            raise KeyError(key)
        if direction == "bi":
            return self._readouts[0, readout, layers - 1, pair] + self._readouts[1, readout, layers - 1, pair]
        return self._readouts[self._sweeps[direction], readout, layers - 1, pair]

    def __iter__(self) -> Iterator[GridKey]:
        for (sigma_u, sigma_b), (kind, pool), layers, direction in itertools.product(
            self._pairs, READOUTS, range(1, self.layers + 1), self.directions
        ):
            yield GridKey(kind, pool, layers, direction, sigma_u, sigma_b)

    def __len__(self) -> int:
        return len(self._pairs) * len(READOUTS) * self.layers * len(self.directions)


def _check_pair_of_sigmas(pair: Any) -> tuple[float, float]:
    try:
        sigma_u, sigma_b = pair
    except (TypeError, ValueError):
        raise ValueError(f"pairs must hold (sigma_u, sigma_b) pairs; got {pair!r}") from None
    return check_sigma(sigma_u, "sigma_u"), check_sigma(sigma_b, "sigma_b", allow_zero=True)


def _validated_inputs(
    X: Any, Y: Any, lengths: Any, y_lengths: Any
) -> tuple[Sequences, Sequences | None]:
    x = as_sequences(X, lengths, "X")
    if Y is None:
        if y_lengths is not None:
            raise ValueError("y_lengths was given without Y")
        return x, None
    y = as_sequences(Y, y_lengths, "Y")
    check_pair(x, y)
    return x, y


def gram(
    X: Any,
    Y: Any = None,
    *,
    kind: str = "ntk",
    pool: str = "last",
    layers: int = 1,
    direction: str = "fwd",
    sigma_w: float = 2**0.5,
    sigma_u: float = 1.0,
    sigma_b: float = 0.0,
    sigma_v: float = 1.0,
    lengths: Any = None,
    y_lengths: Any = None,
    dtype: str = "float32",
    memory_budget: int | None = None,
) -> np.ndarray:
    """One RNTK Gram matrix K(X, Y) of shape (N, M).

    X: (N, T) or (N, T, m); Y: (M, T, m) or None for K(X, X).
    kind: "ck" or "ntk"; pool: "last" (output at the final step) or "avg" (sum over
    steps); direction: "fwd", "rev" (time-reversed inputs) or "bi" (fwd + rev).
    lengths / y_lengths: per-sequence lengths of front-padded inputs, compared aligned
    at their ends. memory_budget: device bytes for the working set (tiles), default
    ``RNTK_MEMORY_BUDGET_MB`` (1024 MiB).
    """
    check_choice(kind, "kind", KINDS)
    check_choice(pool, "pool", POOLS)
    check_choice(direction, "direction", DIRECTIONS)
    layers = check_layers(layers)
    sigma_w = check_sigma(sigma_w, "sigma_w")
    sigma_u = check_sigma(sigma_u, "sigma_u")
    sigma_b = check_sigma(sigma_b, "sigma_b", allow_zero=True)
    sigma_v = check_sigma(sigma_v, "sigma_v")
    dtype = check_dtype(dtype)
    x, y = _validated_inputs(X, Y, lengths, y_lengths)
    readouts = compute_readouts(
        x, y, directions=sweeps_for([direction]), sigma_w=sigma_w, sigma_u=[sigma_u], sigma_b=[sigma_b],
        layers=layers, dtype=dtype, memory_budget=memory_budget,
    )
    kernel = readouts[:, READOUTS.index((kind, pool)), layers - 1, 0].sum(axis=0)
    if sigma_v != 1.0:
        kernel *= sigma_v**2
    return kernel


def gram_grid(
    X: Any,
    Y: Any = None,
    *,
    sigma_w: float = 2**0.5,
    sigma_u: float | Sequence[float] = (0.25, 0.5),
    sigma_b: float | Sequence[float] = (0.001, 0.1),
    layers: int = 2,
    sigma_v: float = 1.0,
    lengths: Any = None,
    y_lengths: Any = None,
    dtype: str = "float32",
    memory_budget: int | None = None,
    stats: dict | None = None,
    on_tile: Callable[[int, int], None] | None = None,
    output: str = "host",
    pairs: Sequence[tuple[float, float]] | None = None,
    tiles_as: tuple[int, int] | None = None,
    directions: Sequence[str] = DIRECTIONS,
) -> GramGrid:
    """Every kernel of the grid sigma_u x sigma_b in one fused forward + reversed sweep.

    Keys are (kind, pool, layers, direction, sigma_u, sigma_b) for kind in {ck, ntk},
    pool in {last, avg}, layers in 1..``layers``, direction in {fwd, rev, bi}; each
    value is an (N, M) array. Arguments are as for :func:`gram`; ``stats``, if given,
    receives the tile plan and per-phase seconds; ``on_tile(done, total)`` is called after
    each tile, and an exception it raises stops the computation between tiles.

    ``output="device"`` keeps the grid on the (first) device: tiles are assembled there, the
    symmetric mirror and ``bi = fwd + rev`` are device operations, and the values are JAX
    arrays (``np.asarray(grid[key])`` is one contiguous copy to the host). ``"host"`` (the
    default) returns NumPy arrays.

    ``pairs``: explicit (sigma_u, sigma_b) pairs in place of the product sigma_u x sigma_b
    (which are then ignored), e.g. one chunk of a grid too large to hold at once.

    ``tiles_as``: (N, M) to cut the work into the tiles an (N, M) call would use, e.g.
    ``(N, N)`` for a block of rows of K(X, X), whose values on and above the diagonal are
    then the whole call's, bit for bit (tiles of another size may round differently).

    ``directions``: the directions of the kernels wanted. Only the sweeps they need run:
    the default (every direction) runs both, ``("fwd",)`` half the work.
    """
    check_choice(output, "output", ("host", "device"))
    sweeps = sweeps_for(directions)
    if not sweeps:
        raise ValueError("directions must name at least one of fwd, rev, bi")
    layers = check_layers(layers)
    sigma_w = check_sigma(sigma_w, "sigma_w")
    sigma_v = check_sigma(sigma_v, "sigma_v")
    if pairs is None:
        pairs = list(itertools.product(check_sigmas(sigma_u, "sigma_u"),
                                       check_sigmas(sigma_b, "sigma_b", allow_zero=True)))
    else:
        pairs = list(dict.fromkeys(_check_pair_of_sigmas(pair) for pair in pairs))
        if not pairs:
            raise ValueError("pairs must name at least one (sigma_u, sigma_b) pair")
    dtype = check_dtype(dtype)
    x, y = _validated_inputs(X, Y, lengths, y_lengths)
    readouts = compute_readouts(
        x, y, directions=sweeps, sigma_w=sigma_w,
        sigma_u=[u for u, _ in pairs], sigma_b=[b for _, b in pairs],
        layers=layers, dtype=dtype, memory_budget=memory_budget, stats=stats, on_tile=on_tile,
        output=output, tiles_as=tiles_as,
    )
    if sigma_v != 1.0:
        readouts = readouts * sigma_v**2  # a new array: device arrays cannot be scaled in place
    return GramGrid(readouts, pairs, layers, sigma_v, sweeps)
