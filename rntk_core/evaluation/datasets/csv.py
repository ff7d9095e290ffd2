"""CSV files with a header row; the label column by name, else `label`, else the last."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np

if TYPE_CHECKING:
    from _csv import _reader as CsvReader

from .common import (
    Dataset,
    DatasetError,
    DatasetLimits,
    check_size,
    finish,
    first_nonfinite,
    row_limit,
    parse_floats,
    read_text,
    rows_to_sequences,
    step_layout,
)



def load_csv(
    path: Path,
    label_column: str | None,
    steps: int | None,
    features_per_step: int,
    limits: DatasetLimits,
) -> Dataset:
    """Load a CSV with a header row; every column but the label column is a feature."""
    lines = read_text(path, limits)
    delimiter = _sniff_delimiter(lines[0])
    reader = csv.reader(_numbered(lines), delimiter=delimiter, skipinitialspace=True)
    try:
        header = [cell.strip() for cell in next(reader)]
    except csv.Error as exc:
        raise DatasetError(f"{path.name}: line 1: malformed CSV ({exc})") from exc
    if not any(header):
        raise DatasetError(f"{path.name}: line 1: empty header row")
    label_index = _label_index(header, label_column, path.name)
    feature_index = [j for j in range(len(header)) if j != label_index]
    if not feature_index:
        raise DatasetError(f"{path.name}: no feature columns besides the label column {header[label_index]!r}")
    names = [repr(h) if h else f"{j + 1}" for j, h in enumerate(header)]
    feature_names = [names[j] for j in feature_index]
    t, m = step_layout(len(feature_index), steps, features_per_step, path.name)
    check_size(1, t, m, path.name, limits)

    rows: list[list[float]] = []
    labels: list[str] = []
    line_numbers: list[int] = []
    most_rows = row_limit(len(feature_index), limits)
    for line_no, cells in _csv_rows(reader, path.name):
        if not any(cell.strip() for cell in cells):
            continue  # blank line
        if len(cells) != len(header):
            raise DatasetError(
                f"{path.name}: line {line_no}: expected {len(header)} columns like the header, found {len(cells)}"
            )
        if len(rows) >= most_rows:
            raise DatasetError(f"{path.name}: line {line_no}: more than {most_rows} samples (limit)")
        label = cells[label_index].strip()
        if not label:
            raise DatasetError(f"{path.name}: line {line_no}, column {names[label_index]}: empty label")
        rows.append(parse_floats([cells[j] for j in feature_index], line_no, path.name, feature_names))
        labels.append(label)
        line_numbers.append(line_no)
    if not rows:
        raise DatasetError(f"{path.name}: no data rows after the header")
    features = np.asarray(rows, dtype=np.float64)
    bad = first_nonfinite(features)
    if bad is not None:
        row, col = bad
        raise DatasetError(
            f"{path.name}: line {line_numbers[row]}, column {feature_names[col]}: "
            f"value {features[row, col]} is not finite"
        )
    label_values = _label_values(labels, line_numbers, path.name, names[label_index])
    X = rows_to_sequences(features, steps, features_per_step, path.name, limits)
    return finish(X, label_values, path.stem, "csv")


def _csv_rows(reader: "CsvReader", where: str) -> Iterator[tuple[int, list[str]]]:
    """Yield (1-based line number, cells), turning csv.Error into DatasetError."""
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise DatasetError(f"{where}: line {reader.line_num}: malformed CSV ({exc})") from exc
        yield reader.line_num, cells


def _numbered(lines: list[str]) -> Iterator[str]:
    # csv.reader counts the lines it pulls, so reader.line_num is the 1-based file line.
    for line in lines:
        yield line + "\n"


def _sniff_delimiter(header: str) -> str:
    """Comma unless the header has none but has semicolons or tabs."""
    if "," in header:
        return ","
    for candidate in (";", "\t"):
        if candidate in header:
            return candidate
    return ","


def _label_index(header: list[str], label_column: str | None, where: str) -> int:
    wanted = label_column.strip() if label_column is not None else "label"
    matches = [j for j, name in enumerate(header) if name == wanted]
    if len(matches) > 1:
        raise DatasetError(f"{where}: line 1: the label column {wanted!r} appears {len(matches)} times")
    if matches:
        return matches[0]
    if label_column is not None:
        shown = ", ".join(repr(h) for h in header[:20]) + (", ..." if len(header) > 20 else "")
        raise DatasetError(f"{where}: no column named {label_column!r} in the header ({shown})")
    return len(header) - 1


def _label_values(labels: list[str], line_numbers: list[int], where: str, column: str) -> np.ndarray:
    """Numeric labels when every label is a number (ints when all integral), else strings."""
    try:
        numeric = np.asarray([float(label) for label in labels], dtype=np.float64)
    except ValueError:
        return np.asarray(labels, dtype=str)
    bad = np.flatnonzero(~np.isfinite(numeric))
    if bad.size:
        raise DatasetError(
            f"{where}: line {line_numbers[bad[0]]}, column {column}: label {labels[bad[0]]!r} is not finite"
        )
    if np.all(numeric == np.round(numeric)) and np.abs(numeric).max() < 2**53:
        return numeric.astype(np.int64)
    return numeric


