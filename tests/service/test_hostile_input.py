"""Hostile or large input (issue 17, item 3): zip bombs, stalled connections, too many uploads
at once, floods of identical log lines, and the parsed arrays an upload leaves for workers.

Each test failed on the code before the fix: the zip bomb was extracted (201), a stalled
body or header held its connection for ever, a sixth concurrent upload was taken, every
repeated line was written, and nothing but the uploaded file was stored.
"""

from __future__ import annotations

import io
import logging
import socket
import time
import zipfile
from pathlib import Path
from typing import Iterator

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from rntk_core.evaluation.datasets import DatasetLimits, is_memory_mapped, load_dataset, load_for_job
from worker.logs import RepeatFilter
from worker.settings import Settings

HERE = "http://127.0.0.1:8231"  # an allowed Host for the TestClient
CSV = b"a,b,c,d,label\n" + b"".join(b"%d,%d,%d,%d,%d\n" % (i, i * 3 % 7, i % 5, i * i % 11, i % 2) for i in range(60))


def _client(tmp_path: Path, **settings: object) -> TestClient:
    app = create_app(Settings(data_dir=str(tmp_path / "data"), compile_cache_mb=0, **settings), sweep=False)
    return TestClient(app, base_url=HERE)


def _uploads_left(data_dir: Path) -> list[str]:
    return [entry.name for entry in (data_dir / "tmp").iterdir() if entry.name.startswith("upload-")]


# ----------------------------------------------------------------------------- in-process


def _zip_bomb() -> bytes:
    """A zip of a valid dataset plus 5 MB of zeros: under 20 KB."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bomb:
        bomb.writestr("data/data.csv", CSV)
        bomb.writestr("data/padding.bin", b"\0" * (5 << 20))
    assert len(buffer.getvalue()) < 20_000
    return buffer.getvalue()


def test_a_zip_bomb_is_refused_before_anything_is_extracted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Against a 1 MB upload limit: 413 (before: extracted, and stored with 201), and the
    extractor is never called."""
    import rntk_core.evaluation.datasets.archive as archive
    from app.uploads import UnpacksTooLarge, ingest_upload

    with _client(tmp_path, max_upload_mb=1) as client:
        response = client.post("/datasets", files={"file": ("bomb.zip", _zip_bomb())})
        assert response.status_code == 413, response.text
        assert "unpacks to" in response.json()["detail"] and "nothing was extracted" in response.json()["detail"]
    assert _uploads_left(tmp_path / "data") == []
    assert not list((tmp_path / "data" / "datasets").rglob("*.zip"))

    def no_extraction(*args: object, **kwargs: object) -> None:
        raise AssertionError("the archive was extracted")

    monkeypatch.setattr(archive, "safe_extract", no_extraction)  # the same check, in this process
    path = tmp_path / "bomb.zip"
    path.write_bytes(_zip_bomb())
    settings = Settings(data_dir=str(tmp_path / "data"), max_upload_mb=1)
    with pytest.raises(UnpacksTooLarge, match="nothing was extracted"):
        ingest_upload(str(tmp_path / "data"), settings, "anonymous", path, sha256="0" * 64, size=path.stat().st_size)


def test_an_upload_stores_its_parsed_arrays_for_the_workers(tmp_path: Path) -> None:
    """POST /datasets leaves parsed/ beside the file; load_for_job memory-maps it, equal to a
    fresh parse, for every features_per_step the rows allow."""
    with _client(tmp_path) as client:
        response = client.post("/datasets", files={"file": ("rows.csv", CSV)})
        assert response.status_code == 201, response.text
        dataset_id = response.json()["id"]
        path = client.app.state.store.dataset_file("anonymous", dataset_id)
    assert path is not None and path.name == "rows.csv"
    assert (path.parent / "parsed" / "manifest.json").is_file()
    assert (path.parent / "parsed" / "X.npy").is_file()
    limits = DatasetLimits()
    for features_per_step in (1, 2, 4):
        mapped = load_for_job(path, features_per_step, limits)
        fresh = load_dataset(path, features_per_step=features_per_step, limits=limits)
        assert is_memory_mapped(mapped.X) and not mapped.X.flags.writeable
        assert mapped.X.shape == fresh.X.shape == (60, 4 // features_per_step, features_per_step)
        np.testing.assert_array_equal(mapped.X, fresh.X)
        np.testing.assert_array_equal(mapped.y, fresh.y)
        np.testing.assert_array_equal(mapped.classes, fresh.classes)
    assert _uploads_left(tmp_path / "data") == []


def test_repeated_log_lines_are_written_once_per_period_with_a_count() -> None:
    """10,500 stalled connections wrote 26 MB of the same lines; now once a minute, and the
    next line says how many were dropped."""
    now = [1000.0]
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    handler.addFilter(RepeatFilter(period_s=60, clock=lambda: now[0]))
    logger = logging.getLogger("rntk.test.repeats")
    logger.addHandler(handler)
    logger.propagate, level = False, logger.level
    logger.setLevel(logging.INFO)
    try:
        for _ in range(1000):
            logger.error("socket.accept() out of system resource")
        logger.warning("another message")
        logger.info("info lines are never held back")
        logger.info("info lines are never held back")
        now[0] += 61
        logger.error("socket.accept() out of system resource")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    messages = [(r.getMessage(), getattr(r, "suppressed", None)) for r in records]
    assert messages == [("socket.accept() out of system resource", None), ("another message", None),
                        ("info lines are never held back", None), ("info lines are never held back", None),
                        ("socket.accept() out of system resource", 999)]


# ------------------------------------------------------------------- a real rntk serve


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """One real ``rntk serve`` with short deadlines and a single upload slot."""
    from .conftest import Service

    import os
    import uuid

    root = tmp_path_factory.mktemp("hostile")
    (root / "logs").mkdir()
    env = {key: value for key, value in os.environ.items() if not key.startswith("RNTK_")}
    env.update({"RNTK_UPLOAD_IDLE_TIMEOUT_S": "1.5", "RNTK_HEADER_TIMEOUT_S": "1.5",
                "RNTK_MAX_CONCURRENT_UPLOADS": "1", "RNTK_SWEEP_S": "600", "JAX_PLATFORMS": "cpu",
                "PYTHONUNBUFFERED": "1", "RNTK_QUEUE": f"rntk-test-{uuid.uuid4().hex[:8]}"})
    service = Service(root / "data", env, root / "logs")
    try:
        service.start_server()
        yield service
    finally:
        service.close()


def _stalled_upload(service, body_bytes: int = 1000) -> socket.socket:
    """A connection that sends an upload's headers and ``body_bytes`` of its body, then stops."""
    boundary = "stall"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"rows.csv\"\r\n"
            f"Content-Type: text/csv\r\n\r\n").encode()
    sock = socket.create_connection(("127.0.0.1", service.port), timeout=10)
    sock.sendall((f"POST /datasets HTTP/1.1\r\nHost: 127.0.0.1:{service.port}\r\n"
                  f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
                  f"Content-Length: {len(head) + 1_000_000}\r\n\r\n").encode() + head + CSV[:body_bytes])
    return sock


def _read_until_closed(sock: socket.socket, timeout: float) -> tuple[bytes, float]:
    """What the server sent until it closed the connection, and how long that took."""
    start = time.monotonic()
    sock.settimeout(timeout)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except socket.timeout:
        raise AssertionError(f"the connection was still open after {timeout} s; received {received[:200]!r}")
    except ConnectionResetError:
        pass
    return received, time.monotonic() - start


def _wait_no_uploads(data_dir: Path, timeout: float = 10) -> list[str]:
    deadline = time.monotonic() + timeout
    while (left := _uploads_left(data_dir)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def test_a_stalled_upload_body_gets_408_and_leaves_no_folder(server) -> None:
    with _stalled_upload(server) as sock:
        received, seconds = _read_until_closed(sock, timeout=15)
    assert received.startswith(b"HTTP/1.1 408"), received[:300]
    assert b"RNTK_UPLOAD_IDLE_TIMEOUT_S" in received
    assert seconds < 10, seconds
    assert _wait_no_uploads(server.data_dir) == []
    assert httpx.get(server.base + "/healthz", timeout=5).status_code == 200


@pytest.mark.parametrize("sent", [b"", b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "])
def test_stalled_headers_are_closed(server, sent: bytes) -> None:
    """A connection that sends nothing, or stops mid-headers, is closed within the header
    deadline (uvicorn kept both open for as long as the client liked)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(sent)
        received, seconds = _read_until_closed(sock, timeout=15)
    assert received == b"" and seconds < 10, (received, seconds)


def _read_response(sock: socket.socket) -> bytes:
    """One HTTP/1.1 response with a Content-Length body, read to its last byte."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":", 1)[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, data
        body += chunk
    return head + b"\r\n\r\n" + body


def test_headers_slower_than_the_deadline_after_a_response_are_closed(server) -> None:
    """The deadline starts again after each response of a keep-alive connection."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n".encode())
        first = _read_response(sock)  # whole: its body may come in a segment of its own
        assert first.startswith(b"HTTP/1.1 200"), first
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and never the blank line
        received, seconds = _read_until_closed(sock, timeout=15)
    assert received == b"" and seconds < 10, (received, seconds)


def test_uploads_past_the_concurrency_cap_get_503(server) -> None:
    """One slot (RNTK_MAX_CONCURRENT_UPLOADS=1): while a stalled upload holds it, another
    gets 503 with Retry-After, and once the stalled one is refused, uploads go through."""
    with _stalled_upload(server) as sock:
        time.sleep(0.3)  # the stalled upload is in its slot
        refused = httpx.post(server.base + "/datasets", files={"file": ("rows.csv", CSV)}, timeout=10)
        assert refused.status_code == 503, refused.text
        assert refused.headers["retry-after"].isdigit()
        assert "RNTK_MAX_CONCURRENT_UPLOADS" in refused.json()["detail"]
        received, _ = _read_until_closed(sock, timeout=15)
        assert received.startswith(b"HTTP/1.1 408"), received[:300]
    accepted = httpx.post(server.base + "/datasets", files={"file": ("rows.csv", CSV)}, timeout=30)
    assert accepted.status_code == 201, accepted.text
    assert _wait_no_uploads(server.data_dir) == []
