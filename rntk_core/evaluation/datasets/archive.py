"""Safe extraction of zip archives: no escaping paths, links, bombs or encrypted entries."""

from __future__ import annotations

import hashlib
import re
import stat
import tempfile
import zipfile
import zlib
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Iterator


from .common import (
    MACOS_JUNK,
    DatasetError,
    DatasetLimits,
)

_COPY_CHUNK = 1 << 20

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


@contextmanager
def extracted(path: Path, limits: DatasetLimits) -> Iterator[Path]:
    """A zip archive safely extracted into a temporary folder, removed afterwards."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise DatasetError(f"{path.name}: not a readable zip archive ({exc})") from exc
    with archive, tempfile.TemporaryDirectory(prefix="rntk-dataset-") as tmp:
        root = Path(tmp)
        safe_extract(archive, root, path.name, limits)
        yield root


def safe_extract(archive: zipfile.ZipFile, root: Path, archive_name: str, limits: DatasetLimits) -> None:
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
        if parts and not info.is_dir() and parts[0] != MACOS_JUNK:
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




def unpacked_bytes(path: Path) -> int | None:
    """What a zip (or ``.npz``) unpacks to at most: the sum of its entries' declared sizes,
    from its central directory, without decompressing anything; None if it is not a zip.

    A bound, not an estimate: Python's zipfile never returns more of an entry than its
    declared size (it then fails the entry's CRC), and :func:`safe_extract` counts what it
    writes against the same sizes. So checking this number first refuses a zip bomb before a
    byte of it is extracted.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            return sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        return None


def _canonical_digest(entries: list[tuple[str, str]]) -> str:
    """One sha256 over sorted ``(relative path, sha256 of its bytes)`` lines."""
    digest = hashlib.sha256(b"rntk-folder-v1\n")
    for name, file_digest in sorted(entries):
        digest.update(f"{name}\t{file_digest}\n".encode())
    return digest.hexdigest()


def _counts(name: str) -> bool:
    """Whether an entry is part of the dataset (not a folder marker, macOS junk or hidden file)."""
    parts = PurePosixPath(name.replace("\\", "/")).parts
    return bool(parts) and parts[0] != MACOS_JUNK and not any(p.startswith(".") for p in parts)


def content_sha256(path: Path) -> str:
    """The dataset's identity: the same content gives the same hash, however it was packed.

    A ``.zip`` or a folder hashes its files' relative paths (the folder's own name first,
    as both ``python -m zipfile -c`` and ``rntk submit`` write it) and contents, in sorted
    order, so compression level, entry order and timestamps do not matter. Hidden files and
    ``__MACOSX`` are skipped, as the loaders skip them. Any other file hashes its bytes.
    """
    path = Path(path)
    if path.is_dir():
        entries = []
        for file in path.rglob("*"):
            relative = PurePosixPath(path.name, *file.relative_to(path).parts).as_posix()
            if file.is_file() and _counts(relative):
                entries.append((relative, _file_sha256(file.open("rb"))))
        return _canonical_digest(entries)
    if path.suffix.lower() == ".zip":
        try:
            with zipfile.ZipFile(path) as archive:
                entries = [(info.filename.replace("\\", "/"), _file_sha256(archive.open(info)))
                           for info in archive.infolist() if not info.is_dir() and _counts(info.filename)]
        except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError):
            entries = None  # not readable as a zip: the loader reports why; hash the bytes
        if entries is not None:
            return _canonical_digest(entries)
    return _file_sha256(path.open("rb"))


def _file_sha256(handle: BinaryIO) -> str:
    digest = hashlib.sha256()
    with handle:
        for chunk in iter(lambda: handle.read(_COPY_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()
