"""Uploads: the size limit holds for the whole request, and partial uploads do not pile up."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx

from worker.jobs import Store


def test_the_upload_limit_counts_every_file_part_of_a_request(service_factory, iris_zip) -> None:
    """16 parts of 45 MB each passed a 50 MB limit (677 MB left in tmp/): the limit is now the
    request's. Scaled down: a 60 KB limit, a small dataset and three 30 KB extra file parts."""
    service = service_factory(max_upload_mb=str(60 / 1024))
    service.start_server()
    client = service.client()
    extra = {f"extra{k}": (f"x{k}.bin", os.urandom(30 << 10)) for k in range(3)}
    response = client.post("/datasets", files={"file": ("iris.zip", iris_zip.read_bytes()), **extra})
    assert response.status_code == 413, response.text
    assert "limit" in response.json()["detail"]
    alone = client.post("/datasets", files={"file": ("iris.zip", iris_zip.read_bytes())})
    assert alone.status_code in (200, 201), alone.text  # one part under the limit is fine
    assert list((service.data_dir / "tmp").iterdir()) == []


def test_stale_partial_uploads_are_swept(tmp_path: Path) -> None:
    """An API killed mid-upload leaves its part in tmp/; the sweep removes what nothing has
    touched for the stale age, and leaves uploads in progress alone."""
    store = Store(tmp_path / "data")
    stale = store.upload_tmp()
    (stale / "part1").write_bytes(b"x" * 1000)
    old = time.time() - 7200
    for path in (stale / "part1", stale):
        os.utime(path, (old, old))
    live = store.upload_tmp()
    (live / "part1").write_bytes(b"y")
    removed = store.sweep_tmp(3600)
    assert removed == [stale.name]
    assert not stale.exists() and (live / "part1").exists()


def test_the_recovery_sweep_removes_stale_uploads(service_factory) -> None:
    service = service_factory()
    service.data_dir.mkdir(parents=True, exist_ok=True)
    stale = service.data_dir / "tmp" / "upload-killed"
    stale.mkdir(parents=True)
    (stale / "part1").write_bytes(b"z" * 100)
    old = time.time() - 7200
    os.utime(stale / "part1", (old, old))
    os.utime(stale, (old, old))
    service.start_server()  # the API's sweep runs every RNTK_SWEEP_S (1 s in the tests)
    deadline = time.monotonic() + 30
    while stale.exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not stale.exists()
    assert httpx.get(service.base + "/healthz").status_code == 200
