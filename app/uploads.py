"""Streaming multipart parsing: file parts go to disk chunk by chunk, never whole in memory.

Past ``max_file_bytes`` the request is refused with 413. The rest of the body, up to
:data:`DRAIN_BYTES` within :data:`DRAIN_SECONDS`, is read and dropped first: a server that
closes while the client is still sending makes the kernel answer with a reset, and clients
that send the whole body before reading (Python's urllib) then see "connection reset by peer"
instead of the 413. Past that bound the connection is closed anyway (``Connection: close``).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import HTTPException, Request
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect

__all__ = ["CLOSE", "DRAIN_BYTES", "StreamedFile", "StreamedForm", "drain", "parse_multipart", "safe_filename"]

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


async def parse_multipart(request: Request, folder: Path, max_file_bytes: int) -> StreamedForm:
    """Parse a multipart/form-data body, writing file parts under ``folder``."""
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or b"boundary" not in options:
        raise HTTPException(415, "expected a multipart/form-data body with a 'file' field")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_file_bytes + _MAX_FIELD_BYTES:
        await drain(request)
        raise too_large(max_file_bytes)

    form = StreamedForm()
    state: dict = {"headers": {}, "field": b"", "value": b"", "name": None, "file": None,
                   "handle": None, "digest": None, "buffer": bytearray(), "parts": 0}

    def on_part_begin() -> None:
        state["headers"] = {}
        state["parts"] += 1
        if state["parts"] > _MAX_PARTS:
            raise HTTPException(400, f"more than {_MAX_PARTS} form parts")

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["value"] += data[start:end]

    def on_header_end() -> None:
        state["headers"][state["field"].decode("latin-1").lower()] = state["value"]
        state["field"], state["value"] = b"", b""

    def on_headers_finished() -> None:
        _, disposition = parse_options_header(state["headers"].get("content-disposition", b""))
        name = disposition.get(b"name", b"").decode("utf-8", "replace")
        state["name"] = name
        if name in form.files or name in form.fields:
            raise HTTPException(422, f"the multipart field {name!r} appears more than once; send exactly one "
                                     f"{'file' if b'filename' in disposition else 'value'} as {name!r}")
        if b"filename" in disposition:
            filename = disposition[b"filename"].decode("utf-8", "replace")
            path = folder / f"part{state['parts']}"
            state["file"] = StreamedFile(filename=filename, path=path)
            state["handle"] = open(path, "wb")
            state["digest"] = hashlib.sha256()
        else:
            state["file"] = None
            state["buffer"] = bytearray()

    def on_part_data(data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if state["file"] is not None:
            state["file"].size += len(chunk)
            if state["file"].size > max_file_bytes:
                raise too_large(max_file_bytes)
            state["handle"].write(chunk)
            state["digest"].update(chunk)
        else:
            state["buffer"] += chunk
            if len(state["buffer"]) > _MAX_FIELD_BYTES:
                raise HTTPException(413, f"form field {state['name']!r} is over 1 MB")

    def on_part_end() -> None:
        if state["file"] is not None:
            state["handle"].close()
            state["handle"] = None
            state["file"].sha256 = state["digest"].hexdigest()
            form.files[state["name"]] = state["file"]
        else:
            form.fields[state["name"]] = state["buffer"].decode("utf-8", "replace")

    parser = MultipartParser(options[b"boundary"], {
        "on_part_begin": on_part_begin, "on_part_data": on_part_data, "on_part_end": on_part_end,
        "on_header_field": on_header_field, "on_header_value": on_header_value,
        "on_header_end": on_header_end, "on_headers_finished": on_headers_finished,
    })
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
        if state["handle"] is not None:
            state["handle"].close()
    return form
