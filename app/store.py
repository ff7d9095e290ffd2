"""Datasets and job records on disk, shared by the API and the workers.

Layout under ``data_dir``::

    datasets/<owner>/<sha256>/data.<ext>     the upload, content-addressed per owner
    datasets/<owner>/<sha256>/meta.json      {"id", "format", "n_samples", ...}
    jobs/<id>/record.json                    the job record (the service's own state)
    jobs/<id>/heartbeat.json                 {"at", "pid", "host", "attempt"} of a running job
    jobs/<id>/cancel                         present once a cancel was requested
    jobs/<id>/manifest.json                  name/size/sha256/media_type of each artifact
    jobs/<id>/artifacts/                     report.*, gram/*.npy (replaced atomically)

Every JSON file is written to a temp file and renamed into place, so readers never see a
partial file; read-modify-write of a record holds an exclusive ``flock`` on ``jobs/<id>/lock``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

__all__ = ["Store", "atomic_write_json", "now", "TERMINAL_STATES", "JOB_STATES", "owner_of_key"]

JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled")
TERMINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})
_ID = re.compile(r"^[0-9a-f]{8,64}$")
#: Fields of a record that never leave the server.
_PRIVATE = ("owner", "message_id", "deleted", "deleted_at", "enqueue_error")


def now() -> float:
    return time.time()


def owner_of_key(key: str | None) -> str:
    """The owner id of an API key: its sha256, or ``anonymous`` without auth."""
    return hashlib.sha256(key.encode()).hexdigest() if key else "anonymous"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a temp file beside ``path``, fsync, and rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode())


def read_json(path: Path) -> Any | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def valid_id(value: str) -> bool:
    return bool(_ID.match(value))


class Store:
    """The file store rooted at ``data_dir``."""

    def __init__(self, data_dir: Path | str) -> None:
        self.root = Path(data_dir).resolve()
        self.datasets_root = self.root / "datasets"
        self.jobs_root = self.root / "jobs"
        self.tmp_root = self.root / "tmp"
        for folder in (self.datasets_root, self.jobs_root, self.tmp_root):
            folder.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ datasets

    def upload_tmp(self) -> Path:
        """A fresh private folder for an upload in progress (same filesystem as the store)."""
        return Path(tempfile.mkdtemp(prefix="upload-", dir=self.tmp_root))

    def dataset_dir(self, owner: str, dataset_id: str) -> Path | None:
        if not valid_id(dataset_id):
            return None
        folder = self.datasets_root / owner / dataset_id
        return folder if (folder / "meta.json").is_file() else None

    def dataset_meta(self, owner: str, dataset_id: str) -> dict | None:
        folder = self.dataset_dir(owner, dataset_id)
        return read_json(folder / "meta.json") if folder else None

    def dataset_file(self, owner: str, dataset_id: str) -> Path | None:
        meta = self.dataset_meta(owner, dataset_id)
        if meta is None:
            return None
        return self.datasets_root / owner / dataset_id / meta["file"]

    def commit_dataset(self, owner: str, sha256: str, upload: Path, meta: dict) -> dict:
        """Move a validated upload into ``datasets/<owner>/<sha256>/``; an existing copy wins."""
        final = self.datasets_root / owner / sha256
        existing = read_json(final / "meta.json")
        if existing is not None:
            return existing
        staging = Path(tempfile.mkdtemp(prefix=f".{sha256}.", dir=self.tmp_root))
        shutil.move(str(upload), staging / meta["file"])
        atomic_write_json(staging / "meta.json", meta)
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(staging, final)
        except OSError:  # a concurrent identical upload got there first
            shutil.rmtree(staging, ignore_errors=True)
            existing = read_json(final / "meta.json")
            if existing is None:
                raise
            return existing
        return meta

    # ------------------------------------------------------------------ jobs

    def job_dir(self, job_id: str) -> Path:
        if not valid_id(job_id):
            raise KeyError(job_id)
        return self.jobs_root / job_id

    def new_job_id(self) -> str:
        # time-ordered prefix: ids sort like creation times, the uuid part keeps them unique
        return f"{time.time_ns():016x}{uuid.uuid4().hex[:16]}"

    def create_job(self, record: dict) -> dict:
        folder = self.job_dir(record["id"])
        folder.mkdir(parents=True)
        atomic_write_json(folder / "record.json", record)
        return record

    def read_job(self, job_id: str) -> dict | None:
        try:
            return read_json(self.job_dir(job_id) / "record.json")
        except KeyError:
            return None

    @contextlib.contextmanager
    def locked(self, job_id: str) -> Iterator[None]:
        folder = self.job_dir(job_id)
        with open(folder / "lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def update_job(self, job_id: str, change: Callable[[dict], dict | None]) -> dict | None:
        """Apply ``change`` to the record under the job's lock and write it back atomically.

        ``change`` edits the dict in place (or returns a replacement dict). Returns the new
        record, or None if the job does not exist.
        """
        with self.locked(job_id):
            record = self.read_job(job_id)
            if record is None:
                return None
            replaced = change(record)
            record = replaced if isinstance(replaced, dict) else record
            record["updated_at"] = now()
            atomic_write_json(self.job_dir(job_id) / "record.json", record)
            return record

    def job_ids(self) -> list[str]:
        try:
            names = os.listdir(self.jobs_root)
        except FileNotFoundError:
            return []
        return [name for name in names if valid_id(name)]

    def iter_jobs(self) -> Iterator[dict]:
        for job_id in self.job_ids():
            record = self.read_job(job_id)
            if record is not None:
                yield record

    def list_jobs(self, owner: str, state: str | None, limit: int, offset: int) -> list[dict]:
        """The owner's jobs, newest first (ids are time-ordered)."""
        selected = []
        for job_id in sorted(self.job_ids(), reverse=True):
            record = self.read_job(job_id)
            if record is None or record.get("owner") != owner or record.get("deleted"):
                continue
            if state is not None and record.get("state") != state:
                continue
            selected.append(record)
            if len(selected) >= offset + limit:
                break
        return selected[offset:offset + limit]

    # heartbeat / cancel ------------------------------------------------------

    def write_heartbeat(self, job_id: str, info: dict) -> None:
        atomic_write_json(self.job_dir(job_id) / "heartbeat.json", {**info, "at": now()})

    def read_heartbeat(self, job_id: str) -> dict | None:
        return read_json(self.job_dir(job_id) / "heartbeat.json")

    def request_cancel(self, job_id: str) -> None:
        (self.job_dir(job_id) / "cancel").touch()

    def cancel_requested(self, job_id: str) -> bool:
        return (self.job_dir(job_id) / "cancel").exists()

    # artifacts ---------------------------------------------------------------

    def artifacts_dir(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "artifacts"

    def manifest(self, job_id: str) -> list[dict]:
        return read_json(self.job_dir(job_id) / "manifest.json") or []

    def remove_artifacts(self, job_id: str) -> None:
        folder = self.job_dir(job_id)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(folder / "manifest.json")
        for child in folder.iterdir():
            if child.name == "artifacts" or child.name.startswith(("artifacts.", ".artifacts")):
                shutil.rmtree(child, ignore_errors=True)


def public_job(record: dict) -> dict:
    """The record as the API shows it: no owner, no broker bookkeeping."""
    return {key: value for key, value in record.items() if key not in _PRIVATE}
