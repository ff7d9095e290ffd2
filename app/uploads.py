"""Streaming multipart parsing: file parts go to disk chunk by chunk, never whole in memory.

Past ``max_file_bytes`` the request is refused with 413. The rest of the body, up to
:data:`DRAIN_BYTES` within :data:`DRAIN_SECONDS`, is read and dropped first: a server that
closes while the client is still sending makes the kernel answer with a reset, and clients
that send the whole body before reading (Python's urllib) then see "connection reset by peer"
instead of the 413. Past that bound the connection is closed anyway (``Connection: close``).

:func:`receive_upload` is the HTTP side of every dataset upload: it streams the body to a
private folder and hands the file to :func:`app.service.ingest`.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable

from fastapi import HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect

from app.service import ingest
from worker.jobs import DatasetMeta, Store
from worker.settings import Settings

__all__ = ["CLOSE", "DRAIN_BYTES", "StreamedFile", "StreamedForm", "drain", "parse_multipart", "receive_upload",
           "safe_filename"]

#: How much of a refused body is read and dropped before answering (see the module doc).
DRAIN_BYTES = 64 << 20
DRAIN_SECONDS = 10.0
#: Headers of a refusal after which the connection is not reused.
CLOSE = {"Connection": "close"}


async def drain(request: Request, limit: int = DRAIN_BYTES, seconds: float = DRAIN_SECONDS) -> None:
    """Read and drop the rest of the request body, at most ``limit`` bytes for ``seconds``."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return  # too much to read for nothing: the client meets a closed connection
    received = 0
    try:
        async with asyncio.timeout(seconds):
            async for chunk in request.stream():
                received += len(chunk)
                if received > limit:
                    return
    except (TimeoutError, ClientDisconnect, RuntimeError):  # RuntimeError: already read to its end
        return

_MAX_FIELD_BYTES = 1 << 20
_MAX_PARTS = 16


@dataclass
class StreamedFile:
    filename: str
    path: Path
    size: int = 0
    sha256: str = ""


@dataclass
class StreamedForm:
    files: dict[str, StreamedFile] = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)


def safe_filename(name: str) -> str:
    """The last path component with anything unusual replaced by ``_``."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = re.sub(r"[^A-Za-z0-9._-]", "_", base).lstrip(".")[:100]
    return base or "upload"


def too_large(limit: int) -> HTTPException:
    return HTTPException(413, f"upload larger than the limit of {limit / (1 << 20):g} MB (RNTK_MAX_UPLOAD_MB)",
                         headers=CLOSE)


class _FormWriter:
    """python-multipart's callbacks for one form: file parts to disk, text fields in memory."""

    def __init__(self, folder: Path, max_file_bytes: int) -> None:
        self.folder, self.max_file_bytes = folder, max_file_bytes
        self.form = StreamedForm()
        self.headers: dict[str, bytes] = {}
        self.field, self.value = b"", b""
        self.name = ""
        self.file: StreamedFile | None = None
        self.handle: BinaryIO | None = None
        self.digest = hashlib.sha256()
        self.buffer = bytearray()
        self.parts = 0
        self.file_bytes = 0

    def callbacks(self) -> dict[str, Callable[..., None]]:
        return {"on_part_begin": self.on_part_begin, "on_part_data": self.on_part_data,
                "on_part_end": self.on_part_end, "on_header_field": self.on_header_field,
                "on_header_value": self.on_header_value, "on_header_end": self.on_header_end,
                "on_headers_finished": self.on_headers_finished}

    def on_part_begin(self) -> None:
        self.headers = {}
        self.parts += 1
        if self.parts > _MAX_PARTS:
            raise HTTPException(400, f"more than {_MAX_PARTS} form parts")

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.value += data[start:end]

    def on_header_end(self) -> None:
        self.headers[self.field.decode("latin-1").lower()] = self.value
        self.field, self.value = b"", b""

    def on_headers_finished(self) -> None:
        _, disposition = parse_options_header(self.headers.get("content-disposition", b""))
        name = disposition.get(b"name", b"").decode("utf-8", "replace")
        self.name = name
        if name in self.form.files or name in self.form.fields:
            raise HTTPException(422, f"the multipart field {name!r} appears more than once; send exactly one "
                                     f"{'file' if b'filename' in disposition else 'value'} as {name!r}")
        if b"filename" in disposition:
            filename = disposition[b"filename"].decode("utf-8", "replace")
            path = self.folder / f"part{self.parts}"
            self.file = StreamedFile(filename=filename, path=path)
            self.handle = open(path, "wb")
            self.digest = hashlib.sha256()
        else:
            self.file = None
            self.buffer = bytearray()

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self.file is not None:
            self.file.size += len(chunk)
            self.file_bytes += len(chunk)
            if self.file_bytes > self.max_file_bytes:  # all file parts together: the limit is the request's
                raise too_large(self.max_file_bytes)
            self.handle.write(chunk)
            self.digest.update(chunk)
        else:
            self.buffer += chunk
            if len(self.buffer) > _MAX_FIELD_BYTES:
                raise HTTPException(413, f"form field {self.name!r} is over 1 MB")

    def on_part_end(self) -> None:
        if self.file is not None:
            self.close()
            self.file.sha256 = self.digest.hexdigest()
            self.form.files[self.name] = self.file
        else:
            self.form.fields[self.name] = self.buffer.decode("utf-8", "replace")

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None


async def parse_multipart(request: Request, folder: Path, max_file_bytes: int) -> StreamedForm:
    """Parse a multipart/form-data body, writing file parts under ``folder``."""
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or b"boundary" not in options:
        raise HTTPException(415, "expected a multipart/form-data body with a 'file' field")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_file_bytes + _MAX_FIELD_BYTES:
        await drain(request)
        raise too_large(max_file_bytes)
    writer = _FormWriter(folder, max_file_bytes)
    parser = MultipartParser(options[b"boundary"], writer.callbacks())
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except HTTPException:
        await drain(request)  # so that the client reads this answer (see the module doc)
        raise
    except Exception as exc:  # python-multipart's parse errors
        await drain(request)
        raise HTTPException(400, f"malformed multipart body: {exc}") from None
    finally:
        writer.close()
    return writer.form


async def receive_upload(request: Request, store: Store, settings: Settings, owner: str,
                         ) -> tuple[DatasetMeta, dict[str, str]]:
    """Stream a multipart body to a private folder and ingest its ``file`` as a dataset
    (:func:`app.service.ingest`); also its text fields. ``POST /datasets``, ``POST /jobs``
    (multipart) and the page form all upload through here."""
    folder = store.upload_tmp()
    try:
        form = await parse_multipart(request, folder, settings.max_upload_bytes)
        upload = form.files.get("file")
        if upload is None:
            raise HTTPException(422, "missing the multipart field 'file'")
        named = folder / safe_filename(upload.filename)
        upload.path.rename(named)
        meta = await run_in_threadpool(ingest, store, settings, owner, named, sha256=upload.sha256, size=upload.size)
        return meta, form.fields
    finally:
        shutil.rmtree(folder, ignore_errors=True)
