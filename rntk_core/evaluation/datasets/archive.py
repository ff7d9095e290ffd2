"""Safe extraction of zip archives: no escaping paths, links, bombs or encrypted entries."""

from __future__ import annotations

import re
import stat
import tempfile
import zipfile
import zlib
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Iterator


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


