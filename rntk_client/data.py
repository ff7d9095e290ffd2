"""What a job is made of, as the client sends it: the dataset upload and the config.

A dataset is a file (.csv, .npz, .ts, .zip) sent as is, a folder zipped on the fly, or
in-memory arrays packed as the ``.npz`` the service reads (``X`` (N, T) or (N, T, m), ``y``
(N,), optional ``lengths`` (N,) and predefined splits; see
``rntk_core/evaluation/datasets/npz.py``). NumPy is imported only for arrays, so the CLI
starts without it.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import IO, Any, Union

from rntk_client.api import ClientError

__all__ = ["Data", "MEDIA_TYPES", "payload", "file_payload", "arrays_payload", "load_config"]

MEDIA_TYPES = {".csv": "text/csv", ".npz": "application/octet-stream", ".zip": "application/zip",
               ".ts": "text/plain"}

#: A dataset to upload: a path (file or folder), ``(X, y)`` / ``(X, y, lengths)``, or a mapping
#: of the .npz's arrays by name (``X``, ``y``, ``lengths``, ``train``, ``validation``, ``fold0_train``...).
Data = Union[str, "os.PathLike[str]", tuple, list, Mapping]

#: (file name, binary file object, media type): one multipart ``file`` field.
Payload = tuple[str, IO[bytes], str]


def payload(data: Data, name: str | None = None) -> Payload:
    """The upload for ``data``: a path as :func:`file_payload`, arrays as :func:`arrays_payload`."""
    if isinstance(data, (str, os.PathLike)):
        return file_payload(Path(data))
    if isinstance(data, Mapping):
        return arrays_payload(dict(data), name)
    if isinstance(data, (tuple, list)) and len(data) in (2, 3):
        arrays = dict(zip(("X", "y", "lengths"), data))
        if arrays.get("lengths") is None:
            arrays.pop("lengths", None)
        return arrays_payload(arrays, name)
    raise ClientError("data must be a path (a .csv, .npz, .ts or .zip file, or a dataset folder), "
                      f"(X, y), (X, y, lengths) or a mapping of arrays; got {type(data).__name__}")


def file_payload(data: Path) -> Payload:
    """A file as is, a folder zipped (its name kept as the archive's top folder)."""
    if data.is_dir():
        files = sorted(p for p in data.rglob("*") if p.is_file() and not p.name.startswith("."))
        if not files:
            raise ClientError(f"{data} is an empty folder")
        spool = tempfile.SpooledTemporaryFile(max_size=64 << 20)
        with zipfile.ZipFile(spool, "w", zipfile.ZIP_DEFLATED) as archive:
            for file in files:
                archive.write(file, str(PurePosixPath(data.name, *file.relative_to(data).parts)))
        spool.seek(0)
        return f"{data.name or 'data'}.zip", spool, "application/zip"
    if not data.is_file():
        raise ClientError(f"{data}: no such file or folder")
    suffix = data.suffix.lower()
    if suffix not in MEDIA_TYPES:
        raise ClientError(f"{data}: expected a .csv, .npz, .ts or .zip file, or a dataset folder")
    return data.name, open(data, "rb"), MEDIA_TYPES[suffix]


def arrays_payload(arrays: dict[str, Any], name: str | None = None) -> Payload:
    """Arrays by name as ``NAME.npz`` (no pickles: strings stay strings, objects are refused).

    ``X``: (N, T) rows of T steps with one feature each, or (N, T, m) sequences; ``y``: (N,)
    labels, numbers or strings; ``lengths``: (N,) lengths of front-padded sequences. The
    dataset is named ``name`` (default ``arrays``).
    """
    import io

    import numpy as np

    missing = [key for key in ("X", "y") if arrays.get(key) is None]
    if missing:
        raise ClientError(f"the arrays need {' and '.join(missing)}")
    packed: dict[str, np.ndarray] = {}
    for key, value in arrays.items():
        array = np.asarray(value)
        if array.dtype.kind == "O":
            try:  # e.g. a pandas column of strings, or a list of lists of numbers
                array = array.astype(str) if key == "y" else array.astype(np.float64)
            except (TypeError, ValueError):
                raise ClientError(f"array {key!r} holds Python objects that are not "
                                  f"{'strings' if key == 'y' else 'numbers'}") from None
        if array.dtype.kind not in "biufUS":
            raise ClientError(f"array {key!r} has dtype {array.dtype}; numbers (or strings for y) are needed")
        packed[key] = array
    stem = name or "arrays"
    if not stem or any(c in stem for c in "/\\\0") or stem in (".", ".."):
        raise ClientError(f"name {name!r} cannot name a file")
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **packed)
    buffer.seek(0)
    return f"{stem}.npz", buffer, MEDIA_TYPES[".npz"]


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def load_config(value: Any, what: str = "config") -> dict:
    """The evaluation config as a dict: a mapping (or a pydantic model) as is, inline JSON (a
    string starting with ``{``), or the path of a JSON file. ``what`` names it in errors."""
    if value is None or value == "":
        return {}
    if hasattr(value, "model_dump"):  # an EvaluationConfig
        value = value.model_dump(mode="json", exclude_unset=True)
    if isinstance(value, Mapping):
        try:  # plain JSON types now (NumPy numbers and arrays become numbers and lists)
            return json.loads(json.dumps(dict(value), default=_plain))
        except (TypeError, ValueError) as exc:
            raise ClientError(f"{what} cannot be sent as JSON: {exc}") from None
    inline = isinstance(value, str) and value.lstrip().startswith(("{", "["))
    text = str(value) if isinstance(value, (str, os.PathLike)) else None
    if text is None:
        raise ClientError(f"{what} must be a mapping, a JSON file or inline JSON; got {type(value).__name__}")
    if not inline:
        path = Path(value)
        if not path.is_file():
            raise ClientError(f"{what} {str(value)!r}: no such file, and not inline JSON "
                              "(inline JSON starts with '{', e.g. --config '{\"families\": [\"RNN\"]}')")
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise ClientError(f"cannot read config {value}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ClientError(f"config {'(inline)' if inline else value} is not valid JSON: "
                          f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(config, dict):
        raise ClientError(f"config {'(inline)' if inline else value} must be a JSON object "
                          f"like {{\"families\": [\"RNN\"]}}, got {type(config).__name__}")
    return config
