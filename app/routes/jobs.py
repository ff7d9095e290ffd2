"""Jobs: submit (JSON or one-shot multipart), estimate, list, get, cancel, delete.

The routes translate HTTP; what they do is in :mod:`app.service`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from app import service
from app.deps import CeleryDep, OwnerDep, SettingsDep, StoreDep
from app.models import JobRequest, JobView, errors
from app.uploads import CLOSE, drain, receive_upload
from worker.jobs import JobState

router = APIRouter(prefix="/jobs", tags=["jobs"], responses=errors(401))

_MAX_JSON_BYTES = 1 << 20


@router.post("/estimate", summary="What a job would compute: kernels, SVM fits, expected seconds",
             response_model=dict[str, Any], responses=errors(400, 404, 422))
def estimate_job(job: JobRequest, owner: OwnerDep, store: StoreDep, settings: SettingsDep) -> dict[str, Any]:
    """The cost estimate of ``POST /jobs`` with this body, without submitting anything.

    Counts follow the protocol exactly (Gram grid passes, recurrent kernels, baseline models,
    validation and test fits); seconds, an order of magnitude, are at the rates the slowest
    live worker measured when it started (``basis`` names them), else a 2-core CPU's.
    """
    return service.estimate_job(store, owner, job, settings).as_dict()


_JOB_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"$ref": "#/components/schemas/JobRequest"}},
    "multipart/form-data": {"schema": {
        "type": "object", "required": ["file"],
        "properties": {"file": {"type": "string", "format": "binary"},
                       "config": {"type": "string", "description": "The EvaluationConfig (see the "
                                  "JobRequest schema's config) as a JSON string, e.g. {\"families\": [\"RNN\"]}"},
                       "artifacts": {"type": "string", "description": 'e.g. {"gram": "all"}'}}}}}}}


async def _json_body(request: Request) -> bytes:
    """The request's body, at most 1 MB (413 past it, read no further than needed)."""
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
    return bytes(raw)


@router.post("", status_code=202, summary="Submit an evaluation job", openapi_extra=_JOB_BODY,
             response_model=JobView, responses=errors(400, 404, 408, 413, 415, 422, 429, 503, 507))
async def submit_job(request: Request, response: Response, owner: OwnerDep, store: StoreDep,
                     settings: SettingsDep, celery: CeleryDep) -> JobView:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        meta, fields = await receive_upload(request, store, settings, owner)
        body: dict[str, Any] = {"dataset_id": meta.id}
        for name in ("config", "artifacts"):
            if fields.get(name, "").strip():
                body[name] = service.load_json(fields[name], f"form field {name!r}")
    else:
        body = service.load_json(await _json_body(request) or b"null", "the body")
    record = await run_in_threadpool(service.submit_job, store, settings, celery, owner, body)
    response.headers["Location"] = f"/jobs/{record.id}"
    return JobView.from_record(record)


@router.get("", summary="The caller's jobs, newest first", response_model=list[JobView],
            responses=errors(422))
def list_jobs(owner: OwnerDep, store: StoreDep,
              state: Annotated[JobState | None, Query(description="Only jobs in this state.")] = None,
              limit: Annotated[int, Query(ge=1, le=1000)] = 50,
              offset: Annotated[int, Query(ge=0)] = 0) -> list[JobView]:
    return [JobView.from_record(rec) for rec in service.list_jobs(store, owner, state, limit, offset)]


@router.get("/{job_id}", summary="One job: state, progress, times, error, summary",
            response_model=JobView, responses=errors(404))
async def get_job(job_id: str, owner: OwnerDep, store: StoreDep) -> JobView:
    return JobView.from_record(service.get_job(store, owner, job_id))


@router.post("/{job_id}/cancel", status_code=202, summary="Cancel a queued or running job",
             response_model=JobView, responses=errors(404, 409))
def cancel_job(job_id: str, owner: OwnerDep, store: StoreDep, celery: CeleryDep,
               settings: SettingsDep) -> JobView:
    record, accepted = service.cancel_job(store, owner, job_id, celery, settings)
    if not accepted:
        raise HTTPException(409, f"job {job_id!r} already {record.state.value}")
    return JobView.from_record(record)


@router.delete("/{job_id}", status_code=204, summary="Cancel a job and remove it with its artifacts",
               responses=errors(404))
def delete_job(job_id: str, owner: OwnerDep, store: StoreDep, celery: CeleryDep,
               settings: SettingsDep) -> Response:
    service.delete_job(store, owner, job_id, celery, settings)
    return Response(status_code=204)
