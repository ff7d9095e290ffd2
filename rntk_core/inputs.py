"""Validation of user inputs and their preparation as time-major, front-padded sequences."""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real
from typing import Any

import numpy as np

KINDS = ("ck", "ntk")
POOLS = ("last", "avg")
DIRECTIONS = ("fwd", "rev", "bi")
DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class Sequences:
    """A validated batch of sequences.

    values: (N, T, m) float64 with padding zeroed.
    lengths: (N,) int, or None when every sequence has length T.
    """

    values: np.ndarray
    lengths: np.ndarray | None

    @property
    def n(self) -> int:
        return self.values.shape[0]

    @property
    def steps(self) -> int:
        return self.values.shape[1]

    @property
    def features(self) -> int:
        return self.values.shape[2]

    def started(self) -> np.ndarray:
        """(N, T) float mask, 1 once sequence i has started (front padding is 0)."""
        steps = np.arange(self.steps)
        if self.lengths is None:
            return np.ones((self.n, self.steps))
        return (steps[None, :] >= (self.steps - self.lengths)[:, None]).astype(np.float64)

    def reversed(self) -> "Sequences":
        """Each sequence's valid part reversed in time, still front-padded."""
        if self.lengths is None:
            return Sequences(self.values[:, ::-1, :].copy(), None)
        steps = self.steps
        positions = np.arange(steps)[None, :]
        source = 2 * steps - 1 - self.lengths[:, None] - positions
        source = np.clip(source, 0, steps - 1)
        gathered = np.take_along_axis(self.values, source[:, :, None], axis=1)
        return Sequences(gathered * self.started()[:, :, None], self.lengths)


def as_sequences(array: Any, lengths: Any, name: str) -> Sequences:
    """Validate ``array`` of shape (N, T) or (N, T, m) and optional ``lengths`` of shape (N,)."""
    try:
        values = np.asarray(array, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a numeric array: {exc}") from None
    if values.ndim == 2:
        values = values[:, :, None]
    if values.ndim != 3:
        raise ValueError(
            f"{name} must have shape (N, T) or (N, T, m); got an array of rank {values.ndim}"
        )
    if 0 in values.shape:
        raise ValueError(f"{name} is empty: shape {values.shape}")
    if not np.all(np.isfinite(values)):
        bad = np.argwhere(~np.isfinite(values))[0]
        raise ValueError(
            f"{name} contains NaN or inf (first at sample {bad[0]}, step {bad[1]}, feature {bad[2]})"
        )
    if lengths is None:
        return Sequences(values, None)
    lengths_arr = np.asarray(lengths)
    if lengths_arr.shape != (values.shape[0],):
        raise ValueError(
            f"lengths for {name} must have shape ({values.shape[0]},); got {lengths_arr.shape}"
        )
    if not np.issubdtype(lengths_arr.dtype, np.integer):
        if not np.all(np.isfinite(lengths_arr)) or np.any(lengths_arr != np.round(lengths_arr)):
            raise ValueError(f"lengths for {name} must be integers")
    lengths_arr = lengths_arr.astype(np.int64)
    steps = values.shape[1]
    if np.any(lengths_arr < 1) or np.any(lengths_arr > steps):
        bad = int(np.argmax((lengths_arr < 1) | (lengths_arr > steps)))
        raise ValueError(
            f"lengths for {name} must lie in 1..{steps} (T); sample {bad} has length "
            f"{int(lengths_arr[bad])}"
        )
    sequences = Sequences(values, lengths_arr)
    return Sequences(values * sequences.started()[:, :, None], lengths_arr)


def check_pair(x: Sequences, y: Sequences) -> None:
    if x.steps != y.steps:
        raise ValueError(
            f"X and Y must have the same number of steps T; got {x.steps} and {y.steps} "
            "(front-pad the shorter ones and pass lengths / y_lengths)"
        )
    if x.features != y.features:
        raise ValueError(
            f"X and Y must have the same number of features per step m; got {x.features} "
            f"and {y.features}"
        )


def check_choice(value: Any, name: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
    return value


def check_sigma(value: Any, name: str, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number; got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        bound = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{name} must be {bound}; got {value!r}")
    return float(value)


def check_sigmas(values: Any, name: str, *, allow_zero: bool = False) -> tuple[float, ...]:
    """A scalar or a sequence of sigmas, deduplicated in the given order."""
    items = [values] if isinstance(values, Real) else list(np.ravel(np.asarray(values, dtype=object)))
    if not items:
        raise ValueError(f"{name} must name at least one value")
    checked = [check_sigma(v, name, allow_zero=allow_zero) for v in items]
    return tuple(dict.fromkeys(checked))


def check_layers(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"layers must be a positive integer; got {value!r}")
    return int(value)


def check_dtype(value: Any) -> str:
    try:
        name = value if isinstance(value, str) else np.dtype(value).name
    except TypeError:
        name = None
    if name not in DTYPES:
        raise ValueError(f"dtype must be 'float32' or 'float64'; got {value!r}")
    return name
