"""CSV files with a header row; the label column by name, else `label`, else the last.

Read as a stream (:func:`.common.text_lines`): rows are parsed in blocks of about
:data:`.common.BLOCK_VALUES` values, each kept as a float64 array, and every label is kept
once, as the code of its class, so the parse holds about twice X (its blocks, then X) and
an (N,) int64 array of codes, plus one block.
"""

from __future__ import annotations

import csv
import itertools
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator

import numpy as np

if TYPE_CHECKING:
    from _csv import _reader as CsvReader

from .common import (
    BLOCK_ROWS,
    BLOCK_VALUES,
    MAX_LABEL_CHARS,
    Dataset,
    DatasetError,
    DatasetLimits,
    check_size,
    finish_encoded,
    first_nonfinite,
    row_limit,
    parse_floats,
    rows_to_sequences,
    step_layout,
    text_lines,
)


def load_csv(
    path: Path,
    label_column: str | None,
    steps: int | None,
    features_per_step: int,
    limits: DatasetLimits,
) -> Dataset:
    """Load a CSV with a header row; every column but the label column is a feature."""
    lines = text_lines(path, limits)
    first = next(lines)
    delimiter = _sniff_delimiter(first)
    reader = csv.reader(_numbered(itertools.chain([first], lines)), delimiter=delimiter, skipinitialspace=True)
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

    blocks = _Blocks(path.name, feature_names)
    codes: dict[str, int] = {}  # label -> its code, in order of first appearance
    first_lines: list[int] = []  # the line each label first appears on
    most_rows = row_limit(len(feature_index), limits)
    block_rows = max(1, min(BLOCK_ROWS, BLOCK_VALUES // len(feature_index)))
    n_rows = 0
    for line_no, cells in _csv_rows(reader, path.name):
        if not any(cell.strip() for cell in cells):
            continue  # blank line
        if len(cells) != len(header):
            raise DatasetError(
                f"{path.name}: line {line_no}: expected {len(header)} columns like the header, found {len(cells)}"
            )
        if n_rows >= most_rows:
            raise DatasetError(f"{path.name}: line {line_no}: more than {most_rows} samples (limit)")
        label = cells[label_index].strip()
        if not label:
            raise DatasetError(f"{path.name}: line {line_no}, column {names[label_index]}: empty label")
        code = codes.get(label)
        if code is None:
            if len(label) > MAX_LABEL_CHARS:
                raise DatasetError(f"{path.name}: line {line_no}, column {names[label_index]}: a label of "
                                   f"{len(label)} characters, over the limit of {MAX_LABEL_CHARS}")
            if len(codes) >= limits.max_classes:
                raise DatasetError(f"{path.name}: line {line_no}: more than {limits.max_classes} classes (limit)")
            code = codes[label] = len(codes)
            first_lines.append(line_no)
        blocks.add(parse_floats([cells[j] for j in feature_index], line_no, path.name, feature_names), code, line_no)
        n_rows += 1
        if len(blocks.rows) == block_rows:
            blocks.flush()
    if not n_rows:
        raise DatasetError(f"{path.name}: no data rows after the header")
    features, y = blocks.joined()
    label_values = _label_values(list(codes), first_lines, path.name, names[label_index])
    classes, inverse = np.unique(label_values, return_inverse=True)
    X = rows_to_sequences(features, steps, features_per_step, path.name, limits)
    return finish_encoded(X, classes, inverse.reshape(-1)[y].astype(np.int64, copy=False), path.stem, "csv")


class _Blocks:
    """Rows parsed so far: whole blocks as arrays, the current one as lists."""

    def __init__(self, where: str, feature_names: list[str]) -> None:
        self.where, self.feature_names = where, feature_names
        self.rows: list[list[float]] = []
        self.codes: list[int] = []
        self.line_numbers: list[int] = []
        self.features: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []

    def add(self, row: list[float], code: int, line_no: int) -> None:
        self.rows.append(row)
        self.codes.append(code)
        self.line_numbers.append(line_no)

    def flush(self) -> None:
        if not self.rows:
            return
        block = np.asarray(self.rows, dtype=np.float64)
        bad = first_nonfinite(block)
        if bad is not None:
            row, col = bad
            raise DatasetError(
                f"{self.where}: line {self.line_numbers[row]}, column {self.feature_names[col]}: "
                f"value {block[row, col]} is not finite"
            )
        self.features.append(block)
        self.labels.append(np.asarray(self.codes, dtype=np.int64))
        self.rows, self.codes, self.line_numbers = [], [], []

    def joined(self) -> tuple[np.ndarray, np.ndarray]:
        """(N, d) float64 features and (N,) label codes; the blocks are let go."""
        self.flush()
        features = self.features[0] if len(self.features) == 1 else np.concatenate(self.features)
        codes = np.concatenate(self.labels)
        self.features, self.labels = [], []
        return features, codes


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


def _numbered(lines: Iterable[str]) -> Iterator[str]:
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
    """Numeric labels when every label is a number (ints when all integral), else strings;
    ``line_numbers[k]``: where ``labels[k]`` appears first."""
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
