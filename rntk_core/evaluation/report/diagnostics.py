"""What a researcher checks beside the accuracies: chosen values at the edge of their grid,
per-class accuracy and confusion matrices, and the spread over the folds that chose and tested.

Everything here reads the report's own records (its ``configurations`` dicts) or the fits the
pipeline cached; nothing is fitted.

- :func:`grid_edges`: every chosen hyperparameter value that is the smallest or largest value
  of its family's grid (a grid of at least 2 numbers), with the grid's next one or two values
  on its own spacing (:func:`extend_grid`) as the suggested extension.
- :func:`confusion`: the chosen configurations' vote on the test data, summed over the test
  folds, as a confusion matrix and per-class accuracy (recall).
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = ["confusion", "extend_grid", "grid_edges", "per_class_accuracy", "spread"]

#: The allowed range of each numeric hyperparameter (as the config's types bound them): a
#: suggested extension outside it is dropped, and a chosen value at a grid edge that cannot
#: be extended (layers = 1 is the grid's minimum and the smallest depth there is) is not flagged.
BOUNDS: dict[str, tuple[float, float, bool]] = {  # (low, high, low is exclusive)
    "C": (0.0, 1e12, True),
    "sigma_w": (0.0, 100.0, True),
    "sigma_u": (0.0, 100.0, True),
    "sigma_b": (0.0, 100.0, False),
    "layers": (1, 64, False),
    "depth": (1, 64, False),
    "fixed_layers": (0, 63, False),
    "gamma": (0.0, 1e6, True),
    "scale": (0.0, 1e6, True),
    "offset": (0.0, 1e6, False),
    "degree": (1, 20, False),
    "n_estimators": (1, 10_000, False),
    "window": (0.0, 1.0, False),
}
#: Read from ``params`` but never flagged: the kernel's identity, not a tuned value.
NOT_TUNED = ("sigma_v",)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _is_integral(values: Sequence[Any]) -> bool:
    return all(isinstance(v, int) and not isinstance(v, bool) for v in values)


def _clean(value: float, integral: bool) -> float | int:
    return int(round(value)) if integral else float(f"{value:.12g}")


def spacing(values: Sequence[float], integral: bool = False) -> str:
    """``"log"`` or ``"linear"``: how a sorted grid of distinct numbers is spaced.

    Equal differences make it linear; otherwise it is logarithmic when every value is positive
    (equal ratios, or an irregular grid of scales). Two values fit both: integers (layers,
    degree) are then linear, other positive numbers (C, gamma, the sigmas) logarithmic.
    """
    differences = np.diff(values)
    positive = all(v > 0 for v in values)
    if len(values) == 2:
        return "linear" if integral or not positive else "log"
    if np.allclose(differences, differences[0], rtol=1e-6, atol=0):
        return "linear"
    return "log" if positive else "linear"


def extend_grid(values: Sequence[Any], edge: str, count: int = 2, param: str | None = None) -> list[float | int]:
    """The next ``count`` values past ``edge`` (``"min"`` or ``"max"``) of a grid, on the step
    of the grid's outermost gap (a ratio on a log grid, a difference on a linear one), within
    ``BOUNDS[param]``.

    >>> extend_grid([0.01, 1, 100], "max")
    [10000.0, 1000000.0]
    >>> extend_grid([1, 2], "max", param="layers")
    [3, 4]
    >>> extend_grid([1, 2], "min", param="layers")
    []
    """
    integral = _is_integral(values)
    grid = sorted({float(v) for v in values})
    if len(grid) < 2:
        return []
    how = spacing(grid, integral)
    if edge == "max":
        inner, outer, sign = grid[-2], grid[-1], 1
    else:
        inner, outer, sign = grid[1], grid[0], -1
    suggested: list[float | int] = []
    value = outer
    for _ in range(count):
        value = value * (outer / inner) if how == "log" else value + (outer - inner)
        suggested.append(_clean(value, integral))
    low, high, exclusive = BOUNDS.get(param or "", (-math.inf, math.inf, False))
    return [v for v in suggested if (v > low if exclusive else v >= low) and v <= high and sign * (v - outer) > 0]


def grid_edges(entries: Sequence[Mapping[str, Any]], chosen: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The chosen values at an edge of a family's grid, with the extension to try.

    Args:
        entries: the family's ``configurations`` (``params``, optional ``C``).
        chosen: the family's chosen configurations (``params``, optional ``C``).

    Returns:
        ``[{param, value, edge: "min" | "max", grid, suggest}]``, one per distinct (param,
        value), in the order the parameters first appear (C last). ``suggest`` holds the
        grid's next one or two values on its own spacing; a value at an edge that the
        parameter's range does not let the grid pass (layers = 1) is not listed.
    """
    grids: dict[str, list[Any]] = {}
    for entry in entries:
        values = dict(entry.get("params") or {})
        if entry.get("C") is not None:
            values["C"] = entry["C"]
        for name, value in values.items():
            if name not in NOT_TUNED and _number(value) is not None:
                grid = grids.setdefault(name, [])
                if value not in grid:
                    grid.append(value)
    if "C" in grids:
        grids["C"] = grids.pop("C")  # C last, as the enumeration has it
    flagged: list[dict[str, Any]] = []
    seen: set[tuple[str, float]] = set()
    for name, grid in grids.items():
        numbers = sorted({float(v) for v in grid})
        if len(numbers) < 2:
            continue
        for configuration in chosen:
            value = configuration.get("C") if name == "C" else (configuration.get("params") or {}).get(name)
            number = _number(value)
            if number is None or (name, number) in seen:
                continue
            edge = "max" if number == numbers[-1] else "min" if number == numbers[0] else None
            if edge is None:
                continue
            seen.add((name, number))
            suggest = extend_grid(grid, edge, param=name)
            if suggest:
                ordered = sorted(grid, key=float)
                flagged.append({"param": name, "value": value, "edge": edge, "grid": ordered, "suggest": suggest})
    return flagged


def confusion(truth: Sequence[np.ndarray], predicted: Sequence[np.ndarray], n_classes: int) -> np.ndarray:
    """(n_classes, n_classes) counts summed over folds: row = true class, column = predicted."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    for true, guess in zip(truth, predicted):
        np.add.at(matrix, (np.asarray(true, np.int64), np.asarray(guess, np.int64)), 1)
    return matrix


def per_class_accuracy(matrix: np.ndarray, classes: Sequence[str]) -> dict[str, float | None]:
    """Each class's accuracy (recall): its test points predicted right (None without any)."""
    matrix = np.asarray(matrix)
    totals = matrix.sum(axis=1)
    return {str(name): (float(matrix[i, i] / totals[i]) if totals[i] else None)
            for i, name in enumerate(classes)}


def spread(values: Sequence[float] | None) -> float | None:
    """Population standard deviation of at least two values, else None."""
    if values is None or len(values) < 2:
        return None
    return float(np.std(values))
