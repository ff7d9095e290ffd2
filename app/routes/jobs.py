"""Jobs: submit (JSON or one-shot multipart), list, get, cancel, delete."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.deps import current_owner, get_settings_dep, get_store
from app.routes.datasets import receive_upload
from app.settings import Settings
from app.store import JOB_STATES, TERMINAL_STATES, Store, now, public_job

router = APIRouter(tags=["jobs"])


class ArtifactOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    gram: Literal["selected", "all", "none"] = Field(
        default="selected",
        description="Gram matrices to keep: the selected configurations' ('all' currently "
                    "keeps the same set as 'selected'), or none.")


class JobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dataset_id: str
    config: dict[str, Any] = Field(default_factory=dict,
                                   description="The evaluation config (rntk_core.config.EvaluationConfig).")
    artifacts: ArtifactOptions = Field(default_factory=ArtifactOptions)


_MAX_JSON_BYTES = 1 << 20
_TIMES = ("created_at", "started_at", "finished_at", "updated_at", "enqueued_at")


def _iso(value: float | None) -> str | None:
    if value is None:
        return None
    return datetime.fromtimestamp(value, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def job_view(record: dict) -> dict:
    view = public_job(record)
    for key in _TIMES:
        if key in view:
            view[key] = _iso(view[key])
    for entry in view.get("requeues", []) or []:
        entry["at"] = _iso(entry.get("at"))
    view["url"] = f"/jobs/{record['id']}"
    view["artifacts_url"] = f"/jobs/{record['id']}/artifacts"
    return view


def owned_job(store: Store, job_id: str, owner: str) -> dict:
    record = store.read_job(job_id)
    if record is None or record.get("owner") != owner or record.get("deleted"):
        raise HTTPException(404, f"no job {job_id!r}")
    return record


def _parse_request(body: Any) -> JobRequest:
    try:
        return JobRequest.model_validate(body)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors())
        raise HTTPException(422, f"invalid job request: {problems}") from None


def _create(request: Request, owner: str, job: JobRequest) -> dict:
    """Validate, check the quota, write the record, and send the message (sync: threadpool)."""
    from rntk_core.config import ConfigError, parse_config

    store: Store = request.app.state.store
    settings: Settings = request.app.state.settings
    if store.dataset_meta(owner, job.dataset_id) is None:
        raise HTTPException(404, f"no dataset {job.dataset_id!r}")
    try:
        config = parse_config(job.config)
    except ConfigError as exc:
        raise HTTPException(422, str(exc)) from None
    if config.features_per_step != 1:  # the upload was checked with m = 1
        from app.routes.datasets import _validate
        _validate(store.dataset_file(owner, job.dataset_id), settings, config.features_per_step)
    active = sum(1 for rec in store.iter_jobs()
                 if rec.get("owner") == owner and rec.get("state") in ("queued", "running"))
    if active >= settings.max_queued_jobs:
        raise HTTPException(429, f"{active} jobs queued or running, the limit per key is "
                                 f"{settings.max_queued_jobs}; wait for some to finish")
    record = {
        "id": store.new_job_id(), "owner": owner, "dataset_id": job.dataset_id,
        "config": config.model_dump(mode="json"), "artifacts": job.artifacts.model_dump(),
        "state": "queued", "progress": {"stage": "queued", "done": 0, "total": 1},
        "created_at": now(), "started_at": None, "finished_at": None, "error": None,
        "summary": None, "attempts": 0, "message_id": uuid.uuid4().hex, "enqueued_at": None,
    }
    store.create_job(record)
    from worker.recovery import enqueue

    enqueue(store, request.app.state.celery, settings, record["id"])
    return store.read_job(record["id"]) or record


_JOB_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {
        "type": "object", "required": ["dataset_id"],
        "properties": {"dataset_id": {"type": "string"},
                       "config": {"type": "object", "description": "EvaluationConfig"},
                       "artifacts": {"type": "object", "properties": {
                           "gram": {"type": "string", "enum": ["selected", "all", "none"]}}}}}},
    "multipart/form-data": {"schema": {
        "type": "object", "required": ["file"],
        "properties": {"file": {"type": "string", "format": "binary"},
                       "config": {"type": "string", "description": "EvaluationConfig as JSON"},
                       "artifacts": {"type": "string", "description": 'e.g. {"gram": "all"}'}}}}}}}


@router.post("/jobs", status_code=202, summary="Submit an evaluation job", openapi_extra=_JOB_BODY)
async def submit_job(request: Request, response: Response, owner: str = Depends(current_owner),
                     store: Store = Depends(get_store),
                     settings: Settings = Depends(get_settings_dep)) -> dict:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        meta, fields = await receive_upload(request, store, settings, owner)
        body: dict[str, Any] = {"dataset_id": meta["id"]}
        for name in ("config", "artifacts"):
            if fields.get(name, "").strip():
                try:
                    body[name] = json.loads(fields[name])
                except json.JSONDecodeError as exc:
                    raise HTTPException(422, f"form field {name!r} is not valid JSON: {exc.msg}") from None
    else:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > _MAX_JSON_BYTES:
            raise HTTPException(413, "a job request is at most 1 MB of JSON")
        raw = bytearray()
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > _MAX_JSON_BYTES:
                raise HTTPException(413, "a job request is at most 1 MB of JSON")
        try:
            body = json.loads(bytes(raw) or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise HTTPException(422, f"the body is not valid JSON: {exc}") from None
    job = _parse_request(body)
    record = await run_in_threadpool(_create, request, owner, job)
    response.headers["Location"] = f"/jobs/{record['id']}"
    return job_view(record)


@router.get("/jobs", summary="The caller's jobs, newest first")
def list_jobs(state: str | None = Query(None, description="|".join(JOB_STATES)),
              limit: int = Query(50, ge=1, le=1000), offset: int = Query(0, ge=0),
              owner: str = Depends(current_owner), store: Store = Depends(get_store)) -> list[dict]:
    if state is not None and state not in JOB_STATES:
        raise HTTPException(422, f"unknown state {state!r}; one of {', '.join(JOB_STATES)}")
    return [job_view(rec) for rec in store.list_jobs(owner, state, limit, offset)]


@router.get("/jobs/{job_id}", summary="One job: state, progress, times, error, summary")
async def get_job(job_id: str, owner: str = Depends(current_owner), store: Store = Depends(get_store)) -> dict:
    return job_view(owned_job(store, job_id, owner))


def _cancel(store: Store, job_id: str) -> tuple[dict | None, bool]:
    """Cancel a queued job at once; ask a running one to stop (it checks between tiles and fits).

    Returns the record and whether it was still queued or running when the cancel took hold:
    the state is re-read under the job's lock, so a job finishing meanwhile is not "cancelled".
    """
    store.request_cancel(job_id)
    accepted = False

    def change(rec: dict) -> None:
        nonlocal accepted
        if rec.get("state") == "queued":
            rec.update(state="cancelled", finished_at=now(),
                       progress={**(rec.get("progress") or {}), "stage": "cancelled"})
            accepted = True
        elif rec.get("state") == "running":
            rec["cancel_requested"] = True
            accepted = True

    return store.update_job(job_id, change), accepted


@router.post("/jobs/{job_id}/cancel", status_code=202, summary="Cancel a queued or running job")
def cancel_job(job_id: str, owner: str = Depends(current_owner), store: Store = Depends(get_store)) -> dict:
    record = owned_job(store, job_id, owner)
    updated, accepted = _cancel(store, job_id)
    record = updated or record
    if not accepted:
        raise HTTPException(409, f"job {job_id!r} already {record['state']}")
    return job_view(record)


@router.delete("/jobs/{job_id}", status_code=204, summary="Cancel a job and remove it with its artifacts")
def delete_job(job_id: str, owner: str = Depends(current_owner), store: Store = Depends(get_store)) -> Response:
    record = owned_job(store, job_id, owner)
    if record["state"] not in TERMINAL_STATES:
        _cancel(store, job_id)
    store.update_job(job_id, lambda rec: rec.update(deleted=True, deleted_at=now()))
    store.remove_artifacts(job_id)
    return Response(status_code=204)
