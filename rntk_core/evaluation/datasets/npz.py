"""`.npz` archives of X, y, optional lengths and splits, read without pickles."""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np

from .common import (
    N_FOLDS,
    SPLIT_KEYS,
    Dataset,
    DatasetError,
    DatasetLimits,
    Splits,
    check_size,
    finish,
    first_nonfinite,
    indices,
)

_NPZ_KEYS: frozenset[str] = frozenset({"X", "y", "lengths", *SPLIT_KEYS})

def load_npz(path: Path, steps: int | None, features_per_step: int, limits: DatasetLimits) -> Dataset:
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
    check_size(n, t, m, where, limits)
    X = X.astype(np.float64, copy=False)  # no second copy of an X already float64
    bad = first_nonfinite(X)
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

    present = [key for key in SPLIT_KEYS if key in arrays]
    splits = None
    if present:
        missing = [key for key in SPLIT_KEYS if key not in arrays]
        if missing:
            raise DatasetError(f"{where}: predefined splits are incomplete; missing {', '.join(missing)}")
        parts = {key: _npz_indices(arrays[key], n, f"{where}: '{key}'") for key in SPLIT_KEYS}
        splits = Splits(
            train=parts["train"],
            validation=parts["validation"],
            folds=[(parts[f"fold{k}_train"], parts[f"fold{k}_test"]) for k in range(N_FOLDS)],
        )
    sources = {key: f"{where} '{key}'" for key in SPLIT_KEYS}
    return finish(X, y, path.stem, "npz", lengths=lengths, splits=splits, split_sources=sources)


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
    return indices(values, n, where)

