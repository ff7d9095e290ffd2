"""The sktime/aeon ``.ts`` time-series classification format (the UCR/UEA archives).

A file is comment lines (``#`` or ``%``), ``@`` header lines, ``@data``, then one case per
line: each dimension's values comma-separated, dimensions separated by ``:``, and the class
label last::

    @problemName GunPoint
    @univariate true
    @equalLength true
    @classLabel true 1 2
    @data
    -0.64,-0.64,...,-0.63:2

Treatment, all explicit:

- Unequal lengths are kept: values are **front-padded** with zeros and the true lengths are
  returned, which is what the engine's ``lengths`` path expects (sequences compared aligned
  at their ends, padding masked out, never read as data). Within one case every dimension
  must have the same length.
- Missing values (``?``, ``NaN``) are refused with the line, dimension and position: imputing
  them would silently change the data a kernel sees.
- Class labels are kept as the strings written in the file (``Standing``, ``1``). When the
  header declares them (``@classLabel true A B``), every case's label must be one of them.
- ``@timeStamps true`` and regression files (``@targetLabel``) are refused: only
  classification with implicit, evenly spaced time steps is supported.

Every defect raises :class:`TsFormatError` (a :class:`DatasetError`) naming the file, the
1-based line and the problem.

The forms a dataset comes in (:func:`load_ts_file`, :func:`load_ts_folder`, :func:`load_ts_zip`):

- a folder or a zip holding ``NAME_TRAIN.ts`` and ``NAME_TEST.ts``: the archive's predefined
  split. Hyperparameters are chosen by stratified k-fold cross-validation inside TRAIN
  (``Splits.selection = "cv"``), then the chosen models are refit on all of TRAIN and scored
  on TEST (the one test fold);
- a single ``.ts`` file: no split, so the stratified protocol that CSV files get.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from .archive import extracted
from .common import (
    BLOCK_VALUES,
    MACOS_JUNK,
    MAX_LABEL_CHARS,
    Dataset,
    DatasetError,
    DatasetLimits,
    Splits,
    check_size,
    finish_encoded,
    text_lines,
)

_MISSING = frozenset({"?", "nan", "NaN", "NAN"})
_BOOLEAN_HEADERS = ("timestamps", "missing", "univariate", "equallength")


class TsFormatError(DatasetError):
    """A ``.ts`` file is malformed or uses a feature this loader does not support."""


@dataclass(frozen=True)
class TsHeader:
    """What the ``@`` lines declared (None where a header was absent)."""

    problem_name: str | None
    univariate: bool | None
    dimensions: int | None
    equal_length: bool | None
    series_length: int | None
    class_labels: tuple[str, ...] | None


@dataclass(frozen=True)
class TsData:
    """One parsed ``.ts`` file.

    values: (N, T, m) float64, each case front-padded with zeros to T = max length.
    lengths: (N,) int64 true lengths (all equal to T for equal-length problems).
    codes: (N,) int64, case i's class label is ``header.class_labels[codes[i]]``.
    """

    values: np.ndarray
    lengths: np.ndarray
    codes: np.ndarray
    header: TsHeader

    @property
    def labels(self) -> np.ndarray:
        """(N,) str class labels as written."""
        return np.asarray(self.header.class_labels or (), dtype=str)[self.codes]

    @property
    def equal_length(self) -> bool:
        return bool(np.all(self.lengths == self.values.shape[1]))


def _fail(where: str, line_no: int, problem: str) -> TsFormatError:
    return TsFormatError(f"{where}, line {line_no}: {problem}")


def _boolean(value: str, where: str, line_no: int, key: str) -> bool:
    lowered = value.lower()
    if lowered not in ("true", "false"):
        raise _fail(where, line_no, f"@{key} must be true or false; got {value!r}")
    return lowered == "true"


def _positive_int(value: str, where: str, line_no: int, key: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise _fail(where, line_no, f"@{key} must be a positive integer; got {value!r}")
    return number


def _parse_header(numbered: Iterator[tuple[int, str]], where: str) -> TsHeader:
    """The header, read from ``(line number, line)`` pairs up to and including ``@data``."""
    fields: dict[str, object] = {}
    for line_no, raw in numbered:
        line = raw.strip()
        if not line or line[0] in "#%":
            continue
        if not line.startswith("@"):
            raise _fail(where, line_no, "data before the @data line (expected a @header or a comment)")
        key, _, rest = line[1:].partition(" ")
        key = key.lower()
        rest = rest.strip()
        if key == "data":
            if rest:
                raise _fail(where, line_no, "unexpected text after @data")
            return _header_from(fields, where, line_no)
        if key == "problemname":
            fields["problem_name"] = rest
        elif key in _BOOLEAN_HEADERS:
            fields[key] = _boolean(rest, where, line_no, key)
        elif key in ("dimensions", "serieslength"):
            fields[key] = _positive_int(rest, where, line_no, key)
        elif key == "classlabel":
            tokens = rest.split()
            if not tokens or not _boolean(tokens[0], where, line_no, "classLabel"):
                raise _fail(
                    where, line_no,
                    "@classLabel must be true followed by the class names: only classification "
                    "files are supported",
                )
            if len(tokens) < 2:
                raise _fail(where, line_no, "@classLabel true must list the class names")
            if len(set(tokens[1:])) != len(tokens) - 1:
                raise _fail(where, line_no, "@classLabel lists a class name twice")
            if max(map(len, tokens[1:])) > MAX_LABEL_CHARS:
                raise _fail(where, line_no, f"@classLabel names a class of over {MAX_LABEL_CHARS} characters")
            fields["class_labels"] = tuple(tokens[1:])
        elif key == "targetlabel":
            if rest.lower().startswith("true"):
                raise _fail(where, line_no, "regression files (@targetLabel true) are not supported")
        # Other headers (@dimension names, tags of newer writers) carry nothing the loader needs.
    raise TsFormatError(f"{where}: no @data line")


def _header_from(fields: dict[str, object], where: str, line_no: int) -> TsHeader:
    if fields.get("timestamps"):
        raise _fail(where, line_no, "@timeStamps true is not supported (evenly spaced steps only)")
    if "class_labels" not in fields:
        raise _fail(where, line_no, "no @classLabel header before @data (classification files need one)")
    dimensions = fields.get("dimensions")
    if fields.get("univariate") and dimensions not in (None, 1):
        raise _fail(where, line_no, f"@univariate true but @dimensions {dimensions}")
    return TsHeader(
        problem_name=fields.get("problem_name"),  # type: ignore[arg-type]
        univariate=fields.get("univariate"),  # type: ignore[arg-type]
        dimensions=dimensions,  # type: ignore[arg-type]
        equal_length=fields.get("equallength"),  # type: ignore[arg-type]
        series_length=fields.get("serieslength"),  # type: ignore[arg-type]
        class_labels=fields["class_labels"],  # type: ignore[arg-type]
    )


def _parse_dimension(text: str, where: str, line_no: int, dimension: int) -> list[float]:
    try:
        values = [float(token) for token in text.split(",")]
        if all(map(math.isfinite, values)):
            return values
    except ValueError:
        pass
    return _explain_dimension(text, where, line_no, dimension)


def _explain_dimension(text: str, where: str, line_no: int, dimension: int) -> list[float]:
    """The slow parse of a dimension that names its first bad value."""
    tokens = text.split(",")
    values = []
    for position, token in enumerate(tokens, start=1):
        token = token.strip()
        if token in _MISSING:
            raise _fail(
                where, line_no,
                f"missing value {token!r} in dimension {dimension}, position {position}: "
                "missing values are not supported (impute them, or use the archive's "
                "no-missing-values version of the problem)",
            )
        if token.startswith("("):
            raise _fail(where, line_no, "time-stamped values '(t,v)' are not supported")
        try:
            value = float(token)
        except ValueError:
            raise _fail(
                where, line_no,
                f"dimension {dimension}, position {position}: {token!r} is not a number",
            ) from None
        if not math.isfinite(value):
            raise _fail(where, line_no, f"dimension {dimension}, position {position}: {token!r} is not finite")
        values.append(value)
    return values


class _Values:
    """Every case's values, flat (case by case, dimension by dimension), in float64 blocks of
    about :data:`.common.BLOCK_VALUES`: never a Python float per value for the whole file."""

    def __init__(self) -> None:
        self.pending: list[float] = []
        self.blocks: list[np.ndarray] = []

    def extend(self, values: list[float]) -> None:
        self.pending.extend(values)
        if len(self.pending) >= BLOCK_VALUES:
            self.blocks.append(np.asarray(self.pending, dtype=np.float64))
            self.pending = []

    def joined(self) -> np.ndarray:
        self.blocks.append(np.asarray(self.pending, dtype=np.float64))
        flat = np.concatenate(self.blocks)
        self.blocks, self.pending = [], []
        return flat


def parse_ts(
    lines: Iterable[str], where: str, *, max_cases: int | None = None, max_values: int | None = None,
    check_shape: Callable[[int, int, int], None] | None = None,
) -> TsData:
    """Parse the lines of a ``.ts`` file; ``where`` names it in error messages.

    The lines are read one at a time and the values kept in float64 blocks, so the parse holds
    about twice the values (their blocks, then the padded array) and one line of text.
    ``max_cases`` / ``max_values`` stop the parse as soon as the file holds more cases or
    values than allowed, before they are all held in memory. ``check_shape(N, T, m)`` runs
    for each case (as ``(1, length, m)``) before its values are parsed, and before the padded
    (N, T, m) array is allocated: one long case among short ones would otherwise pad every
    case to its length (10^5 cases, one of 10^6 values: 745 GiB).
    """
    numbered = enumerate(lines, start=1)
    header = _parse_header(numbered, where)
    code_of = {name: code for code, name in enumerate(header.class_labels or ())}
    values = _Values()
    lengths: list[int] = []
    codes: list[int] = []
    n_values = 0
    first_length: int | None = None
    dimensions = header.dimensions or (1 if header.univariate else None)
    for line_no, raw in numbered:
        line = raw.strip()
        if not line or line[0] in "#%":
            continue
        *series, label = line.split(":")
        label = label.strip()
        if not series:
            raise _fail(where, line_no, "expected values then ':' then the class label")
        if not label:
            raise _fail(where, line_no, "empty class label after the last ':'")
        code = code_of.get(label)
        if code is None:
            raise _fail(
                where, line_no,
                f"class label {label[:100]!r} is not among those declared by @classLabel "
                f"({' '.join(header.class_labels or ())})",
            )
        if dimensions is None:
            dimensions = len(series)
        if len(series) != dimensions:
            raise _fail(where, line_no, f"{len(series)} dimensions, expected {dimensions}")
        if max_cases is not None and len(lengths) >= max_cases:
            raise _fail(where, line_no, f"more than {max_cases} cases, over the limit")
        declared_length = series[0].count(",") + 1  # checked before any value is parsed
        if max_values is not None and n_values + dimensions * declared_length > max_values:
            raise _fail(where, line_no, f"more than {max_values} values, over the limit")
        if check_shape is not None:
            check_shape(1, declared_length, dimensions)
        case = [_parse_dimension(text, where, line_no, d + 1) for d, text in enumerate(series)]
        length = len(case[0])
        if any(len(values) != length for values in case):
            raise _fail(
                where, line_no,
                "dimensions of one case differ in length "
                f"({', '.join(str(len(values)) for values in case)})",
            )
        if header.equal_length and header.series_length and length != header.series_length:
            raise _fail(where, line_no, f"length {length}, but @seriesLength is {header.series_length}")
        if header.equal_length and first_length is not None and length != first_length:
            raise _fail(
                where, line_no,
                f"length {length} differs from the first case's {first_length} "
                "although @equalLength is true",
            )
        first_length = length if first_length is None else first_length
        n_values += dimensions * length
        for dimension in case:
            values.extend(dimension)
        lengths.append(length)
        codes.append(code)
    if not lengths:
        raise TsFormatError(f"{where}: no cases after @data")
    case_lengths = np.asarray(lengths, dtype=np.int64)
    del lengths
    steps, features = int(case_lengths.max()), dimensions or 1
    if check_shape is not None:
        check_shape(len(case_lengths), steps, features)
    flat = values.joined()
    padded = np.zeros((len(case_lengths), steps, features), dtype=np.float64)
    offset = 0
    for i, length in enumerate(case_lengths.tolist()):
        # Front padding: the engine aligns sequences at their ends.
        padded[i, steps - length:, :] = flat[offset:offset + features * length].reshape(features, length).T
        offset += features * length
    return TsData(values=padded, lengths=case_lengths, codes=np.asarray(codes, dtype=np.int64), header=header)


def _parsed(path: Path, limits: DatasetLimits) -> TsData:
    data = parse_ts(text_lines(path, limits), path.name,
                    max_cases=limits.max_samples, max_values=limits.max_values,
                    check_shape=lambda n, t, m: check_size(n, t, m, path.name, limits))
    n, steps, features = data.values.shape
    check_size(n, steps, features, path.name, limits)
    return data


def _classes(parts: list[TsData]) -> tuple[np.ndarray, list[np.ndarray]]:
    """The class labels that occur in ``parts``, sorted, and each part's codes into them."""
    used = sorted({part.header.class_labels[code]  # type: ignore[index]
                   for part in parts for code in np.unique(part.codes).tolist()})
    index = {name: k for k, name in enumerate(used)}
    codes = [np.asarray([index.get(name, -1) for name in part.header.class_labels or ()],
                        dtype=np.int64)[part.codes] for part in parts]
    return np.asarray(used, dtype=str), codes


def _lengths_or_none(lengths: np.ndarray, steps: int) -> np.ndarray | None:
    return None if np.all(lengths == steps) else lengths


def load_ts_file(path: Path, limits: DatasetLimits) -> Dataset:
    """One ``.ts`` file, without a predefined split (the stratified protocol)."""
    data = _parsed(path, limits)
    name = data.header.problem_name or path.stem
    classes, (y,) = _classes([data])
    return finish_encoded(
        data.values, classes, y, name, "ts",
        lengths=_lengths_or_none(data.lengths, data.values.shape[1]),
    )


def _split_pair(folder: Path, where: str) -> tuple[Path, Path]:
    trains = sorted(p for p in folder.iterdir() if p.is_file() and p.name.upper().endswith("_TRAIN.TS"))
    if len(trains) != 1:
        found = ", ".join(p.name for p in trains) or "none"
        raise DatasetError(f"{where}: expected exactly one NAME_TRAIN.ts beside its NAME_TEST.ts; found {found}")
    train = trains[0]
    stem = train.name[: -len("_TRAIN.ts")]
    tests = [p for p in folder.iterdir() if p.is_file() and p.name.upper() == f"{stem}_TEST.TS".upper()]
    if not tests:
        raise DatasetError(f"{where}: {train.name} has no {stem}_TEST.ts beside it")
    return train, tests[0]


def load_ts_folder(folder: Path, limits: DatasetLimits, where: str | None = None) -> Dataset:
    """``NAME_TRAIN.ts`` + ``NAME_TEST.ts``: the archive's predefined split.

    TRAIN comes first (rows 0..n_train-1), then TEST; both are front-padded to the longer
    of their lengths.
    """
    where = where or folder.name
    train_path, test_path = _split_pair(folder, where)
    train = _parsed(train_path, limits)
    test = _parsed(test_path, limits)
    if train.values.shape[2] != test.values.shape[2]:
        raise DatasetError(
            f"{where}: {train_path.name} has {train.values.shape[2]} dimensions, "
            f"{test_path.name} has {test.values.shape[2]}"
        )
    steps = max(train.values.shape[1], test.values.shape[1])
    n = train.values.shape[0] + test.values.shape[0]
    check_size(n, steps, train.values.shape[2], where, limits)  # before padding to the longer
    values = np.zeros((n, steps, train.values.shape[2]), dtype=np.float64)
    n_train = train.values.shape[0]
    values[:n_train, steps - train.values.shape[1]:] = train.values  # front padding, as in parse_ts
    values[n_train:, steps - test.values.shape[1]:] = test.values
    lengths = np.concatenate([train.lengths, test.lengths])
    classes, codes = _classes([train, test])
    train_rows, test_rows = np.arange(n_train), np.arange(n_train, n)
    splits = Splits(train=train_rows, validation=test_rows, folds=[(train_rows, test_rows)], selection="cv")
    name = train.header.problem_name or train_path.name[: -len("_TRAIN.ts")]
    sources = {"train": train_path.name, "validation": test_path.name,
               "fold0_train": train_path.name, "fold0_test": test_path.name}
    return finish_encoded(values, classes, np.concatenate(codes), name, "ts",
                          lengths=_lengths_or_none(lengths, steps), splits=splits, split_sources=sources)


def has_ts_split(names: Iterable[str]) -> bool:
    """Whether member names include a ``NAME_TRAIN.ts`` (a zip or folder in the .ts form)."""
    return any(
        name.upper().endswith("_TRAIN.TS") and MACOS_JUNK not in name for name in names
    )


def load_ts_zip(path: Path, limits: DatasetLimits) -> Dataset:
    """A zip of ``NAME_TRAIN.ts`` + ``NAME_TEST.ts``, at its root or one directory down."""
    with extracted(path, limits) as root:
        folder = root
        if not has_ts_split(p.name for p in root.iterdir()):
            dirs = [p for p in root.iterdir() if p.is_dir() and p.name != MACOS_JUNK]
            if len(dirs) == 1:
                folder = dirs[0]
        return load_ts_folder(folder, limits, where=path.name)
