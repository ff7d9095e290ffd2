"""Streaming multipart parsing: file parts go to disk chunk by chunk, never whole in memory.

Hostile or broken clients are bounded (issue 17): at most ``RNTK_MAX_CONCURRENT_UPLOADS``
uploads are received and parsed at once (more get 503 with ``Retry-After``); a body that
sends nothing for ``RNTK_UPLOAD_IDLE_TIMEOUT_S`` gets 408; part headers are at most 16 KB;
a zip or ``.npz`` that unpacks to more than the upload limit is refused (413) before any of
it is extracted; and the upload's private folder is removed whatever happens. The parse runs
in a separate process (:func:`in_parse_process`), reading the file as a stream
(:mod:`rntk_core.evaluation.datasets`), so other requests are answered meanwhile and the
API's memory does not grow with the upload. (Slow or idle *headers* never reach the app: see
:mod:`rntk_launcher.serve`.)

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
import contextlib
import hashlib
import logging
import multiprocessing
import os
import re
import shutil
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, BinaryIO, Callable, TypeVar

from fastapi import HTTPException, Request
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect

from app.service import ServiceError, ingest
from worker.jobs import DatasetMeta, Store
from worker.settings import Settings

__all__ = ["CLOSE", "DRAIN_BYTES", "StreamedFile", "StreamedForm", "UnpacksTooLarge", "UploadSlots", "body_chunks",
           "drain", "in_parse_process", "ingest_upload", "parse_multipart", "receive_upload", "safe_filename",
           "start_parse_processes"]

log = logging.getLogger("rntk.uploads")
T = TypeVar("T")

#: How much of a refused body is read and dropped before answering (see the module doc).
DRAIN_BYTES = 64 << 20
DRAIN_SECONDS = 10.0
#: Headers of a refusal after which the connection is not reused.
CLOSE = {"Connection": "close"}


async def drain(request: Request, limit: int = DRAIN_BYTES, seconds: float = DRAIN_SECONDS) -> None:
    """Read and drop the rest of the request body, at most ``limit`` bytes for ``seconds``."""
    if getattr(request.state, "body_ended", False):
        return  # read to its end already: a receive() now would wait for the client to leave
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
_MAX_PART_HEADER_BYTES = 16 << 10
#: Seconds a client refused with 503 (all upload slots busy) is told to wait.
RETRY_AFTER_S = 5


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
        self._check_header()

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.value += data[start:end]
        self._check_header()

    def _check_header(self) -> None:
        if len(self.field) + len(self.value) > _MAX_PART_HEADER_BYTES:
            raise HTTPException(400, f"a form part's header is over {_MAX_PART_HEADER_BYTES >> 10} KB")

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


async def body_chunks(request: Request, idle_timeout_s: float) -> AsyncIterator[bytes]:
    """The request body chunk by chunk, as ``request.stream()``, but each chunk must arrive
    within ``idle_timeout_s`` of the last: a client that stops sending gets 408 (and the
    connection is closed) instead of holding a connection, an upload slot and a partial
    file for ever."""
    while True:
        try:
            async with asyncio.timeout(idle_timeout_s):
                message = await request.receive()
        except TimeoutError:
            raise HTTPException(408, f"the upload sent nothing for {idle_timeout_s:g} s "
                                     "(RNTK_UPLOAD_IDLE_TIMEOUT_S); nothing was stored", headers=CLOSE) from None
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        ended = not message.get("more_body", False)
        if ended:  # before the yield: the parser may refuse this last chunk (drain reads this)
            request.state.body_ended = True
        if chunk:
            yield chunk
        if ended:
            return


async def parse_multipart(request: Request, folder: Path, max_file_bytes: int,
                          idle_timeout_s: float = 30.0) -> StreamedForm:
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
        async for chunk in body_chunks(request, idle_timeout_s):
            parser.write(chunk)
        parser.finalize()
    except HTTPException as exc:
        if exc.status_code != 408:  # a stalled client is not waited for again
            await drain(request)  # so that the client reads this answer (see the module doc)
        raise
    except ClientDisconnect:
        raise HTTPException(400, "the client closed the connection before the upload was complete") from None
    except Exception as exc:  # python-multipart's parse errors
        await drain(request)
        raise HTTPException(400, f"malformed multipart body: {exc}") from None
    finally:
        writer.close()
    return writer.form


class UploadSlots:
    """How many uploads one app is receiving or parsing; at most ``limit`` at once. Used
    from the event loop only, so a counter is enough."""

    def __init__(self, limit: int) -> None:
        self.limit, self.busy = limit, 0

    @staticmethod
    def of(request: Request, settings: Settings) -> "UploadSlots":
        """The app's slots (made on its first upload)."""
        slots = getattr(request.app.state, "upload_slots", None)
        if slots is None:
            slots = request.app.state.upload_slots = UploadSlots(settings.max_concurrent_uploads)
        return slots

    @contextlib.asynccontextmanager
    async def hold(self, request: Request) -> AsyncIterator[None]:
        """One slot for the block, or 503 with ``Retry-After`` when all are busy."""
        if self.busy >= self.limit:
            log.warning("upload refused: %d uploads in progress (RNTK_MAX_CONCURRENT_UPLOADS)", self.busy)
            await drain(request)
            raise HTTPException(503, f"{self.busy} uploads are in progress, the most this server takes at once "
                                     f"(RNTK_MAX_CONCURRENT_UPLOADS); try again in {RETRY_AFTER_S} s",
                                headers={"Retry-After": str(RETRY_AFTER_S), **CLOSE})
        self.busy += 1
        try:
            yield
        finally:
            self.busy -= 1


async def receive_upload(request: Request, store: Store, settings: Settings, owner: str,
                         ) -> tuple[DatasetMeta, dict[str, str]]:
    """Stream a multipart body to a private folder and ingest its ``file`` as a dataset
    (:func:`ingest_upload`, in a parse process); also its text fields. ``POST /datasets``,
    ``POST /jobs`` (multipart) and the page form all upload through here."""
    async with UploadSlots.of(request, settings).hold(request):
        folder = store.upload_tmp()
        try:
            form = await parse_multipart(request, folder, settings.max_upload_bytes, settings.upload_idle_timeout_s)
            upload = form.files.get("file")
            if upload is None:
                raise HTTPException(422, "missing the multipart field 'file'")
            named = folder / safe_filename(upload.filename)
            upload.path.rename(named)
            meta = await in_parse_process(settings, ingest_upload, str(store.root), settings, owner, named,
                                          sha256=upload.sha256, size=upload.size)
            return meta, form.fields
        finally:
            remove_folder(folder)


class UnpacksTooLarge(ServiceError):
    """A zip or ``.npz`` that unpacks to more than the upload limit (413)."""

    status_code = 413


def ingest_upload(data_dir: str, settings: Settings, owner: str, path: Path, *, sha256: str, size: int,
                  ) -> DatasetMeta:
    """:func:`app.service.ingest` of an uploaded file, after refusing a zip that unpacks past
    the upload limit (nothing extracted), then saving the arrays it parsed beside the stored
    dataset (``parsed/``) unless they are there already. Blocking, and CPU-bound for large
    files: :func:`receive_upload` runs it in a parse process."""
    from rntk_core.evaluation.datasets import recording_loads
    from rntk_core.evaluation.datasets.archive import unpacked_bytes

    if path.suffix.lower() in (".zip", ".npz"):
        unpacked = unpacked_bytes(path)
        if unpacked is not None and unpacked > settings.max_upload_bytes:
            raise UnpacksTooLarge(f"{path.name} unpacks to {unpacked} bytes, over the upload limit of "
                                  f"{settings.max_upload_bytes / (1 << 20):g} MB (RNTK_MAX_UPLOAD_MB); "
                                  "nothing was extracted")
    store = Store(data_dir)
    with recording_loads() as loaded:  # ingest parses the file once, to validate it: keep that parse
        meta = ingest(store, settings, owner, path, sha256=sha256, size=size)
    if loaded:
        keep_parsed(store, owner, meta, loaded[-1])
    return meta


# Parsing is CPU-bound Python: in a thread of the API it held the GIL, and /healthz waited
# seconds behind four parses. In processes, the API keeps its latency and its memory (a parse
# holds about twice the parsed arrays), and a parse that is killed (out of memory) takes
# only its process. The processes fork from a forkserver that has imported this module, so
# a new one starts in milliseconds; one pool per process, as large as the largest upload
# cap asked for.
_pools: dict[int, ProcessPoolExecutor] = {}


def _parse_pool(size: int) -> ProcessPoolExecutor:
    pool = _pools.get(size)
    if pool is None:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["app.uploads"])
        pool = _pools[size] = ProcessPoolExecutor(max_workers=size, mp_context=context)
    return pool


def start_parse_processes(settings: Settings) -> None:
    """Start the parse processes now rather than at the first upload (their forkserver imports
    this module: about a second of CPU, which the first upload otherwise waits for). Blocks
    about half a second, while the forkserver starts; for the app's startup."""
    _parse_pool(settings.max_concurrent_uploads).submit(int)


async def in_parse_process(settings: Settings, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``function(*args, **kwargs)`` in one of the parse processes; its exceptions re-raised here."""
    size = settings.max_concurrent_uploads
    try:
        pool = _parse_pool(size)
        # submit() starts the processes it needs, and the forkserver first: not in the event loop
        future = await asyncio.to_thread(pool.submit, function, *args, **kwargs)
        return await asyncio.wrap_future(future)
    except BrokenProcessPool:
        _pools.pop(size, None)  # the next upload starts a fresh pool
        log.error("an upload's parse process died (out of memory?)")
        raise HTTPException(500, "the upload's parse process died (out of memory?); nothing was stored") from None


def keep_parsed(store: Store, owner: str, meta: DatasetMeta, dataset: object) -> None:
    """Save ``dataset``'s arrays in its stored folder for the workers to memory-map. A failure
    (a full disk) leaves the upload stored without them: jobs then parse the file instead."""
    from rntk_core.evaluation.datasets import DatasetError, save_parsed

    source = store.dataset_file(owner, meta.id)
    if source is None:
        return
    try:
        save_parsed(dataset, source.parent, source=source)  # type: ignore[arg-type]
    except (OSError, DatasetError) as exc:
        log.warning("dataset %s stored without its parsed arrays (jobs will parse the file): %s", meta.id, exc)


def remove_folder(folder: Path) -> None:
    """Remove an upload's private folder. ``shutil.rmtree`` needs file descriptors, which a
    flood of connections can exhaust (1,009 empty upload folders were left so): an empty
    folder, or files named in it, go without one."""
    shutil.rmtree(folder, ignore_errors=True)
    if not folder.exists():
        return
    with contextlib.suppress(OSError):
        for name in os.listdir(folder):
            with contextlib.suppress(OSError):
                os.unlink(folder / name)
    with contextlib.suppress(OSError):
        os.rmdir(folder)
    if folder.exists():
        log.warning("could not remove the upload folder %s; the tmp sweep will", folder.name)
