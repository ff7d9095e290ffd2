"""Datasets and job records on disk, shared by the API and the workers.

Layout under ``data_dir``::

    datasets/<owner>/<sha256>/data.<ext>     the upload, content-addressed per owner
    datasets/<owner>/<sha256>/meta.json      {"id", "format", "n_samples", ...}: a DatasetMeta
    jobs/<id>/record.json                    the job record (the service's own state)
    jobs/<id>/heartbeat.json                 {"at", "pid", "host", "attempt"} of a running job
    jobs/<id>/cancel                         present once a cancel was requested
    jobs/<id>/manifest.json                  name/size/sha256/media_type of each artifact
    jobs/<id>/artifacts/                     report.*, gram/*.npy (replaced atomically)
    index/owners/<owner>/<id>                empty: the owner's jobs (for listing)
    index/active/<owner>/<id>                empty: the owner's queued and running jobs

Every JSON file is written to a temp file and renamed into place, so readers never see a
partial file; read-modify-write of a record holds an exclusive ``flock`` on ``jobs/<id>/lock``.

The index spares the hot paths a read of every record (10,000 records took 0.44 s to scan
on a local disk, per submit and per recovery sweep): a submit counts the owner's active
jobs, the sweep reads the active ones, a listing reads the owner's. A marker is made before
its record is written and an active one is dropped after the record left the active states,
so a record never lacks its markers; a marker whose record is finished is dropped by the
next reader. A data folder from before the index is indexed once, by the first store
opened on it (``index/complete`` then exists); until then readers scan every record.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Iterator

from pydantic import (BaseModel, ConfigDict, Field, ValidationError, ValidatorFunctionWrapHandler, field_serializer,
                      field_validator)

from rntk_core.evaluation.config import EvaluationConfig, used_settings
from rntk_core.evaluation.files import atomic_write_json, read_json
from worker.models import ArtifactOptions, DatasetMeta, FamilySummary, JobCost, JobTimings

__all__ = [
    "ArtifactOptions", "DatasetMeta", "FamilySummary", "JobCost", "JobError", "JobRecord", "JobState",
    "JobTimings", "InvalidTransition", "Progress", "Requeue", "Store", "TRANSITIONS", "file_lock", "now",
    "owner_of_key",
]

_ID = re.compile(r"^[0-9a-f]{8,64}$")


class JobState(str, Enum):
    """A job's life: queued -> running -> succeeded | failed | cancelled.

    A running job whose worker died goes back to queued (the recovery sweep); a queued
    job can be cancelled, or fail without running (too many lost attempts).
    """

    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (JobState.succeeded, JobState.failed, JobState.cancelled)


#: The allowed transitions; every state change goes through :meth:`JobRecord.move_to`.
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.queued: frozenset({JobState.running, JobState.cancelled, JobState.failed}),
    JobState.running: frozenset({JobState.succeeded, JobState.failed, JobState.cancelled, JobState.queued}),
    JobState.succeeded: frozenset(),
    JobState.failed: frozenset(),
    JobState.cancelled: frozenset(),
}


class InvalidTransition(RuntimeError):
    """A state change that the job's life does not allow."""


class Progress(BaseModel):
    """Where a job is: the stage with its counts, and the job as a whole.

    ``stage``, ``done`` and ``total`` are always written together (one record update), so a
    reader never pairs one stage's name with another's counts.
    """

    stage: str
    done: int = 0
    total: int = 1
    overall: float = Field(default=0.0, ge=0.0, le=1.0,
                           description="The whole job's progress, each stage weighted by its expected time.")
    eta_s: float | None = Field(default=None, description="Seconds left, estimated; None when unknown.")


class JobError(BaseModel):
    type: str
    message: str


class Requeue(BaseModel):
    at: float
    reason: str


class JobRecord(BaseModel):
    """The job record, the service's own state (``jobs/<id>/record.json``).

    Fields after ``message_id`` are server bookkeeping that the API never shows
    (see ``app.models.JobView``). Unknown fields are kept, so a newer worker's record
    survives an older reader.

    ``config`` is written as :func:`~rntk_core.evaluation.config.used_settings` (without the
    settings of families that do not run; they read back as their defaults).
    """

    model_config = ConfigDict(extra="allow", validate_assignment=True)

    id: str
    owner: str
    dataset_id: str
    dataset_name: str | None = None
    config: EvaluationConfig = Field(default_factory=EvaluationConfig)
    artifacts: ArtifactOptions = Field(default_factory=ArtifactOptions)
    state: JobState = JobState.queued
    progress: Progress = Field(default_factory=lambda: Progress(stage="queued"))
    created_at: float = Field(default_factory=lambda: now())
    started_at: float | None = None
    finished_at: float | None = None
    updated_at: float | None = None
    enqueued_at: float | None = None
    delivered_at: float | None = None
    error: JobError | None = None
    summary: dict[str, FamilySummary] | None = None
    attempts: int = 0
    cost: JobCost | None = None
    #: the estimate redone by the worker once the dataset was loaded: its protocol's folds and
    #: selection pairs, the worker's own rates; the weights of the job's progress and ETAs
    run_cost: JobCost | None = None
    requeues: list[Requeue] = Field(default_factory=list)
    cancel_requested: bool = False
    worker: str | None = None
    phase_seconds: dict[str, float] = Field(default_factory=dict)
    timings: JobTimings | None = None
    artifact_count: int | None = None
    message_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    enqueue_error: str | None = None
    deleted: bool = False
    deleted_at: float | None = None

    @field_validator("config", mode="wrap")
    @classmethod
    def _stored_config(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> EvaluationConfig:
        """A stored config that today's bounds refuse (a record older than a bound) still loads,
        unchecked: the worker validates the config again before it runs (``parse_config``)."""
        try:
            return handler(value)
        except ValidationError:
            if not isinstance(value, dict):
                raise
            known = {name: item for name, item in value.items() if name in EvaluationConfig.model_fields}
            return EvaluationConfig.model_construct(**known)

    @field_serializer("config")
    def _used_config(self, config: EvaluationConfig) -> dict[str, Any]:
        return used_settings(config)

    def move_to(self, state: JobState, **changes: Any) -> None:
        """Change state (checked against :data:`TRANSITIONS`) and set ``changes``."""
        state = JobState(state)
        if state not in TRANSITIONS[self.state]:
            raise InvalidTransition(f"job {self.id}: {self.state.value} -> {state.value} is not allowed")
        self.state = state
        for name, value in changes.items():
            setattr(self, name, value)
        if state.terminal:
            self.finished_at = self.finished_at if "finished_at" in changes else now()

    @property
    def active(self) -> bool:
        return self.state in (JobState.queued, JobState.running)


def now() -> float:
    return time.time()


def owner_of_key(key: str | None) -> str:
    """The owner id of an API key: its sha256, or ``anonymous`` without auth."""
    return hashlib.sha256(key.encode()).hexdigest() if key else "anonymous"


def valid_id(value: str) -> bool:
    return bool(_ID.match(value))


def _read_meta(path: Path) -> DatasetMeta | None:
    data = read_json(path)
    return None if data is None else DatasetMeta.model_validate(data)


def _ids_in(folder: Path) -> list[str]:
    """The job ids named in ``folder`` (jobs/, or an index folder); none if it is missing."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    return [name for name in names if valid_id(name)]


@contextlib.contextmanager
def file_lock(path: Path, blocking: bool = True) -> Iterator[bool]:
    """Hold an exclusive ``flock`` on ``path``; yields False (not holding) if ``blocking`` is
    False and another process holds it.

    Released with an explicit LOCK_UN, not by closing: the worker's main process forks pool
    children while its sweep thread may hold a lock, and a child's inherited descriptor would
    otherwise keep the lock for as long as the child lives.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class Store:
    """The file store rooted at ``data_dir``."""

    def __init__(self, data_dir: Path | str) -> None:
        self.root = Path(data_dir).resolve()
        self.datasets_root = self.root / "datasets"
        self.jobs_root = self.root / "jobs"
        self.tmp_root = self.root / "tmp"
        self.index_root = self.root / "index"
        for folder in (self.datasets_root, self.jobs_root, self.tmp_root, self.index_root):
            folder.mkdir(parents=True, exist_ok=True)
        self._parsed: dict[str, tuple[tuple[int, int, int], JobRecord]] = {}  # see snapshot()
        self._parsed_lock = threading.Lock()
        if not self.indexed:
            self.build_index()

    # ------------------------------------------------------------------ datasets

    def upload_tmp(self) -> Path:
        """A fresh private folder for an upload in progress (same filesystem as the store)."""
        return Path(tempfile.mkdtemp(prefix="upload-", dir=self.tmp_root))

    def sweep_tmp(self, older_than_s: float) -> list[str]:
        """Remove what uploads and dataset commits left in ``tmp/`` (a killed API leaves its
        partial upload there) once nothing in it has changed for ``older_than_s``; returns
        the names removed."""
        removed = []
        horizon = time.time() - older_than_s
        for entry in list(self.tmp_root.iterdir()):
            try:
                newest = max([entry.lstat().st_mtime] + [p.lstat().st_mtime for p in entry.rglob("*")]
                             if entry.is_dir() else [entry.lstat().st_mtime])
            except FileNotFoundError:  # finished meanwhile
                continue
            if newest < horizon:
                shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
                removed.append(entry.name)
        return removed

    def dataset_dir(self, owner: str, dataset_id: str) -> Path | None:
        if not valid_id(dataset_id):
            return None
        folder = self.datasets_root / owner / dataset_id
        return folder if (folder / "meta.json").is_file() else None

    def dataset_meta(self, owner: str, dataset_id: str) -> DatasetMeta | None:
        folder = self.dataset_dir(owner, dataset_id)
        return _read_meta(folder / "meta.json") if folder else None

    def dataset_file(self, owner: str, dataset_id: str) -> Path | None:
        meta = self.dataset_meta(owner, dataset_id)
        if meta is None:
            return None
        return self.datasets_root / owner / dataset_id / meta.file

    def commit_dataset(self, owner: str, sha256: str, upload: Path, meta: DatasetMeta) -> DatasetMeta:
        """Move a validated upload into ``datasets/<owner>/<sha256>/``; an existing copy wins."""
        final = self.datasets_root / owner / sha256
        existing = _read_meta(final / "meta.json")
        if existing is not None:
            return existing
        staging = Path(tempfile.mkdtemp(prefix=f".{sha256}.", dir=self.tmp_root))
        shutil.move(str(upload), staging / meta.file)
        atomic_write_json(staging / "meta.json", meta.model_dump(mode="json"))
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(staging, final)
        except OSError:  # a concurrent identical upload got there first
            shutil.rmtree(staging, ignore_errors=True)
            existing = _read_meta(final / "meta.json")
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

    def create_job(self, record: JobRecord) -> JobRecord:
        folder = self.job_dir(record.id)
        self._mark(record)
        folder.mkdir(parents=True)
        self._write_record(record)
        return record

    # index ---------------------------------------------------------------------

    def _marker(self, kind: str, owner: str, job_id: str) -> Path:
        if not owner or owner.startswith(".") or "/" in owner or os.sep in owner:
            raise ValueError(f"owner {owner!r} cannot name an index folder")
        return self.index_root / kind / owner / job_id

    def _mark(self, record: JobRecord) -> None:
        """The record's markers, made before it is written (see the module's docstring)."""
        kinds = ("owners", "active") if record.active else ("owners",)
        for kind in kinds:
            marker = self._marker(kind, record.owner, record.id)
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()

    def _unmark_active(self, owner: str, job_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._marker("active", owner, job_id))

    @property
    def indexed(self) -> bool:
        return (self.index_root / "complete").exists()

    def build_index(self) -> None:
        """Markers for every record (records written meanwhile make their own), then
        ``index/complete``. Idempotent: several processes may run it at once."""
        for record in self.iter_jobs():
            self._mark(record)
        atomic_write_json(self.index_root / "complete", {"at": now()})

    def active_jobs(self, owner: str | None = None) -> Iterator[JobRecord]:
        """The queued and running jobs (of ``owner``), deleted ones included."""
        if not self.indexed:
            yield from (r for r in self.iter_jobs() if r.active and (owner is None or r.owner == owner))
            return
        owners = [owner] if owner is not None else []
        if owner is None:
            with contextlib.suppress(FileNotFoundError):  # no active job has been made yet
                owners = sorted(name for name in os.listdir(self.index_root / "active") if not name.startswith("."))
        for name in owners:
            for job_id in _ids_in(self.index_root / "active" / name):
                record = self.read_job(job_id)
                if record is None:
                    continue  # being created (the marker comes first), or removed by hand
                if not record.active:
                    self._unmark_active(name, job_id)  # finished: it never becomes active again
                    continue
                yield record

    def _write_record(self, record: JobRecord) -> None:
        atomic_write_json(self.job_dir(record.id) / "record.json", record.model_dump(mode="json"))

    def read_job(self, job_id: str) -> JobRecord | None:
        try:
            data = read_json(self.job_dir(job_id) / "record.json")
        except KeyError:
            return None
        return None if data is None else JobRecord.model_validate(data)

    @contextlib.contextmanager
    def locked(self, job_id: str) -> Iterator[None]:
        with file_lock(self.job_dir(job_id) / "lock"):
            yield

    @contextlib.contextmanager
    def owner_locked(self, owner: str) -> Iterator[None]:
        """One owner's submissions, one at a time: the quota is counted and the job created
        under this lock, so concurrent submissions cannot all pass the same count."""
        with file_lock(self.root / "locks" / f"owner-{owner}.lock"):
            yield

    def update_job(self, job_id: str, change: Callable[[JobRecord], Any]) -> JobRecord | None:
        """Apply ``change`` to the record under the job's lock and write it back atomically.

        ``change`` edits the record in place. Returns the new record, or None if the job
        does not exist.
        """
        with self.locked(job_id):
            record = self.read_job(job_id)
            if record is None:
                return None
            was_active = record.active
            change(record)
            record.updated_at = now()
            if record.active and not was_active:
                self._mark(record)
            self._write_record(record)
            if was_active and not record.active:
                self._unmark_active(record.owner, record.id)
            return record

    def job_ids(self) -> list[str]:
        return _ids_in(self.jobs_root)

    def iter_jobs(self) -> Iterator[JobRecord]:
        """Every record: a read of each (the index's :meth:`active_jobs` and
        :meth:`list_jobs` read only theirs)."""
        for job_id in self.job_ids():
            record = self.read_job(job_id)
            if record is not None:
                yield record

    def snapshot(self) -> list[JobRecord]:
        """Every record, for reading only (metrics): a record file unchanged since the last
        snapshot (same inode, size and mtime: each write renames a new file into place) is not
        parsed again, so a snapshot of 10,000 records costs a directory listing and a stat each."""
        records = []
        with self._parsed_lock:
            parsed, self._parsed = self._parsed, {}
            for job_id in self.job_ids():
                path = self.jobs_root / job_id / "record.json"
                try:
                    stat = path.stat()
                except FileNotFoundError:
                    continue  # a job being created
                key = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
                cached = parsed.get(job_id)
                if cached is None or cached[0] != key:
                    record = self.read_job(job_id)
                    if record is None:
                        continue
                    cached = (key, record)
                self._parsed[job_id] = cached
                records.append(cached[1])
        return records

    def list_jobs(self, owner: str, state: JobState | None, limit: int, offset: int) -> list[JobRecord]:
        """The owner's jobs, newest first (ids are time-ordered)."""
        selected = []
        ids = _ids_in(self.index_root / "owners" / owner) if self.indexed else self.job_ids()
        for job_id in sorted(ids, reverse=True):
            record = self.read_job(job_id)
            if record is None or record.owner != owner or record.deleted:
                continue
            if state is not None and record.state != state:
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


