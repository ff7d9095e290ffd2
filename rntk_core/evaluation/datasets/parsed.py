"""Parsed datasets kept as ``.npy`` files beside their source, for workers to memory-map.

An upload is parsed once, when it is validated; :func:`save_parsed` then writes its arrays
to ``<folder>/parsed/``, and a job reads them with :func:`load_for_job`: ``X`` is a
read-only memory map (``np.load(..., mmap_mode="r")``), so a worker touches only the rows
it uses and no worker parses the source again (10^6 series took each worker the whole
parse, and the whole array in memory, before).

Layout of ``parsed/`` (written to a temporary sibling and renamed, so it is whole or absent):

- ``manifest.json``: ``version``, ``name``, ``format``, ``shape`` (N, T, m), ``selection``,
  ``n_folds``, and ``source``: the name and size of the file it was parsed from;
- ``X.npy`` (N, T, m) float64, as :func:`load_dataset` returns it with ``features_per_step=1``;
- ``y.npy`` (N,) int64, ``classes.npy`` (c,) numbers or strings, ``lengths.npy`` (N,) if any;
- ``split_<part>.npy`` for each part of :meth:`Splits.parts` if the dataset has splits.

Datasets stored before these files existed have no ``parsed/``: :func:`load_for_job` then
parses the source with :func:`load_dataset`, as every job did before.
"""

from __future__ import annotations

import json
import mmap
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .common import SPLIT_KEYS, Dataset, DatasetError, DatasetLimits, Splits, check_size

__all__ = ["PARSED", "is_memory_mapped", "load_for_job", "load_parsed", "save_parsed"]

#: The folder, beside the source file, that holds the parsed arrays.
PARSED = "parsed"
_VERSION = 1
_MANIFEST = "manifest.json"


def save_parsed(dataset: Dataset, folder: str | Path, source: str | Path | None = None) -> Path:
    """Write ``dataset``'s arrays to ``folder/parsed/``; returns that folder.

    ``dataset`` must be what :func:`load_dataset` returned for ``source`` with
    ``features_per_step=1`` (the layout :func:`load_for_job` reshapes from). ``source``, the
    file it was parsed from, is recorded (name and size) so that the arrays are used only
    beside that file. An existing complete ``parsed/`` is kept (two identical uploads may
    race here; the first rename wins).
    """
    folder = Path(folder)
    target = folder / PARSED
    if _manifest(target) is not None:
        return target
    if dataset.classes.dtype.hasobject:
        raise DatasetError(f"{dataset.name}: classes of dtype object cannot be stored without pickles")
    source_path = Path(source) if source is not None else None
    manifest = {
        "version": _VERSION, "name": dataset.name, "format": dataset.format, "shape": list(dataset.X.shape),
        "selection": dataset.splits.selection if dataset.splits else None,
        "n_folds": len(dataset.splits.folds) if dataset.splits else 0,
        "lengths": dataset.lengths is not None,
        "source": {"name": source_path.name, "size": source_path.stat().st_size} if source_path else None,
    }
    staging = Path(tempfile.mkdtemp(prefix=f".{PARSED}-", dir=folder))
    try:
        np.save(staging / "X.npy", dataset.X, allow_pickle=False)
        np.save(staging / "y.npy", dataset.y, allow_pickle=False)
        np.save(staging / "classes.npy", dataset.classes, allow_pickle=False)
        if dataset.lengths is not None:
            np.save(staging / "lengths.npy", dataset.lengths, allow_pickle=False)
        if dataset.splits is not None:
            for part, indices in dataset.splits.parts():
                np.save(staging / f"split_{part}.npy", indices, allow_pickle=False)
        (staging / _MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")  # last: marks it complete
        try:
            os.rename(staging, target)
        except OSError:
            if _manifest(target) is None:  # not a concurrent writer's complete copy
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def load_parsed(folder: str | Path, mmap: bool = True) -> Dataset:
    """The dataset stored by :func:`save_parsed` in ``folder`` (the ``parsed/`` folder, or the
    folder that holds it). With ``mmap`` its ``X`` is a read-only memory map of ``X.npy``;
    the other arrays (N integers at most) are read into memory.

    Raises:
        DatasetError: no complete, readable ``parsed/`` there.
    """
    folder = Path(folder)
    if folder.name != PARSED and (folder / PARSED).is_dir():
        folder = folder / PARSED
    manifest = _manifest(folder)
    if manifest is None:
        raise DatasetError(f"{folder}: no parsed dataset (manifest missing, unreadable or of another version)")
    try:
        X = np.load(folder / "X.npy", mmap_mode="r" if mmap else None, allow_pickle=False)
        y = np.load(folder / "y.npy", allow_pickle=False)
        classes = np.load(folder / "classes.npy", allow_pickle=False)
        lengths = np.load(folder / "lengths.npy", allow_pickle=False) if manifest["lengths"] else None
        splits = None
        if manifest["selection"] is not None:
            parts = {key: np.load(folder / f"split_{key}.npy", allow_pickle=False)
                     for key in SPLIT_KEYS[: 2 + 2 * int(manifest["n_folds"])]}
            splits = Splits(train=parts["train"], validation=parts["validation"],
                            folds=[(parts[f"fold{k}_train"], parts[f"fold{k}_test"])
                                   for k in range(int(manifest["n_folds"]))],
                            selection=manifest["selection"])
    except (OSError, ValueError, KeyError) as exc:
        raise DatasetError(f"{folder}: a parsed array is missing or unreadable ({exc})") from exc
    if list(X.shape) != manifest["shape"]:
        raise DatasetError(f"{folder}: X.npy has shape {X.shape}, the manifest says {tuple(manifest['shape'])}")
    return Dataset(X=X, y=y, classes=classes, name=manifest["name"], format=manifest["format"],
                   lengths=lengths, splits=splits)


def load_for_job(path: str | Path, features_per_step: int = 1, limits: DatasetLimits = DatasetLimits()) -> Dataset:
    """The dataset of ``path`` (a stored dataset's file) as ``load_dataset(path,
    features_per_step=..., limits=...)`` returns it, from the memory-mapped arrays of
    ``parsed/`` beside it where they were saved from this file and give the same result;
    else (a dataset stored before ``parsed/`` existed, a shape or limit the arrays do not
    meet) from :func:`load_dataset`, which also raises its errors.

    Raises:
        DatasetError: as :func:`load_dataset`.
    """
    path = Path(path)
    from . import load_dataset  # the package imports this module

    dataset = _from_parsed(path, features_per_step, limits)
    if dataset is not None:
        return dataset
    return load_dataset(path, features_per_step=features_per_step, limits=limits)


def is_memory_mapped(array: np.ndarray) -> bool:
    """Whether ``array``'s memory is a file's memory map (a view of ``np.load(mmap_mode=...)``)."""
    base: object = array
    while base is not None:
        if isinstance(base, mmap.mmap):
            return True
        base = getattr(base, "base", None)
    return False


def _from_parsed(path: Path, features_per_step: int, limits: DatasetLimits) -> Dataset | None:
    """The dataset from ``parsed/`` beside ``path``, or None where that would differ from
    what :func:`load_dataset` returns for ``path``."""
    folder = path.parent / PARSED
    manifest = _manifest(folder)
    if manifest is None or not isinstance(features_per_step, int) or features_per_step < 1:
        return None
    source = manifest.get("source") or {}
    try:
        if source.get("name") != path.name or source.get("size") != path.stat().st_size:
            return None
    except OSError:
        return None
    n, t, m = manifest["shape"]
    if manifest["format"] in ("csv", "uci"):  # rows of t values: m = features_per_step values per step
        if m != 1 or t % features_per_step:
            return None
        t, m = t // features_per_step, features_per_step
    elif features_per_step not in (1, m) or (manifest["format"] == "ts" and features_per_step != 1):
        return None  # load_dataset refuses these, with the message
    try:
        check_size(n, t, m, path.name, limits)
        dataset = load_parsed(folder)
    except DatasetError:
        return None
    if dataset.n_classes > limits.max_classes:
        return None
    if (t, m) == dataset.X.shape[1:]:
        return dataset
    return Dataset(X=dataset.X.reshape(n, t, m), y=dataset.y, classes=dataset.classes, name=dataset.name,
                   format=dataset.format, lengths=dataset.lengths, splits=dataset.splits)


def _manifest(folder: Path) -> dict | None:
    try:
        manifest = json.loads((folder / _MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("version") != _VERSION:
        return None
    return manifest

