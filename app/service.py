"""The service layer under the routes: jobs and datasets created, read, listed, cancelled.

The JSON API (:mod:`app.routes.jobs`, :mod:`app.routes.datasets`, :mod:`app.routes.artifacts`)
and the HTML pages (:mod:`app.routes.pages`) call these plain functions, so an action reached
from two routes takes one path: a job submitted by ``POST /jobs`` (JSON or multipart) and by
the page form goes through :func:`load_json`, :func:`parse_job_request` and
:func:`create_job` alike. Nothing here reads a request or builds a response; a refusal is a
:class:`ServiceError`, which carries the status the routes answer it with (``app.main``
turns it into ``{"detail": ...}``, the pages into the form with the message).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from app.models import JobRequest
from rntk_core.evaluation.config import AUTO_LANDMARKS, LANDMARK_FAMILIES, EvaluationConfig, error_message
from rntk_core.evaluation.cost import DEFAULT_CONSTANTS, CostConstants, CostEstimate, estimate_cost, gigabytes
from worker.calibration import fleet_constants
from worker.jobs import DatasetMeta, JobCost, JobRecord, JobState, Store, now
from worker.queue import enqueue, fan_out_task_id
from worker.settings import Settings

__all__ = [
    "Invalid", "MAX_JSON_DEPTH", "NotFound", "OverQuota", "SUFFIXES", "ServiceError",
    "cancel_job", "create_job", "delete_job", "estimate_job", "find_artifact", "find_job", "get_dataset", "get_job",
    "ingest", "list_jobs", "load_json", "parse_job_request", "submit_job", "validate_dataset",
]

#: Deeper JSON is refused: a job request nests 3 levels, and Python's parser and validators
#: recurse (1,000 levels gave a RecursionError and a 500).
MAX_JSON_DEPTH = 32
SUFFIXES = (".csv", ".npz", ".zip", ".ts")


class ServiceError(Exception):
    """A refusal, with the HTTP status it is answered with and a message for the caller."""

    status_code = 422

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class Invalid(ServiceError):
    """The request, its config or its dataset is invalid (422)."""


class NotFound(ServiceError):
    """No such job or dataset for this owner (404)."""

    status_code = 404


class OverQuota(ServiceError):
    """Too many queued or running jobs for this owner (429)."""

    status_code = 429


# ---------------------------------------------------------------------------- requests


def load_json(text: bytes | str, what: str) -> Any:
    """Parse JSON from a request, refusing invalid or too deeply nested documents."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise Invalid(f"{what} is nested too deeply (at most {MAX_JSON_DEPTH} levels)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise Invalid(f"{what} is not valid JSON: {exc}") from None
    todo, depth = [(value, 1)], 0
    while todo:  # iterative: checking depth must not recurse either
        item, level = todo.pop()
        depth = max(depth, level)
        if depth > MAX_JSON_DEPTH:
            raise Invalid(f"{what} is nested too deeply (at most {MAX_JSON_DEPTH} levels)")
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        todo.extend((child, level + 1) for child in children if isinstance(child, (dict, list)))
    return value


def parse_job_request(body: Any) -> JobRequest:
    """A job request from parsed JSON, with every problem in one message."""
    try:
        return JobRequest.model_validate(body)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {error_message(e)}" for e in exc.errors())
        raise Invalid(f"invalid job request: {problems}") from None


# ---------------------------------------------------------------------------- datasets


def validate_dataset(path: Path, settings: Settings, features_per_step: int = 1) -> Any:
    """The dataset in ``path`` (a ``rntk_core.evaluation.datasets`` Dataset) within the limits."""
    from rntk_core.evaluation.datasets import DatasetError, DatasetLimits, load_dataset

    limits = DatasetLimits(max_samples=settings.max_samples, max_steps=settings.max_steps)
    try:
        return load_dataset(path, features_per_step=features_per_step, limits=limits)
    except DatasetError as exc:
        message = str(exc).replace(str(path.parent) + "/", "").replace(str(path.parent), "")
        raise Invalid(f"invalid dataset: {message}") from None


def ingest(store: Store, settings: Settings, owner: str, path: Path, *, sha256: str, size: int) -> DatasetMeta:
    """Validate an uploaded file (``path``, under its client's file name made safe, in a
    private folder) and store it under ``datasets/<owner>/<content hash>/``."""
    filename = path.name
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise Invalid(f"{filename}: unsupported file type {suffix or '(no extension)'!r}; "
                      "upload a .csv, a .npz, a .ts, or a .zip of a UCI dataset folder "
                      "or of NAME_TRAIN.ts + NAME_TEST.ts")
    if size == 0:
        raise Invalid(f"{filename}: the file is empty")
    dataset = validate_dataset(path, settings)  # first: hashing reads a zip's entries whole
    from rntk_core.evaluation.datasets import content_sha256

    # the id hashes the content, not the packing: a folder zipped by curl or by the client
    # (other entry order, compression, timestamps) is the same dataset
    dataset_id = content_sha256(path)
    existing = store.dataset_meta(owner, dataset_id)
    if existing is not None:
        return existing
    splits = dataset.splits
    folds = len(splits.folds) if splits is not None else None
    meta = DatasetMeta(id=dataset_id, sha256=sha256, name=dataset.name, format=dataset.format,
                       n_samples=dataset.n_samples, n_steps=dataset.n_steps,
                       n_features=dataset.n_features, n_classes=dataset.n_classes,
                       test_folds=folds, selection=splits.selection if splits is not None else None,
                       train_samples=len(splits.folds[0][0]) if folds == 1 else None,
                       filename=filename, file=filename, size=size, created_at=now())
    return store.commit_dataset(owner, dataset_id, path, meta)


def get_dataset(store: Store, owner: str, dataset_id: str) -> DatasetMeta:
    meta = store.dataset_meta(owner, dataset_id)
    if meta is None:
        raise NotFound(f"no dataset {dataset_id!r}")
    return meta


# ---------------------------------------------------------------------------- jobs


def find_job(store: Store, owner: str, job_id: str) -> JobRecord | None:
    """The owner's job, or None (also for another owner's job and a deleted one)."""
    record = store.read_job(job_id)
    if record is None or record.owner != owner or record.deleted:
        return None
    return record


def get_job(store: Store, owner: str, job_id: str) -> JobRecord:
    record = find_job(store, owner, job_id)
    if record is None:
        raise NotFound(f"no job {job_id!r}")
    return record


def list_jobs(store: Store, owner: str, state: JobState | None = None, limit: int = 50,
              offset: int = 0) -> list[JobRecord]:
    """The owner's jobs, newest first."""
    return store.list_jobs(owner, state, limit, offset)


def find_artifact(store: Store, job_id: str, name: str) -> tuple[Path, dict[str, Any]] | None:
    """The file of the job's artifact ``name`` and its manifest entry; only names the worker
    listed (no traversal, no private files), None for any other."""
    entry = next((e for e in store.manifest(job_id) if e["name"] == name), None)
    root = store.artifacts_dir(job_id).resolve()
    path = (root / name).resolve() if entry else None
    if entry is None or path is None or root not in path.parents or not path.is_file():
        return None
    return path, entry


def estimate_job(store: Store, owner: str, job: JobRequest, settings: Settings | None = None) -> CostEstimate:
    """What ``job`` would compute, from its dataset's stored shape (nothing is submitted); its
    seconds at the live workers' rates given ``settings`` (as :func:`create_job`), else at
    the 2-core CPU's."""
    meta = get_dataset(store, owner, job.dataset_id)
    config = job.config
    constants = fleet_constants(settings) if settings is not None else DEFAULT_CONSTANTS
    return estimate_cost(int(meta.n_samples or 1), steps_with(meta, config.features_per_step), config,
                         constants=constants, **protocol_of(meta, config))


def protocol_of(meta: DatasetMeta, config: EvaluationConfig) -> dict[str, Any]:
    """The cost model's view of ``config``'s protocol on a stored dataset (as
    :func:`rntk_core.evaluation.protocol.protocol_shape` on the loaded one, without loading
    it): its predefined splits' test folds and selection, else the stratified protocol's 4
    folds and one holdout. A CV's k is the config's (a class smaller than k lowers it)."""
    if config.protocol == "stratified" or not meta.test_folds:
        return {}
    return {"test_folds": meta.test_folds, "selection_pairs": config.cv_folds if meta.selection == "cv" else 1,
            "train_samples": meta.train_samples}


def submit_job(store: Store, settings: Settings, celery: Any, owner: str, body: Any) -> JobRecord:
    """The one way a job is made: validate the request (parsed JSON), then :func:`create_job`."""
    return create_job(store, settings, celery, owner, parse_job_request(body))


def steps_with(meta: DatasetMeta, features_per_step: int) -> int:
    """T of a stored dataset read with ``features_per_step`` m, from its metadata: no request
    parses a dataset (a 400 MB one took 41 s and 3.5 GB in POST /jobs). The upload was checked
    with m = 1; CSV and UCI rows of d values are then read as d / m steps of m features, while
    NPZ and .ts files carry their m in their arrays."""
    m, stored = features_per_step, meta.n_features or 1
    if m == 1 or m == stored:
        return meta.n_steps
    if meta.format in ("csv", "uci") and stored == 1 and meta.n_steps % m == 0:
        return meta.n_steps // m
    if meta.format in ("csv", "uci") and stored == 1:
        raise Invalid(f"features_per_step={m} does not divide the dataset's {meta.n_steps} values per sample")
    raise Invalid(f"features_per_step={m} does not fit the dataset: its {meta.format} arrays hold {stored} "
                  f"feature(s) per step")


def fit_to_worker(config: EvaluationConfig, n_samples: int, steps: int, settings: Settings,
                  constants: CostConstants = DEFAULT_CONSTANTS,
                  protocol: dict[str, Any] | None = None) -> tuple[EvaluationConfig, CostEstimate]:
    """The config to run and its cost (seconds at ``constants``' rates; ``protocol``: as
    :func:`protocol_of`), refused (422) when its memory estimate is over a worker's: a dense
    job too large goes to landmarks under ``scale: auto``."""
    protocol = protocol or {}
    cost = estimate_cost(n_samples, steps, config, constants=constants, **protocol)
    limit = settings.worker_memory_bytes
    if cost.method == "dense" and cost.host_bytes > limit:
        if config.scale == "dense" or not set(config.families) <= set(LANDMARK_FAMILIES):
            reason = ("it asked for dense kernels (\"scale\": \"dense\")" if config.scale == "dense" else
                      f"families {', '.join(f for f in config.families if f not in LANDMARK_FAMILIES)} have "
                      "no landmark features")
            raise Invalid(f"the job's dense Gram matrices need about {gigabytes(cost.host_bytes)} of memory, "
                          f"over a worker's {gigabytes(limit)} (RNTK_WORKER_MEMORY_MB), and {reason}; submit "
                          f"it with \"landmarks\": {AUTO_LANDMARKS} (Nystrom features: memory linear in N) and "
                          f"the families {', '.join(LANDMARK_FAMILIES)}")
        config = config.model_copy(update={"landmarks": AUTO_LANDMARKS})
        cost = estimate_cost(n_samples, steps, config, constants=constants, **protocol)
    if cost.host_bytes > limit:
        raise Invalid(f"the job needs about {gigabytes(cost.host_bytes)} of memory, over a worker's "
                      f"{gigabytes(limit)} (RNTK_WORKER_MEMORY_MB); use fewer landmarks or smaller block_rows")
    return config, cost


def create_job(store: Store, settings: Settings, celery: Any, owner: str, job: JobRequest) -> JobRecord:
    """Check the dataset, the cost and the quota, write the record, and send the message
    (blocking: the routes call it in the threadpool)."""
    meta = get_dataset(store, owner, job.dataset_id)
    config = job.config
    n_samples, steps = meta.n_samples, steps_with(meta, config.features_per_step)
    # the live workers' rates (the slowest's: any of them may take the job), else the 2-core CPU's
    config, cost = fit_to_worker(config, n_samples, steps, settings, fleet_constants(settings),
                                 protocol_of(meta, config))
    if not cost.seconds <= settings.max_job_seconds:
        raise Invalid(f"the job's estimated cost, {cost.describe()}, is over the limit of "
                      f"{settings.max_job_seconds:g} s (RNTK_MAX_JOB_SECONDS); use smaller grids")
    record = JobRecord(id=store.new_job_id(), owner=owner, dataset_id=job.dataset_id,
                       dataset_name=meta.name or meta.filename, config=config, artifacts=job.artifacts,
                       cost=JobCost.model_validate(cost.as_dict()))
    with store.owner_locked(owner):  # count and create in one step: concurrent submits see each other
        active = sum(1 for _ in store.active_jobs(owner))
        if active >= settings.max_queued_jobs:
            raise OverQuota(f"{active} jobs queued or running, the limit per key is "
                            f"{settings.max_queued_jobs}; wait for some to finish")
        store.create_job(record)
    enqueue(store, celery, settings, record.id)
    return store.read_job(record.id) or record


def cancel_job(store: Store, owner: str, job_id: str, celery: Any = None,
               settings: Settings | None = None) -> tuple[JobRecord, bool]:
    """Cancel a queued job at once; ask a running one to stop (it checks between tiles and fits).
    A job fanned out over the workers is cancelled at once, and with ``celery`` (Redis mode)
    its outstanding block tasks are revoked.

    Returns the record and whether it was still queued or running when the cancel took hold:
    the state is re-read under the job's lock, so a job finishing meanwhile is not "cancelled".
    """
    record = get_job(store, owner, job_id)
    updated, accepted = _cancel(store, job_id, celery, settings)
    return updated or record, accepted


def _cancel(store: Store, job_id: str, celery: Any = None,
            settings: Settings | None = None) -> tuple[JobRecord | None, bool]:
    store.request_cancel(job_id)
    accepted = False
    fanned: list[tuple[str, int]] = []

    def change(rec: JobRecord) -> None:
        nonlocal accepted
        if rec.state == JobState.queued:
            rec.move_to(JobState.cancelled, progress=rec.progress.model_copy(update={"stage": "cancelled"}))
            accepted = True
        elif rec.state == JobState.running and rec.progress.stage == "blocks":
            # fanned out: no process holds the job; its blocks see the state and do nothing
            fanned.append((rec.message_id, rec.progress.total))
            rec.move_to(JobState.cancelled, progress=rec.progress.model_copy(update={"stage": "cancelled"}))
            accepted = True
        elif rec.state == JobState.running:
            rec.cancel_requested = True
            accepted = True

    updated = store.update_job(job_id, change)
    if fanned and celery is not None and settings is not None and not settings.embedded:
        revoke_fan_out(celery, *fanned[0])
    return updated, accepted


def revoke_fan_out(celery: Any, message_id: str, blocks: int) -> None:
    """Revoke a fanned-out attempt's block tasks (ids :func:`worker.queue.fan_out_task_id`),
    so busy workers skip them; best effort: a block that still runs sees the cancelled state."""
    try:
        celery.control.revoke([fan_out_task_id(message_id, index) for index in range(blocks)])
    except Exception:  # a broker without remote control, or down: the state check suffices
        pass


def delete_job(store: Store, owner: str, job_id: str, celery: Any = None,
               settings: Settings | None = None) -> None:
    """Cancel the job if it is still active, mark it deleted, and remove its artifacts."""
    record = get_job(store, owner, job_id)
    if not record.state.terminal:
        _cancel(store, job_id, celery, settings)

    def mark_deleted(rec: JobRecord) -> None:
        rec.deleted, rec.deleted_at = True, now()

    store.update_job(job_id, mark_deleted)
    store.remove_artifacts(job_id)
