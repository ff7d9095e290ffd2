"""Jobs: submit (JSON or one-shot multipart), list, get, cancel, delete."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError

from app.deps import current_owner, get_settings_dep, get_store
from app.models import JobRequest, JobView, errors
from app.routes.datasets import receive_upload
from app.uploads import CLOSE, drain
from rntk_core.evaluation.config import error_message
from rntk_core.evaluation.cost import estimate_cost
from worker.jobs import JobRecord, JobState, Store, now
from worker.settings import Settings

router = APIRouter(tags=["jobs"], responses=errors(401))

_MAX_JSON_BYTES = 1 << 20
#: Deeper JSON is refused: a job request nests 3 levels, and Python's parser and validators
#: recurse (1,000 levels gave a RecursionError and a 500).
MAX_JSON_DEPTH = 32


def load_json(text: bytes | str, what: str) -> Any:
    """Parse JSON from a request, refusing (422) invalid or too deeply nested documents."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise HTTPException(422, f"{what} is nested too deeply (at most {MAX_JSON_DEPTH} levels)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HTTPException(422, f"{what} is not valid JSON: {exc}") from None
    todo, depth = [(value, 1)], 0
    while todo:  # iterative: checking depth must not recurse either
        item, level = todo.pop()
        depth = max(depth, level)
        if depth > MAX_JSON_DEPTH:
            raise HTTPException(422, f"{what} is nested too deeply (at most {MAX_JSON_DEPTH} levels)")
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        todo.extend((child, level + 1) for child in children if isinstance(child, (dict, list)))
    return value


def owned_job(store: Store, job_id: str, owner: str) -> JobRecord:
    record = store.read_job(job_id)
    if record is None or record.owner != owner or record.deleted:
        raise HTTPException(404, f"no job {job_id!r}")
    return record


def parse_job_request(body: Any) -> JobRequest:
    try:
        return JobRequest.model_validate(body)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {error_message(e)}" for e in exc.errors())
        raise HTTPException(422, f"invalid job request: {problems}") from None


def _estimate(meta: dict, config: Any) -> dict[str, Any]:
    from rntk_core.evaluation.cost import estimate_cost

    steps = int(meta.get("n_steps") or 1) // max(config.features_per_step, 1) or 1
    return estimate_cost(int(meta.get("n_samples") or 1), steps, config).as_dict()


@router.post("/jobs/estimate", summary="What a job would compute: kernels, SVM fits, expected seconds",
             response_model=dict[str, Any], responses=errors(400, 404, 422))
def estimate_job(job: JobRequest, owner: str = Depends(current_owner),
                 store: Store = Depends(get_store)) -> dict[str, Any]:
    """The cost estimate of ``POST /jobs`` with this body, without submitting anything.

    Counts follow the protocol exactly (Gram grid passes, recurrent kernels, baseline models,
    validation and test fits); seconds are for a 2-core CPU, an order of magnitude.
    """
    meta = store.dataset_meta(owner, job.dataset_id)
    if meta is None:
        raise HTTPException(404, f"no dataset {job.dataset_id!r}")
    return _estimate(meta, job.config)


def create_job(request: Request, owner: str, job: JobRequest) -> JobRecord:
    """Check the dataset and the quota, write the record, and send the message (sync: threadpool)."""
    from rntk_core.evaluation.config import used_settings

    store: Store = request.app.state.store
    settings: Settings = request.app.state.settings
    meta = store.dataset_meta(owner, job.dataset_id)
    if meta is None:
        raise HTTPException(404, f"no dataset {job.dataset_id!r}")
    config = job.config
    n_samples, steps = meta["n_samples"], meta["n_steps"]
    if config.features_per_step != 1:  # the upload was checked with m = 1
        from app.routes.datasets import validate_dataset
        dataset = validate_dataset(store.dataset_file(owner, job.dataset_id), settings, config.features_per_step)
        n_samples, steps = dataset.n_samples, dataset.n_steps
    cost = estimate_cost(n_samples, steps, config)
    if not cost.seconds <= settings.max_job_seconds:
        raise HTTPException(422, f"the job's estimated cost, {cost.describe()}, is over the limit of "
                                 f"{settings.max_job_seconds:g} s (RNTK_MAX_JOB_SECONDS); use smaller grids")
    record = JobRecord(id=store.new_job_id(), owner=owner, dataset_id=job.dataset_id,
                       dataset_name=meta.get("name") or meta.get("filename"),
                       config=used_settings(config), artifacts=job.artifacts.model_dump(),
                       cost=cost.as_dict())
    with store.owner_locked(owner):  # count and create in one step: concurrent submits see each other
        active = sum(1 for _ in store.active_jobs(owner))
        if active >= settings.max_queued_jobs:
            raise HTTPException(429, f"{active} jobs queued or running, the limit per key is "
                                     f"{settings.max_queued_jobs}; wait for some to finish")
        store.create_job(record)
    from worker.queue import enqueue

    enqueue(store, request.app.state.celery, settings, record.id)
    return store.read_job(record.id) or record


_JOB_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"$ref": "#/components/schemas/JobRequest"}},
    "multipart/form-data": {"schema": {
        "type": "object", "required": ["file"],
        "properties": {"file": {"type": "string", "format": "binary"},
                       "config": {"type": "string", "description": "The EvaluationConfig (see the "
                                  "JobRequest schema's config) as a JSON string, e.g. {\"families\": [\"RNN\"]}"},
                       "artifacts": {"type": "string", "description": 'e.g. {"gram": "all"}'}}}}}}}


@router.post("/jobs", status_code=202, summary="Submit an evaluation job", openapi_extra=_JOB_BODY,
             response_model=JobView, responses=errors(400, 404, 413, 415, 422, 429, 507))
async def submit_job(request: Request, response: Response, owner: str = Depends(current_owner),
                     store: Store = Depends(get_store),
                     settings: Settings = Depends(get_settings_dep)) -> JobView:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        meta, fields = await receive_upload(request, store, settings, owner)
        body: dict[str, Any] = {"dataset_id": meta["id"]}
        for name in ("config", "artifacts"):
            if fields.get(name, "").strip():
                body[name] = load_json(fields[name], f"form field {name!r}")
    else:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > _MAX_JSON_BYTES:
            await drain(request)
            raise HTTPException(413, "a job request is at most 1 MB of JSON", headers=CLOSE)
        raw = bytearray()
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > _MAX_JSON_BYTES:
                await drain(request)
                raise HTTPException(413, "a job request is at most 1 MB of JSON", headers=CLOSE)
        body = load_json(bytes(raw) or b"null", "the body")
    job = parse_job_request(body)
    record = await run_in_threadpool(create_job, request, owner, job)
    response.headers["Location"] = f"/jobs/{record.id}"
    return JobView.from_record(record)


@router.get("/jobs", summary="The caller's jobs, newest first", response_model=list[JobView],
            responses=errors(422))
def list_jobs(state: JobState | None = Query(None, description="Only jobs in this state."),
              limit: int = Query(50, ge=1, le=1000), offset: int = Query(0, ge=0),
              owner: str = Depends(current_owner), store: Store = Depends(get_store)) -> list[JobView]:
    return [JobView.from_record(rec) for rec in store.list_jobs(owner, state, limit, offset)]


@router.get("/jobs/{job_id}", summary="One job: state, progress, times, error, summary",
            response_model=JobView, responses=errors(404))
async def get_job(job_id: str, owner: str = Depends(current_owner), store: Store = Depends(get_store)) -> JobView:
    return JobView.from_record(owned_job(store, job_id, owner))


def cancel_record(store: Store, job_id: str) -> tuple[JobRecord | None, bool]:
    """Cancel a queued job at once; ask a running one to stop (it checks between tiles and fits).

    Returns the record and whether it was still queued or running when the cancel took hold:
    the state is re-read under the job's lock, so a job finishing meanwhile is not "cancelled".
    """
    store.request_cancel(job_id)
    accepted = False

    def change(rec: JobRecord) -> None:
        nonlocal accepted
        if rec.state == JobState.queued:
            rec.move_to(JobState.cancelled, progress=rec.progress.model_copy(update={"stage": "cancelled"}))
            accepted = True
        elif rec.state == JobState.running:
            rec.cancel_requested = True
            accepted = True

    return store.update_job(job_id, change), accepted


@router.post("/jobs/{job_id}/cancel", status_code=202, summary="Cancel a queued or running job",
             response_model=JobView, responses=errors(404, 409))
def cancel_job(job_id: str, owner: str = Depends(current_owner), store: Store = Depends(get_store)) -> JobView:
    record = owned_job(store, job_id, owner)
    updated, accepted = cancel_record(store, job_id)
    record = updated or record
    if not accepted:
        raise HTTPException(409, f"job {job_id!r} already {record.state.value}")
    return JobView.from_record(record)


@router.delete("/jobs/{job_id}", status_code=204, summary="Cancel a job and remove it with its artifacts",
               responses=errors(404))
def delete_job(job_id: str, owner: str = Depends(current_owner), store: Store = Depends(get_store)) -> Response:
    record = owned_job(store, job_id, owner)
    if not record.state.terminal:
        cancel_record(store, job_id)

    def mark_deleted(rec: JobRecord) -> None:
        rec.deleted, rec.deleted_at = True, now()

    store.update_job(job_id, mark_deleted)
    store.remove_artifacts(job_id)
    return Response(status_code=204)
