"""Loading and validation of classification datasets as batches of sequences.

Every loader returns a :class:`Dataset` whose inputs have shape ``(N, T, m)``: ``N``
samples, ``T`` time steps, ``m`` features per step. Tabular rows of ``d`` features become
sequences with one feature per step (``T = d``, ``m = 1``, the paper's setting), or
``T = d / m`` steps of ``m`` consecutive features when ``features_per_step = m``.

Supported sources (:func:`load_dataset` dispatches on the path):

- a UCI folder in the format of Fernandez-Delgado et al. (``<name>.txt``,
  ``<name>_R.dat``, ``conxuntos.dat``, ``conxuntos_kfold.dat``), with its predefined splits;
- a ``.zip`` holding such a folder at its root or one directory down;
- a ``.csv`` file with a header row;
- a ``.npz`` archive with ``X``, ``y`` and optionally ``lengths`` and predefined splits.

Every defect raises :class:`DatasetError`, whose message names the file and, where it
makes sense, the 1-based line number and the column (or, for ``.npz``, the key and the
0-based sample index).

Class-count rules (what "enough samples per class" means):

- without predefined splits, the stratified protocol must put every class in both the
  training and the held-out part, so every class needs at least 2 samples;
- with predefined splits, each (training, held-out) pair must be usable by an SVM: the
  training part must hold at least 2 classes, and every class in the held-out part must
  occur in the training part (a single sample is enough: 5 of the paper's 90 UCI datasets
  have a class with one training sample). :func:`check_stratifiable` applies the first
  rule to any dataset, for callers that force the stratified protocol.
"""

from __future__ import annotations

import csv
import re
import stat
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Iterator, Literal, NamedTuple, Sequence

import numpy as np

if TYPE_CHECKING:
    from _csv import _reader as CsvReader

__all__ = [
    "Dataset",
    "DatasetError",
    "DatasetFormat",
    "DatasetLimits",
    "N_FOLDS",
    "Splits",
    "check_stratifiable",
    "load_dataset",
]

DatasetFormat = Literal["uci", "csv", "npz"]

#: Number of (train, test) pairs in the UCI k-fold file and in ``.npz`` splits.
N_FOLDS = 4

_SPLIT_KEYS: tuple[str, ...] = ("train", "validation") + tuple(
    f"fold{k}_{part}" for k in range(N_FOLDS) for part in ("train", "test")
)
_NPZ_KEYS: frozenset[str] = frozenset({"X", "y", "lengths", *_SPLIT_KEYS})
_MACOS_JUNK = "__MACOSX"
_COPY_CHUNK = 1 << 20


class DatasetError(ValueError):
    """A dataset file is missing, malformed, too large or unusable for the protocol."""


@dataclass(frozen=True)
class DatasetLimits:
    """Upper bounds that protect the loader (and later the kernels) from oversized input.

    Attributes:
        max_samples: largest N.
        max_steps: largest T.
        max_features: largest m (features per step).
        max_values: largest N * T * m (200M float64 values are 1.6 GB).
        max_file_bytes: largest single input file (CSV, NPZ, UCI data file).
        max_zip_bytes: largest total uncompressed size of a ``.zip`` or ``.npz``.
        max_zip_members: largest number of entries in a ``.zip``.
    """

    max_samples: int = 100_000
    max_steps: int = 10_000
    max_features: int = 10_000
    max_values: int = 200_000_000
    max_file_bytes: int = 1 << 30
    max_zip_bytes: int = 1 << 30
    max_zip_members: int = 10_000

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"DatasetLimits.{name} must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class Splits:
    """Predefined index splits (0-based row numbers into the dataset).

    Attributes:
        train: (n_train,) int64, the training part used for model selection.
        validation: (n_validation,) int64, the part that scores each configuration.
        folds: ``N_FOLDS`` pairs ``(train, test)`` of int64 index arrays for testing.
    """

    train: np.ndarray
    validation: np.ndarray
    folds: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)

    def parts(self) -> Iterator[tuple[str, np.ndarray]]:
        """Yield ``(name, indices)`` for every part, in the order of ``_SPLIT_KEYS``."""
        yield "train", self.train
        yield "validation", self.validation
        for k, (train, test) in enumerate(self.folds):
            yield f"fold{k}_train", train
            yield f"fold{k}_test", test


@dataclass(frozen=True)
class Dataset:
    """A classification dataset of equal-length (optionally front-padded) sequences.

    Attributes:
        X: (N, T, m) float64 inputs.
        y: (N,) int64 class indices in ``0..c-1``; ``classes[y[i]]`` is the original label.
        classes: (c,) original label values, sorted (ints, floats or strings).
        name: dataset name (UCI folder name or file stem).
        format: the source format, ``"uci"`` (folder or zip), ``"csv"`` or ``"npz"``.
        lengths: optional (N,) int64 true lengths in ``1..T``; sequence i occupies the
            last ``lengths[i]`` steps, the first ``T - lengths[i]`` are padding.
        splits: optional predefined splits.
    """

    X: np.ndarray
    y: np.ndarray
    classes: np.ndarray
    name: str
    format: DatasetFormat
    lengths: np.ndarray | None = None
    splits: Splits | None = None

    def __post_init__(self) -> None:
        # Structural checks only; content checks (finite values, class counts, split
        # overlaps) run in load_dataset. Coercion keeps hand-built datasets convenient.
        X = np.asarray(self.X, dtype=np.float64)
        y = np.asarray(self.y)
        if X.ndim != 3 or 0 in X.shape:
            raise DatasetError(f"X must have shape (N, T, m) with N, T, m >= 1, got {X.shape}")
        if y.ndim != 1 or y.shape[0] != X.shape[0] or (y.size and y.dtype.kind not in "iu"):
            raise DatasetError(f"y must be an integer array of shape ({X.shape[0]},), got {y.dtype} {y.shape}")
        classes = np.asarray(self.classes)
        if classes.ndim != 1 or (y.size and (y.min() < 0 or y.max() >= classes.shape[0])):
            raise DatasetError(f"y must index into classes (c = {classes.shape[0]})")
        object.__setattr__(self, "X", X)
        object.__setattr__(self, "y", y.astype(np.int64, copy=False))
        object.__setattr__(self, "classes", classes)
        if self.lengths is not None:
            lengths = np.asarray(self.lengths)
            if lengths.shape != (X.shape[0],) or lengths.dtype.kind not in "iu":
                raise DatasetError(f"lengths must be an integer array of shape ({X.shape[0]},)")
            if lengths.min() < 1 or lengths.max() > X.shape[1]:
                raise DatasetError(f"lengths must lie in 1..T = 1..{X.shape[1]}")
            object.__setattr__(self, "lengths", lengths.astype(np.int64, copy=False))
        if self.splits is not None:
            for part, indices in self.splits.parts():
                if indices.ndim != 1 or indices.dtype.kind not in "iu":
                    raise DatasetError(f"split part {part!r} must be a 1-D integer array")
                if indices.size and (indices.min() < 0 or indices.max() >= X.shape[0]):
                    raise DatasetError(f"split part {part!r} has indices outside 0..{X.shape[0] - 1}")

    @property
    def n_samples(self) -> int:
        """N, the number of sequences."""
        return int(self.X.shape[0])

    @property
    def n_steps(self) -> int:
        """T, the (padded) number of time steps."""
        return int(self.X.shape[1])

    @property
    def n_features(self) -> int:
        """m, the number of features per time step."""
        return int(self.X.shape[2])

    @property
    def n_classes(self) -> int:
        """c, the number of distinct classes."""
        return int(self.classes.shape[0])


# --------------------------------------------------------------------------- public API


def load_dataset(
    path: str | Path,
    *,
    label_column: str | None = None,
    steps: int | None = None,
    features_per_step: int = 1,
    limits: DatasetLimits = DatasetLimits(),
) -> Dataset:
    """Load and validate a dataset from a UCI folder, a ``.zip`` of one, a ``.csv`` or a ``.npz``.

    Args:
        path: the folder or file.
        label_column: CSV only, the header name of the label column. Without it the
            column named ``label`` is used, else the last column.
        steps: tabular sources only, the number of steps T; each row's d features are
            split into T steps of d / T features. For ``.npz`` it must equal X's T.
        features_per_step: tabular sources only, m; rows become T = d / m steps of m
            consecutive features. For a 3-D ``.npz`` X it must be 1 or equal X's m.
        limits: size limits enforced while reading.

    Returns:
        The dataset, with ``X`` of shape (N, T, m).

    Raises:
        DatasetError: for any defect; the message names the file and row or column.
    """
    if label_column is not None and not isinstance(label_column, str):
        raise DatasetError(f"label_column must be a column name, got {label_column!r}")
    _check_shape_option("features_per_step", features_per_step)
    if steps is not None:
        _check_shape_option("steps", steps)
    p = Path(path)
    if not p.exists():
        raise DatasetError(f"{p}: no such file or folder")
    suffix = p.suffix.lower()
    if label_column is not None and (p.is_dir() or suffix != ".csv"):
        raise DatasetError(f"{p.name}: label_column applies only to CSV files")
    if p.is_dir():
        return _load_uci_folder(p, steps, features_per_step, limits)
    if suffix == ".zip":
        return _load_uci_zip(p, steps, features_per_step, limits)
    if suffix == ".csv":
        return _load_csv(p, label_column, steps, features_per_step, limits)
    if suffix == ".npz":
        return _load_npz(p, steps, features_per_step, limits)
    raise DatasetError(
        f"{p.name}: unsupported dataset type {suffix or '(no extension)'!r}; "
        "expected a UCI folder, .zip, .csv or .npz"
    )


def check_stratifiable(dataset: Dataset, min_per_class: int = 2) -> None:
    """Check that every class has ``min_per_class`` samples, as stratified splitting needs.

    Raises:
        DatasetError: naming the classes with too few samples.
    """
    counts = np.bincount(dataset.y, minlength=dataset.n_classes)
    short = np.flatnonzero(counts < min_per_class)
    if short.size:
        listed = ", ".join(f"{_label(dataset.classes[k])} ({counts[k]})" for k in short[:10])
        more = f" and {short.size - 10} more" if short.size > 10 else ""
        raise DatasetError(
            f"{dataset.name}: the stratified protocol needs at least {min_per_class} samples "
            f"per class; too few in class {listed}{more}"
        )


# ------------------------------------------------------------------------- shared steps


def _check_shape_option(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise DatasetError(f"{name} must be a positive integer, got {value!r}")


def _read_text(path: Path, limits: DatasetLimits) -> list[str]:
    """Read a UTF-8 text file (BOM allowed) as lines, enforcing the size limit."""
    try:
        size = path.stat().st_size
        if size > limits.max_file_bytes:
            raise DatasetError(
                f"{path.name}: file is {size} bytes, over the limit of {limits.max_file_bytes}"
            )
        data = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{path.name}: cannot read file ({exc.strerror or exc})") from exc
    if not data.strip():
        raise DatasetError(f"{path.name}: empty file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DatasetError(f"{path.name}: line {line}: not valid UTF-8 text") from exc
    return text.splitlines()


def _rows_to_sequences(
    features: np.ndarray,
    steps: int | None,
    features_per_step: int,
    where: str,
    limits: DatasetLimits,
) -> np.ndarray:
    """Reshape (N, d) rows into (N, T, m): step t holds columns t*m .. t*m + m - 1."""
    n, d = features.shape
    t, m = _step_layout(d, steps, features_per_step, where)
    _check_size(n, t, m, where, limits)
    return np.ascontiguousarray(features.reshape(n, t, m), dtype=np.float64)


def _step_layout(d: int, steps: int | None, features_per_step: int, where: str) -> tuple[int, int]:
    """Return (T, m) for rows of d features, checking divisibility."""
    if steps is not None:
        if d % steps:
            raise DatasetError(f"{where}: {d} features per row are not divisible into steps={steps}")
        if features_per_step not in (1, d // steps):
            raise DatasetError(
                f"{where}: steps={steps} and features_per_step={features_per_step} "
                f"disagree for {d} features per row"
            )
        return steps, d // steps
    if d % features_per_step:
        raise DatasetError(
            f"{where}: {d} features per row are not divisible by features_per_step={features_per_step}"
        )
    return d // features_per_step, features_per_step


def _check_size(n: int, t: int, m: int, where: str, limits: DatasetLimits) -> None:
    if n > limits.max_samples:
        raise DatasetError(f"{where}: {n} samples, over the limit of {limits.max_samples}")
    if t > limits.max_steps:
        raise DatasetError(f"{where}: {t} steps, over the limit of {limits.max_steps}")
    if m > limits.max_features:
        raise DatasetError(f"{where}: {m} features per step, over the limit of {limits.max_features}")
    if n * t * m > limits.max_values:
        raise DatasetError(f"{where}: {n}x{t}x{m} values, over the limit of {limits.max_values}")


def _max_rows(n_features: int, limits: DatasetLimits) -> int:
    """Most rows of ``n_features`` values allowed; checked while reading, before parsing more."""
    return min(limits.max_samples, limits.max_values // max(n_features, 1))


def _encode_labels(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map arbitrary labels to 0..c-1 in sorted order: returns (classes (c,), y (N,))."""
    classes, y = np.unique(labels, return_inverse=True)
    return classes, y.reshape(-1).astype(np.int64)


def _finish(
    X: np.ndarray,
    labels: np.ndarray,
    name: str,
    fmt: DatasetFormat,
    *,
    lengths: np.ndarray | None = None,
    splits: Splits | None = None,
    split_sources: dict[str, str] | None = None,
) -> Dataset:
    """Encode labels, apply the class-count rules and build the Dataset."""
    classes, y = _encode_labels(labels)
    if classes.shape[0] < 2:
        raise DatasetError(
            f"{name}: every sample has the label {_label(classes[0])}; classification needs at least 2 classes"
        )
    dataset = Dataset(X=X, y=y, classes=classes, name=name, format=fmt, lengths=lengths, splits=splits)
    if splits is None:
        check_stratifiable(dataset)
    else:
        _check_split_classes(dataset, split_sources or {})
    return dataset


def _label(value: object) -> str:
    """A class label for messages: ``0`` or ``'cat'``, not ``np.int64(0)``."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _indices(values: Sequence[int] | np.ndarray, n: int, where: str) -> np.ndarray:
    """Validate one split part: non-empty, in range, no repeats. Returns int64 (k,)."""
    indices = np.asarray(values, dtype=np.int64)
    if indices.size == 0:
        raise DatasetError(f"{where}: empty split part")
    bad = np.flatnonzero((indices < 0) | (indices >= n))
    if bad.size:
        raise DatasetError(
            f"{where}: index {indices[bad[0]]} (position {bad[0] + 1}) is out of range for "
            f"{n} samples (valid: 0..{n - 1})"
        )
    uniq, counts = np.unique(indices, return_counts=True)
    if (counts > 1).any():
        raise DatasetError(f"{where}: index {uniq[counts > 1][0]} appears more than once")
    return indices


def _check_split_classes(dataset: Dataset, sources: dict[str, str]) -> None:
    """Apply the predefined-split rules (module docstring) to every (train, held-out) pair."""
    splits = dataset.splits
    assert splits is not None
    pairs = [("train", splits.train, "validation", splits.validation)]
    pairs += [
        (f"fold{k}_train", train, f"fold{k}_test", test) for k, (train, test) in enumerate(splits.folds)
    ]
    for train_name, train, held_name, held in pairs:
        where = sources.get(train_name, train_name)
        overlap = np.intersect1d(train, held)
        if overlap.size:
            raise DatasetError(
                f"{dataset.name}: {where} and {sources.get(held_name, held_name)} share "
                f"{overlap.size} indices (e.g. {overlap[0]})"
            )
        train_classes = np.unique(dataset.y[train])
        if train_classes.size < 2:
            raise DatasetError(
                f"{dataset.name}: {where} holds only class {_label(dataset.classes[train_classes[0]])}; "
                "an SVM needs at least 2 classes to train"
            )
        unseen = np.setdiff1d(np.unique(dataset.y[held]), train_classes)
        if unseen.size:
            raise DatasetError(
                f"{dataset.name}: class {_label(dataset.classes[unseen[0]])} occurs in "
                f"{sources.get(held_name, held_name)} but not in {where}, so it can never be predicted"
            )


def _first_nonfinite(values: np.ndarray) -> tuple[int, ...] | None:
    """Index of the first NaN or inf in ``values``, or None."""
    bad = ~np.isfinite(values)
    if not bad.any():
        return None
    return tuple(int(i) for i in np.argwhere(bad)[0])


def _parse_floats(tokens: list[str], line_no: int, where: str, column_names: Sequence[str]) -> list[float]:
    """Convert one row of cells to floats, naming the first bad cell on failure."""
    try:
        return [float(token) for token in tokens]
    except ValueError:
        pass
    for j, token in enumerate(tokens):
        try:
            float(token)
        except ValueError:
            what = "empty cell" if not token.strip() else f"non-numeric value {token.strip()!r}"
            raise DatasetError(f"{where}: line {line_no}, column {column_names[j]}: {what}") from None
    raise AssertionError("unreachable")  # pragma: no cover


# -------------------------------------------------------------------------- UCI folders


def _load_uci_folder(
    folder: Path, steps: int | None, features_per_step: int, limits: DatasetLimits
) -> Dataset:
    """Load a UCI folder: description, data file and both split files are required."""
    description = _find_description(folder)
    name = description.stem
    n_features, n_classes, n_rows, data_name = _read_description(description, limits)
    if n_rows > limits.max_samples:
        raise DatasetError(f"{description.name}: n_patrons1={n_rows}, over the limit of {limits.max_samples}")
    # Check the step layout before reading a possibly large file.
    t, m = _step_layout(n_features, steps, features_per_step, description.name)
    _check_size(n_rows, t, m, description.name, limits)

    data_path = _member_file(folder, data_name, f"the data file named by fich1 in {description.name}")
    split_path = _member_file(folder, "conxuntos.dat", "the train/validation split")
    kfold_path = _member_file(folder, "conxuntos_kfold.dat", "the 4 test folds")

    features, labels = _read_uci_data(data_path, n_features, n_classes, limits)
    if features.shape[0] != n_rows:
        raise DatasetError(
            f"{data_path.name}: {features.shape[0]} data rows, but {description.name} "
            f"says n_patrons1={n_rows}"
        )
    X = _rows_to_sequences(features, steps, features_per_step, data_path.name, limits)

    n = features.shape[0]
    parts = _read_index_lines(split_path, n, limits, _SPLIT_KEYS[:2])
    parts |= _read_index_lines(kfold_path, n, limits, _SPLIT_KEYS[2:])
    splits = Splits(
        train=parts["train"][1],
        validation=parts["validation"][1],
        folds=[(parts[f"fold{k}_train"][1], parts[f"fold{k}_test"][1]) for k in range(N_FOLDS)],
    )
    sources = {part: where for part, (where, _) in parts.items()}
    return _finish(X, labels, name, "uci", splits=splits, split_sources=sources)


def _find_description(folder: Path) -> Path:
    """Find ``<name>.txt``: the folder's namesake, else the only (or only paired) .txt."""
    own = folder / f"{folder.name}.txt"
    if own.is_file():
        return own
    texts = sorted(p for p in folder.glob("*.txt") if p.is_file())
    if len(texts) == 1:
        return texts[0]
    paired = [p for p in texts if (folder / f"{p.stem}_R.dat").is_file()]
    if len(paired) == 1:
        return paired[0]
    if not texts:
        raise DatasetError(f"UCI folder {folder.name!r} is missing its <name>.txt description file")
    raise DatasetError(
        f"UCI folder {folder.name!r}: cannot tell which .txt is the description "
        f"({', '.join(p.name for p in texts[:5])})"
    )


def _member_file(folder: Path, name: str, what: str) -> Path:
    """Resolve a file named inside a UCI folder, refusing paths that leave the folder."""
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        raise DatasetError(f"UCI folder {folder.name!r}: {what} has an invalid name {name!r}")
    path = folder / name
    if not path.is_file():
        raise DatasetError(f"UCI folder {folder.name!r} is missing {name} ({what})")
    return path


_KEY_VALUE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


class _Description(NamedTuple):
    """The keys of ``<name>.txt`` that the loader needs."""

    n_features: int  # n_entradas
    n_classes: int  # n_clases
    n_rows: int  # n_patrons1
    data_file: str  # fich1


def _read_description(path: Path, limits: DatasetLimits) -> _Description:
    """Parse the ``key= value`` lines of ``<name>.txt``."""
    values: dict[str, tuple[str, int]] = {}
    for line_no, line in enumerate(_read_text(path, limits), start=1):
        if not line.strip():
            continue
        match = _KEY_VALUE.match(line)
        if match is None:
            raise DatasetError(f"{path.name}: line {line_no}: expected 'key= value', got {line.strip()[:60]!r}")
        values[match.group(1)] = (match.group(2), line_no)
    for key in ("n_entradas", "n_clases", "n_patrons1", "fich1"):
        if key not in values:
            raise DatasetError(f"{path.name}: missing the '{key}=' line")
    numbers: dict[str, int] = {}
    for key in ("n_entradas", "n_clases", "n_patrons1"):
        text, line_no = values[key]
        try:
            number = int(text)
        except ValueError:
            raise DatasetError(f"{path.name}: line {line_no}: {key}= must be an integer, got {text!r}") from None
        if number < 1:
            raise DatasetError(f"{path.name}: line {line_no}: {key}= must be positive, got {number}")
        numbers[key] = number
    if "n_arquivos" in values and values["n_arquivos"][0].strip() != "1":
        text, line_no = values["n_arquivos"]
        raise DatasetError(
            f"{path.name}: line {line_no}: n_arquivos={text}; only single-file datasets are supported"
        )
    return _Description(numbers["n_entradas"], numbers["n_clases"], numbers["n_patrons1"], values["fich1"][0])


def _read_uci_data(
    path: Path, n_features: int, n_classes: int, limits: DatasetLimits
) -> tuple[np.ndarray, np.ndarray]:
    """Read ``<name>_R.dat``: header line, then ``index f1..fd label`` rows.

    Returns:
        features (N, d) float64 and labels (N,) int64.
    """
    lines = _read_text(path, limits)
    n_columns = n_features + 2
    names = ["1 (index)"] + [f"{j + 2} (f{j + 1})" for j in range(n_features)] + [f"{n_columns} (label)"]
    # Line 1 is the header; data rows are whitespace-separated, blank lines are skipped.
    data_lines = lines[1:]
    line_numbers = [line_no for line_no, line in enumerate(data_lines, start=2) if line.strip()]
    if not line_numbers:
        raise DatasetError(f"{path.name}: no data rows after the header line")
    max_rows = _max_rows(n_features, limits)
    if len(line_numbers) > max_rows:
        raise DatasetError(f"{path.name}: line {line_numbers[max_rows]}: more than {max_rows} samples (limit)")
    try:
        # Fast C parser for the common, well-formed case.
        table = np.loadtxt(data_lines, dtype=np.float64, comments=None, ndmin=2)
        if table.shape != (len(line_numbers), n_columns):
            raise ValueError("ragged")
    except ValueError:
        # Slow pass that names the offending line and column.
        rows: list[list[float]] = []
        for line_no, line in enumerate(data_lines, start=2):
            tokens = line.split()
            if not tokens:
                continue
            if len(tokens) != n_columns:
                raise DatasetError(
                    f"{path.name}: line {line_no}: expected {n_columns} columns "
                    f"(index, {n_features} features, label), found {len(tokens)}"
                ) from None
            rows.append(_parse_floats(tokens, line_no, path.name, names))
        table = np.asarray(rows, dtype=np.float64)
    bad = _first_nonfinite(table)
    if bad is not None:
        row, col = bad
        raise DatasetError(
            f"{path.name}: line {line_numbers[row]}, column {names[col]}: value {table[row, col]} is not finite"
        )
    labels = table[:, -1]
    not_int = np.flatnonzero((labels != np.round(labels)) | (labels < 0) | (labels >= n_classes))
    if not_int.size:
        row = not_int[0]
        raise DatasetError(
            f"{path.name}: line {line_numbers[row]}, column {names[-1]}: label {labels[row]:g} is "
            f"not an integer in 0..{n_classes - 1} (n_clases={n_classes})"
        )
    return table[:, 1:-1], labels.astype(np.int64)


def _read_index_lines(
    path: Path, n: int, limits: DatasetLimits, part_names: Sequence[str]
) -> dict[str, tuple[str, np.ndarray]]:
    """Read a split file with one line of 0-based indices per part (blank lines skipped).

    Returns:
        part name -> (description "file line k (part)", indices (k,) int64).
    """
    expected = len(part_names)
    found: dict[str, tuple[str, np.ndarray]] = {}
    for line_no, line in enumerate(_read_text(path, limits), start=1):
        tokens = line.split()
        if not tokens:
            continue
        if len(found) == expected:
            raise DatasetError(f"{path.name}: line {line_no}: expected exactly {expected} lines of indices")
        part = part_names[len(found)]
        where = f"{path.name} line {line_no} ({part})"
        try:
            values = [int(token) for token in tokens]
        except ValueError:
            token = next(t for t in tokens if not re.fullmatch(r"[+-]?\d+", t))
            raise DatasetError(f"{where}: {token!r} is not an integer index") from None
        found[part] = (where, _indices(values, n, where))
    if len(found) != expected:
        raise DatasetError(f"{path.name}: expected {expected} lines of indices, found {len(found)}")
    return found


def _load_uci_zip(path: Path, steps: int | None, features_per_step: int, limits: DatasetLimits) -> Dataset:
    """Extract a zipped UCI folder into a temporary directory and load it."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise DatasetError(f"{path.name}: not a readable zip archive ({exc})") from exc
    with archive, tempfile.TemporaryDirectory(prefix="rntk-dataset-") as tmp:
        root = Path(tmp)
        _safe_extract(archive, root, path.name, limits)
        folder = _find_uci_root(root, path.name)
        return _load_uci_folder(folder, steps, features_per_step, limits)


def _member_parts(name: str, archive_name: str) -> tuple[str, ...]:
    """Split a zip entry name into safe path parts, rejecting any that escape the folder."""
    if not name or "\x00" in name:
        raise DatasetError(f"{archive_name}: entry with an invalid name {name!r}")
    # Backslashes are separators for archives made on Windows.
    normalised = name.replace("\\", "/")
    if normalised.startswith("/") or re.match(r"^[A-Za-z]:", normalised):
        raise DatasetError(f"{archive_name}: entry {name!r} has an absolute path")
    parts = tuple(p for p in PurePosixPath(normalised).parts if p not in ("", "."))
    if ".." in parts:
        raise DatasetError(f"{archive_name}: entry {name!r} escapes the archive folder ('..')")
    return parts


def _safe_extract(archive: zipfile.ZipFile, root: Path, archive_name: str, limits: DatasetLimits) -> None:
    """Validate every entry, then extract regular files under ``root`` with size checks."""
    infos = archive.infolist()
    if len(infos) > limits.max_zip_members:
        raise DatasetError(f"{archive_name}: {len(infos)} entries, over the limit of {limits.max_zip_members}")
    planned: list[tuple[zipfile.ZipInfo, tuple[str, ...]]] = []
    declared = 0
    for info in infos:
        parts = _member_parts(info.filename, archive_name)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise DatasetError(f"{archive_name}: entry {info.filename!r} is a symbolic link")
        if info.flag_bits & 0x1:
            raise DatasetError(f"{archive_name}: entry {info.filename!r} is encrypted")
        declared += info.file_size
        if declared > limits.max_zip_bytes:
            raise DatasetError(
                f"{archive_name}: uncompressed size over the limit of {limits.max_zip_bytes} bytes"
            )
        if parts and not info.is_dir() and parts[0] != _MACOS_JUNK:
            planned.append((info, parts))
    resolved_root = root.resolve()
    written_total = 0
    for info, parts in planned:
        target = root.joinpath(*parts)
        if not target.resolve().is_relative_to(resolved_root):
            raise DatasetError(f"{archive_name}: entry {info.filename!r} escapes the archive folder")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as source, open(target, "xb") as sink:
                written = 0
                # Declared sizes can lie; count what is actually decompressed.
                while chunk := source.read(_COPY_CHUNK):
                    written += len(chunk)
                    written_total += len(chunk)
                    if written > info.file_size or written_total > limits.max_zip_bytes:
                        raise DatasetError(
                            f"{archive_name}: entry {info.filename!r} expands beyond its declared "
                            "size or the archive size limit"
                        )
                    sink.write(chunk)
        except FileExistsError as exc:
            raise DatasetError(f"{archive_name}: duplicate entry {info.filename!r}") from exc
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
            raise DatasetError(f"{archive_name}: corrupt entry {info.filename!r} ({exc})") from exc
        except OSError as exc:
            raise DatasetError(f"{archive_name}: cannot extract {info.filename!r} ({exc})") from exc


def _looks_like_uci(folder: Path) -> bool:
    return (folder / "conxuntos.dat").is_file() or any(folder.glob("*_R.dat"))


def _find_uci_root(root: Path, archive_name: str) -> Path:
    """The UCI folder is the archive root or its single top-level directory."""
    if _looks_like_uci(root):
        return root
    dirs = [p for p in root.iterdir() if p.is_dir() and p.name != _MACOS_JUNK]
    if len(dirs) == 1 and _looks_like_uci(dirs[0]):
        return dirs[0]
    raise DatasetError(
        f"{archive_name}: no UCI dataset folder (with conxuntos.dat or <name>_R.dat) "
        "at the archive root or one directory down"
    )


# ---------------------------------------------------------------------------------- CSV


def _load_csv(
    path: Path,
    label_column: str | None,
    steps: int | None,
    features_per_step: int,
    limits: DatasetLimits,
) -> Dataset:
    """Load a CSV with a header row; every column but the label column is a feature."""
    lines = _read_text(path, limits)
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
    t, m = _step_layout(len(feature_index), steps, features_per_step, path.name)
    _check_size(1, t, m, path.name, limits)

    rows: list[list[float]] = []
    labels: list[str] = []
    line_numbers: list[int] = []
    max_rows = _max_rows(len(feature_index), limits)
    for line_no, cells in _csv_rows(reader, path.name):
        if not any(cell.strip() for cell in cells):
            continue  # blank line
        if len(cells) != len(header):
            raise DatasetError(
                f"{path.name}: line {line_no}: expected {len(header)} columns like the header, found {len(cells)}"
            )
        if len(rows) >= max_rows:
            raise DatasetError(f"{path.name}: line {line_no}: more than {max_rows} samples (limit)")
        label = cells[label_index].strip()
        if not label:
            raise DatasetError(f"{path.name}: line {line_no}, column {names[label_index]}: empty label")
        rows.append(_parse_floats([cells[j] for j in feature_index], line_no, path.name, feature_names))
        labels.append(label)
        line_numbers.append(line_no)
    if not rows:
        raise DatasetError(f"{path.name}: no data rows after the header")
    features = np.asarray(rows, dtype=np.float64)
    bad = _first_nonfinite(features)
    if bad is not None:
        row, col = bad
        raise DatasetError(
            f"{path.name}: line {line_numbers[row]}, column {feature_names[col]}: "
            f"value {features[row, col]} is not finite"
        )
    label_values = _label_values(labels, line_numbers, path.name, names[label_index])
    X = _rows_to_sequences(features, steps, features_per_step, path.name, limits)
    return _finish(X, label_values, path.stem, "csv")


def _csv_rows(reader: CsvReader, where: str) -> Iterator[tuple[int, list[str]]]:
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


# ---------------------------------------------------------------------------------- NPZ


def _load_npz(path: Path, steps: int | None, features_per_step: int, limits: DatasetLimits) -> Dataset:
    """Load ``X`` (N, T) or (N, T, m), ``y`` (N,), optional ``lengths`` and splits."""
    where = path.name
    arrays = _read_npz_arrays(path, limits)
    for key in ("X", "y"):
        if key not in arrays:
            found = ", ".join(sorted(arrays)) or "none"
            raise DatasetError(f"{where}: missing the required array {key!r} (found: {found})")
    X = arrays["X"]
    if X.dtype.kind not in "biuf":
        raise DatasetError(f"{where}: 'X' must be numeric, got dtype {X.dtype}")
    if X.ndim == 2:
        X = X[:, :, np.newaxis]
    if X.ndim != 3 or 0 in X.shape:
        raise DatasetError(
            f"{where}: 'X' must have shape (N, T) or (N, T, m) with no empty axis, got {arrays['X'].shape}"
        )
    n, t, m = X.shape
    if steps is not None and steps != t:
        raise DatasetError(f"{where}: steps={steps} but 'X' has T={t} steps")
    if features_per_step != 1 and features_per_step != m:
        raise DatasetError(
            f"{where}: features_per_step={features_per_step} but 'X' has m={m} features per step"
        )
    _check_size(n, t, m, where, limits)
    X = X.astype(np.float64)
    bad = _first_nonfinite(X)
    if bad is not None:
        raise DatasetError(
            f"{where}: 'X' at sample {bad[0]}, step {bad[1]}, feature {bad[2]} (0-based) is not finite"
        )

    y = arrays["y"]
    if y.ndim != 1 or y.shape[0] != n:
        raise DatasetError(f"{where}: 'y' must have shape ({n},) to match 'X', got {y.shape}")
    if y.dtype.kind not in "biufUS":
        raise DatasetError(f"{where}: 'y' must hold numbers or strings, got dtype {y.dtype}")
    if y.dtype.kind == "f":
        bad_y = np.flatnonzero(~np.isfinite(y))
        if bad_y.size:
            raise DatasetError(f"{where}: 'y' at sample {bad_y[0]} (0-based) is not finite")

    lengths = None
    if "lengths" in arrays:
        lengths = _npz_lengths(arrays["lengths"], n, t, where)

    present = [key for key in _SPLIT_KEYS if key in arrays]
    splits = None
    if present:
        missing = [key for key in _SPLIT_KEYS if key not in arrays]
        if missing:
            raise DatasetError(f"{where}: predefined splits are incomplete; missing {', '.join(missing)}")
        parts = {key: _npz_indices(arrays[key], n, f"{where}: '{key}'") for key in _SPLIT_KEYS}
        splits = Splits(
            train=parts["train"],
            validation=parts["validation"],
            folds=[(parts[f"fold{k}_train"], parts[f"fold{k}_test"]) for k in range(N_FOLDS)],
        )
    sources = {key: f"{where} '{key}'" for key in _SPLIT_KEYS}
    return _finish(X, y, path.stem, "npz", lengths=lengths, splits=splits, split_sources=sources)


def _read_npz_arrays(path: Path, limits: DatasetLimits) -> dict[str, np.ndarray]:
    """Read every array of an .npz without pickles, checking sizes and key names first."""
    where = path.name
    try:
        size = path.stat().st_size
        if size > limits.max_file_bytes:
            raise DatasetError(f"{where}: file is {size} bytes, over the limit of {limits.max_file_bytes}")
        if size == 0:
            raise DatasetError(f"{where}: empty file")
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            if sum(info.file_size for info in infos) > limits.max_zip_bytes:
                raise DatasetError(f"{where}: uncompressed size over the limit of {limits.max_zip_bytes} bytes")
            keys = {info.filename: info.filename.removesuffix(".npy") for info in infos}
            unknown = sorted(k for name, k in keys.items() if not name.endswith(".npy") or k not in _NPZ_KEYS)
            if unknown:
                raise DatasetError(
                    f"{where}: unexpected entries {', '.join(map(repr, unknown[:10]))}; "
                    f"allowed arrays: {', '.join(sorted(_NPZ_KEYS))}"
                )
            for info in infos:
                _check_npy_header(archive, info, where)
    except (zipfile.BadZipFile, EOFError) as exc:
        raise DatasetError(f"{where}: not a readable .npz archive ({exc})") from exc
    except OSError as exc:
        raise DatasetError(f"{where}: cannot read file ({exc})") from exc
    arrays: dict[str, np.ndarray] = {}
    try:
        with np.load(path, allow_pickle=False) as archive:
            for key in archive.files:
                try:
                    arrays[key] = np.asarray(archive[key])
                except ValueError as exc:  # object arrays need pickle, which is refused
                    raise DatasetError(f"{where}: array {key!r} cannot be read safely ({exc})") from exc
    except DatasetError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
        raise DatasetError(f"{where}: corrupt .npz archive ({exc})") from exc
    return arrays


def _check_npy_header(archive: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> None:
    """Refuse object arrays and arrays larger than their entry before numpy allocates them."""
    key = info.filename.removesuffix(".npy")
    try:
        with archive.open(info) as member:
            version = np.lib.format.read_magic(member)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(member)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(member)
            else:
                raise DatasetError(f"{where}: array {key!r} uses unsupported .npy version {version}")
    except (ValueError, EOFError) as exc:
        raise DatasetError(f"{where}: array {key!r} has a corrupt .npy header ({exc})") from exc
    if dtype.hasobject:
        raise DatasetError(f"{where}: array {key!r} holds Python objects, which are refused (no pickles)")
    if int(np.prod(shape, dtype=np.float64)) * dtype.itemsize > info.file_size:
        raise DatasetError(f"{where}: array {key!r} declares shape {shape}, larger than its stored data")


def _npz_lengths(values: np.ndarray, n: int, t: int, where: str) -> np.ndarray:
    if values.ndim != 1 or values.shape[0] != n:
        raise DatasetError(f"{where}: 'lengths' must have shape ({n},), got {values.shape}")
    if values.dtype.kind not in "iuf":
        raise DatasetError(f"{where}: 'lengths' must be integers, got dtype {values.dtype}")
    as_float = values.astype(np.float64)
    with np.errstate(invalid="ignore"):
        invalid = ~np.isfinite(as_float) | (as_float != np.round(as_float)) | (as_float < 1) | (as_float > t)
    bad = np.flatnonzero(invalid)
    if bad.size:
        raise DatasetError(
            f"{where}: 'lengths' at sample {bad[0]} (0-based) is {values[bad[0]]}; "
            f"must be an integer in 1..T = 1..{t}"
        )
    return as_float.astype(np.int64)


def _npz_indices(values: np.ndarray, n: int, where: str) -> np.ndarray:
    if values.ndim != 1:
        raise DatasetError(f"{where}: split indices must be 1-D, got shape {values.shape}")
    if values.size and values.dtype.kind not in "iu":
        raise DatasetError(f"{where}: split indices must be integers, got dtype {values.dtype}")
    return _indices(values, n, where)
