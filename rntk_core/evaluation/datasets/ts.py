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
from typing import Callable, Iterable

import numpy as np

from .archive import extracted
from .common import MACOS_JUNK, Dataset, DatasetError, DatasetLimits, Splits, check_size, finish, read_text

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
    labels: (N,) str class labels as written.
    """

    values: np.ndarray
    lengths: np.ndarray
    labels: np.ndarray
    header: TsHeader

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


def _parse_header(
    lines: list[str], where: str
) -> tuple[TsHeader, int]:
    """The header and the index of the first line after ``@data``."""
    fields: dict[str, object] = {}
    for index, raw in enumerate(lines):
        line_no = index + 1
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
            return _header_from(fields, where, line_no), index + 1
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


def parse_ts(
    lines: Iterable[str], where: str, *, max_cases: int | None = None, max_values: int | None = None,
    check_shape: Callable[[int, int, int], None] | None = None,
) -> TsData:
    """Parse the lines of a ``.ts`` file; ``where`` names it in error messages.

    ``max_cases`` / ``max_values`` stop the parse as soon as the file holds more cases or
    values than allowed, before they are all held in memory. ``check_shape(N, T, m)`` runs
    before the padded (N, T, m) array is allocated: one long case among short ones would
    otherwise pad every case to its length (10^5 cases, one of 10^6 values: 745 GiB).
    """
    lines = list(lines)
    n_values = 0
    header, start = _parse_header(lines, where)
    declared = set(header.class_labels or ())
    cases: list[list[list[float]]] = []
    labels: list[str] = []
    line_numbers: list[int] = []
    dimensions = header.dimensions or (1 if header.univariate else None)
    for index in range(start, len(lines)):
        line_no = index + 1
        line = lines[index].strip()
        if not line or line[0] in "#%":
            continue
        *series, label = line.split(":")
        label = label.strip()
        if not series:
            raise _fail(where, line_no, "expected values then ':' then the class label")
        if not label:
            raise _fail(where, line_no, "empty class label after the last ':'")
        if label not in declared:
            raise _fail(
                where, line_no,
                f"class label {label!r} is not among those declared by @classLabel "
                f"({' '.join(header.class_labels or ())})",
            )
        if dimensions is None:
            dimensions = len(series)
        if len(series) != dimensions:
            raise _fail(where, line_no, f"{len(series)} dimensions, expected {dimensions}")
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
        if header.equal_length and cases and length != len(cases[0][0]):
            raise _fail(
                where, line_no,
                f"length {length} differs from the first case's {len(cases[0][0])} "
                "although @equalLength is true",
            )
        n_values += dimensions * length
        if max_cases is not None and len(cases) >= max_cases:
            raise _fail(where, line_no, f"more than {max_cases} cases, over the limit")
        if max_values is not None and n_values > max_values:
            raise _fail(where, line_no, f"more than {max_values} values, over the limit")
        cases.append(case)
        labels.append(label)
        line_numbers.append(line_no)
    if not cases:
        raise TsFormatError(f"{where}: no cases after @data")
    lengths = np.array([len(case[0]) for case in cases], dtype=np.int64)
    steps = int(lengths.max())
    if check_shape is not None:
        check_shape(len(cases), steps, dimensions or 1)
    values = np.zeros((len(cases), steps, dimensions or 1), dtype=np.float64)
    for i, case in enumerate(cases):
        # Front padding: the engine aligns sequences at their ends.
        values[i, steps - lengths[i]:, :] = np.asarray(case, dtype=np.float64).T
    return TsData(values=values, lengths=lengths, labels=np.array(labels, dtype=str), header=header)


def _parsed(path: Path, limits: DatasetLimits) -> TsData:
    data = parse_ts(read_text(path, limits), path.name,
                    max_cases=limits.max_samples, max_values=limits.max_values,
                    check_shape=lambda n, t, m: check_size(n, t, m, path.name, limits))
    n, steps, features = data.values.shape
    check_size(n, steps, features, path.name, limits)
    return data


def _lengths_or_none(lengths: np.ndarray, steps: int) -> np.ndarray | None:
    return None if np.all(lengths == steps) else lengths


def load_ts_file(path: Path, limits: DatasetLimits) -> Dataset:
    """One ``.ts`` file, without a predefined split (the stratified protocol)."""
    data = _parsed(path, limits)
    name = data.header.problem_name or path.stem
    return finish(
        data.values, data.labels, name, "ts",
        lengths=_lengths_or_none(data.lengths, data.values.shape[1]),
    )


def _front_pad(values: np.ndarray, steps: int) -> np.ndarray:
    return np.pad(values, ((0, 0), (steps - values.shape[1], 0), (0, 0)))


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
    values = np.concatenate([_front_pad(train.values, steps), _front_pad(test.values, steps)])
    lengths = np.concatenate([train.lengths, test.lengths])
    labels = np.concatenate([train.labels, test.labels])
    n_train = train.values.shape[0]
    train_rows, test_rows = np.arange(n_train), np.arange(n_train, n)
    splits = Splits(train=train_rows, validation=test_rows, folds=[(train_rows, test_rows)], selection="cv")
    name = train.header.problem_name or train_path.name[: -len("_TRAIN.ts")]
    sources = {"train": train_path.name, "validation": test_path.name,
               "fold0_train": train_path.name, "fold0_test": test_path.name}
    return finish(values, labels, name, "ts", lengths=_lengths_or_none(lengths, steps),
                  splits=splits, split_sources=sources)


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
