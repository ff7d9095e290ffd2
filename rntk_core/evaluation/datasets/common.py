"""The dataset types, limits and the checks every format shares."""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Literal, Sequence

import numpy as np

DatasetFormat = Literal["uci", "csv", "npz", "ts"]

#: Number of (train, test) pairs in the UCI k-fold file and in ``.npz`` splits.
N_FOLDS = 4

SPLIT_KEYS: tuple[str, ...] = ("train", "validation") + tuple(
    f"fold{k}_{part}" for k in range(N_FOLDS) for part in ("train", "test")
)
MACOS_JUNK = "__MACOSX"
#: Longest class label accepted (a label is kept once per class, but a longer one is no label).
MAX_LABEL_CHARS = 1000

# The loaders read a file as a stream: at most BLOCK_BYTES of text and BLOCK_VALUES parsed
# values (in at most BLOCK_ROWS rows) are held besides the arrays already built, so that
# parsing takes about twice the parsed arrays (their blocks, then the one array they are
# joined into) plus a few MB, whatever the file's length; one line of text is held whole.
BLOCK_BYTES = 1 << 18
BLOCK_VALUES = 1 << 18
BLOCK_ROWS = 1 << 14


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
        max_classes: largest number of distinct class labels (each is held while reading).
        max_line_bytes: longest line of a text file (a line is held whole while it is read;
            64 MiB is about 3 million values).
    """

    max_samples: int = 10_000_000  # as RNTK_MAX_SAMPLES: rntk evaluate runs the landmark path at 10^6
    max_steps: int = 10_000
    max_features: int = 10_000
    max_values: int = 200_000_000
    max_file_bytes: int = 1 << 30
    max_zip_bytes: int = 1 << 30
    max_zip_members: int = 10_000
    max_classes: int = 10_000
    max_line_bytes: int = 64 << 20

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
        selection: how configurations are scored: ``"holdout"`` fits on ``train`` and scores
            on ``validation``; ``"cv"`` (a time-series archive's TRAIN/TEST split) scores by
            stratified k-fold cross-validation inside ``train``, and ``validation`` is the
            held-out TEST part, never used for selection.
    """

    train: np.ndarray
    validation: np.ndarray
    folds: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    selection: Literal["holdout", "cv"] = "holdout"

    def parts(self) -> Iterator[tuple[str, np.ndarray]]:
        """Yield ``(name, indices)`` for every part, in the order of ``SPLIT_KEYS``."""
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




def check_shape_option(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise DatasetError(f"{name} must be a positive integer, got {value!r}")


def text_lines(path: Path, limits: DatasetLimits) -> Iterator[str]:
    """The lines of a UTF-8 text file (BOM allowed), without their line breaks, as
    ``str.splitlines`` splits them; read block by block, enforcing the size limit.

    Memory: one block of :data:`BLOCK_BYTES` and the line being read (at most
    ``limits.max_line_bytes``), however long the file.
    """
    try:
        size = path.stat().st_size
        if size > limits.max_file_bytes:
            raise DatasetError(
                f"{path.name}: file is {size} bytes, over the limit of {limits.max_file_bytes}"
            )
        handle = open(path, "rb")
    except OSError as exc:
        raise DatasetError(f"{path.name}: cannot read file ({exc.strerror or exc})") from exc
    return _lines(handle, path, limits.max_line_bytes)


def _lines(handle, path: Path, max_line: int) -> Iterator[str]:  # type: ignore[no-untyped-def]
    with handle:
        if not _has_text(handle, path):
            raise DatasetError(f"{path.name}: empty file")
        decoder = codecs.getincrementaldecoder("utf-8")()
        pending: list[str] = []  # the line being read, in pieces (joined once it ends: no quadratic copying)
        newlines, first, count = 0, True, 0
        while True:
            block = _read_block(handle, path)
            final = not block
            held = decoder.getstate()[0]  # bytes of a character split across blocks
            try:
                text = decoder.decode(block, final=final)
            except UnicodeDecodeError as exc:
                line = newlines + (held + block)[: exc.start].count(b"\n") + 1
                raise DatasetError(f"{path.name}: line {line}: not valid UTF-8 text") from exc
            newlines += block.count(b"\n")
            if first and text:
                text, first = text.removeprefix("\ufeff"), False
            if not final and len(text.splitlines()) < 2 and text[-1:] not in _BREAKS:  # no line ends here
                pending.append(text)
                if sum(map(len, pending)) > max_line:  # characters: at least as many bytes
                    raise DatasetError(f"{path.name}: line {count + 1}: longer than the limit of {max_line} bytes")
                continue
            text = "".join(pending) + text
            if final:
                yield from text.splitlines()
                return
            carry = "\r" if text.endswith("\r") else ""  # "\r\n" may be split across blocks
            text = text[: len(text) - len(carry)]
            lines = text.splitlines()
            pending = [(lines.pop() if lines and text[-1] not in _BREAKS else "") + carry]  # a partial last line
            count += len(lines)
            yield from lines


#: What ``str.splitlines`` ends a line at.
_BREAKS = frozenset("\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029")


def _read_block(handle, path: Path) -> bytes:  # type: ignore[no-untyped-def]
    try:
        return handle.read(BLOCK_BYTES)
    except OSError as exc:
        raise DatasetError(f"{path.name}: cannot read file ({exc.strerror or exc})") from exc


def _has_text(handle, path: Path) -> bool:  # type: ignore[no-untyped-def]
    """Whether the file holds anything but ASCII whitespace (then rewound to its start)."""
    while block := _read_block(handle, path):
        if block.strip():
            handle.seek(0)
            return True
    return False


def rows_to_sequences(
    features: np.ndarray,
    steps: int | None,
    features_per_step: int,
    where: str,
    limits: DatasetLimits,
) -> np.ndarray:
    """Reshape (N, d) rows into (N, T, m): step t holds columns t*m .. t*m + m - 1."""
    n, d = features.shape
    t, m = step_layout(d, steps, features_per_step, where)
    check_size(n, t, m, where, limits)
    return np.ascontiguousarray(features.reshape(n, t, m), dtype=np.float64)


def step_layout(d: int, steps: int | None, features_per_step: int, where: str) -> tuple[int, int]:
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


def check_size(n: int, t: int, m: int, where: str, limits: DatasetLimits) -> None:
    if n > limits.max_samples:
        raise DatasetError(f"{where}: {n} samples, over the limit of {limits.max_samples}")
    if t > limits.max_steps:
        raise DatasetError(f"{where}: {t} steps, over the limit of {limits.max_steps}")
    if m > limits.max_features:
        raise DatasetError(f"{where}: {m} features per step, over the limit of {limits.max_features}")
    if n * t * m > limits.max_values:
        raise DatasetError(f"{where}: {n}x{t}x{m} values, over the limit of {limits.max_values}")


def row_limit(n_features: int, limits: DatasetLimits) -> int:
    """Most rows of ``n_features`` values allowed; checked while reading, before parsing more."""
    return min(limits.max_samples, limits.max_values // max(n_features, 1))


def _encode_labels(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map arbitrary labels to 0..c-1 in sorted order: returns (classes (c,), y (N,))."""
    classes, y = np.unique(labels, return_inverse=True)
    return classes, y.reshape(-1).astype(np.int64)


def finish(
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
    return finish_encoded(X, classes, y, name, fmt, lengths=lengths, splits=splits, split_sources=split_sources)


def finish_encoded(
    X: np.ndarray,
    classes: np.ndarray,
    y: np.ndarray,
    name: str,
    fmt: DatasetFormat,
    *,
    lengths: np.ndarray | None = None,
    splits: Splits | None = None,
    split_sources: dict[str, str] | None = None,
) -> Dataset:
    """:func:`finish` for labels already encoded: ``classes`` (c,) sorted, ``y`` (N,) in 0..c-1
    (the streaming loaders keep one code per sample, never an (N,) array of label strings)."""
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


def indices(values: Sequence[int] | np.ndarray, n: int, where: str) -> np.ndarray:
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


def first_nonfinite(values: np.ndarray) -> tuple[int, ...] | None:
    """Index of the first NaN or inf in ``values``, or None."""
    bad = ~np.isfinite(values)
    if not bad.any():
        return None
    return tuple(int(i) for i in np.argwhere(bad)[0])


def parse_floats(tokens: list[str], line_no: int, where: str, column_names: Sequence[str]) -> list[float]:
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


