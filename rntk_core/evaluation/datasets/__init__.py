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
- a ``.npz`` archive with ``X``, ``y`` and optionally ``lengths`` and predefined splits;
- the UCR/UEA ``.ts`` format (:mod:`.ts`): a single ``.ts`` file, or a folder or ``.zip``
  holding ``NAME_TRAIN.ts`` and ``NAME_TEST.ts`` (the archive's predefined split).

Text is read as a stream (:func:`.common.text_lines`), and values are kept in float64 blocks:
a load holds about twice its arrays plus a few MB, never a Python object per line or value.
:func:`save_parsed` stores a loaded dataset's arrays beside its file, and
:func:`load_for_job` memory-maps them instead of parsing again (:mod:`.parsed`).

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

import contextlib
import contextvars
import zipfile
from pathlib import Path
from typing import Iterator

from .common import (
    N_FOLDS,
    Dataset,
    DatasetError,
    DatasetFormat,
    DatasetLimits,
    Splits,
    check_shape_option,
    check_stratifiable,
)
from .archive import content_sha256
from .csv import load_csv
from .npz import load_npz
from .parsed import PARSED, is_memory_mapped, load_for_job, load_parsed, save_parsed
from .ts import has_ts_split, load_ts_file, load_ts_folder, load_ts_zip
from .uci import load_uci_folder, load_uci_zip

__all__ = [
    "Dataset",
    "DatasetError",
    "DatasetFormat",
    "DatasetLimits",
    "N_FOLDS",
    "PARSED",
    "Splits",
    "check_stratifiable",
    "content_sha256",
    "is_memory_mapped",
    "load_dataset",
    "load_for_job",
    "load_parsed",
    "recording_loads",
    "save_parsed",
]

_recorded: contextvars.ContextVar[list[Dataset] | None] = contextvars.ContextVar("rntk_recorded_loads", default=None)


@contextlib.contextmanager
def recording_loads() -> Iterator[list[Dataset]]:
    """The datasets :func:`load_dataset` returns inside the block (in this thread or task),
    in order: for a caller that keeps what a callee validated without parsing the file twice
    (the API saves the arrays of the upload that ``app.service.ingest`` loads)."""
    loaded: list[Dataset] = []
    token = _recorded.set(loaded)
    try:
        yield loaded
    finally:
        _recorded.reset(token)


def load_dataset(
    path: str | Path,
    *,
    label_column: str | None = None,
    steps: int | None = None,
    features_per_step: int = 1,
    limits: DatasetLimits = DatasetLimits(),
) -> Dataset:
    """Load and validate a dataset: a UCI folder or ``.zip``, ``.csv``, ``.npz``, or ``.ts`` data.

    Args:
        path: the folder or file.
        label_column: CSV only, the header name of the label column. Without it the
            column named ``label`` is used, else the last column.
        steps: tabular sources only, the number of steps T; each row's d features are
            split into T steps of d / T features. For ``.npz`` it must equal X's T.
        features_per_step: tabular sources only, m; rows become T = d / m steps of m
            consecutive features. For a 3-D ``.npz`` X it must be 1 or equal X's m; ``.ts``
            data carry their own dimensions (1 only).
        limits: size limits enforced while reading.

    Returns:
        The dataset, with ``X`` of shape (N, T, m).

    Raises:
        DatasetError: for any defect; the message names the file and row or column.
    """
    dataset = _load(Path(path), label_column, steps, features_per_step, limits)
    recorded = _recorded.get()
    if recorded is not None:
        recorded.append(dataset)
    return dataset


def _load(
    p: Path, label_column: str | None, steps: int | None, features_per_step: int, limits: DatasetLimits
) -> Dataset:
    if label_column is not None and not isinstance(label_column, str):
        raise DatasetError(f"label_column must be a column name, got {label_column!r}")
    check_shape_option("features_per_step", features_per_step)
    if steps is not None:
        check_shape_option("steps", steps)
    if not p.exists():
        raise DatasetError(f"{p}: no such file or folder")
    suffix = p.suffix.lower()
    if label_column is not None and (p.is_dir() or suffix != ".csv"):
        raise DatasetError(f"{p.name}: label_column applies only to CSV files")
    is_ts = suffix == ".ts" or (p.is_dir() and has_ts_split(c.name for c in p.iterdir())) or (
        suffix == ".zip" and _zip_holds_ts(p)
    )
    if is_ts and (steps is not None or features_per_step != 1):
        raise DatasetError(f"{p.name}: steps and features_per_step do not apply to .ts data")
    if p.is_dir():
        if is_ts:
            return load_ts_folder(p, limits)
        return load_uci_folder(p, steps, features_per_step, limits)
    if suffix == ".ts":
        return load_ts_file(p, limits)
    if suffix == ".zip":
        if is_ts:
            return load_ts_zip(p, limits)
        return load_uci_zip(p, steps, features_per_step, limits)
    if suffix == ".csv":
        return load_csv(p, label_column, steps, features_per_step, limits)
    if suffix == ".npz":
        return load_npz(p, steps, features_per_step, limits)
    raise DatasetError(
        f"{p.name}: unsupported dataset type {suffix or '(no extension)'!r}; "
        "expected a UCI folder, .zip, .csv, .npz or .ts"
    )


def _zip_holds_ts(path: Path) -> bool:
    """Whether a zip holds NAME_TRAIN.ts (else it is read as a UCI folder)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return has_ts_split(archive.namelist())
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        return False  # the UCI loader reports the unreadable archive


