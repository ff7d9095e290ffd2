"""Liveness, readiness, and Prometheus metrics."""

from __future__ import annotations

import os
import tempfile
from typing import Any, Literal

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field

from app.deps import CeleryDep, SettingsDep, StoreDep, current_owner
from app.metrics import render_metrics
from worker.calibration import workers_view
from worker.jobs import Store
from worker.settings import Settings

router = APIRouter(tags=["health"])


class Health(BaseModel):
    """The API process answers."""

    status: Literal["ok"] = "ok"


class WorkerRates(BaseModel):
    """One live worker's rates for the cost model, measured when it started."""

    device: str | None = Field(default=None, description="its default JAX device, e.g. 'gpu: NVIDIA H100 80GB HBM3'")
    seconds_per_cell: float | None = Field(default=None, description="Gram grid seconds per cell")
    factor: float | None = Field(default=None, description="seconds_per_cell over the 2-core CPU constant")
    seconds_per_fit_sample2: float | None = Field(default=None, description="SVM fit seconds per squared sample")
    fit_factor: float | None = Field(default=None, description="the same over the 2-core CPU constant")
    measured_at: float | None = Field(default=None, description="Unix time of the measurement")


class Readiness(BaseModel):
    """Whether jobs can be accepted and run: the broker and the data dir, each with a note."""

    status: Literal["ready", "not ready"]
    broker: str = Field(description="e.g. 'broker reachable' or 'broker unreachable: ConnectionError'")
    data_dir: str = Field(description="e.g. 'data dir writable' or 'data dir not writable: ...'")
    mode: Literal["embedded", "broker"] = Field(
        description="embedded: the filesystem broker of `rntk serve`; broker: an external one (Redis)")
    detail: str | None = Field(default=None, description="'not ready' with a 503, absent otherwise")
    # no worker names here (this endpoint needs no key): /metrics has them
    workers: list[WorkerRates] = Field(
        default_factory=list, description="The live workers' calibrations, which the estimates at submission "
                                          "use (the slowest); empty: none recorded, 2-core CPU constants")


@router.get("/healthz", summary="Alive", response_model=Health)
def healthz() -> Health:
    return Health()


def _broker_ok(settings: Settings, celery: Any) -> tuple[bool, str]:
    if settings.embedded:
        folder = settings.broker_dir / "messages"
        ok = folder.is_dir() and os.access(folder, os.W_OK)
        return ok, "filesystem broker folder writable" if ok else "filesystem broker folder missing or read-only"
    try:
        with celery.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0.2, timeout=2)
        return True, "broker reachable"
    except Exception as exc:
        return False, f"broker unreachable: {type(exc).__name__}"


def _data_dir_ok(store: Store) -> tuple[bool, str]:
    try:
        with tempfile.NamedTemporaryFile(dir=store.root, prefix=".readyz-"):
            pass
        return True, "data dir writable"
    except OSError as exc:
        return False, f"data dir not writable: {exc.strerror}"


@router.get("/readyz", summary="Ready: broker reachable and data dir writable (503 otherwise)",
            response_model=Readiness, response_model_exclude_none=True,
            responses={503: {"model": Readiness, "description": "not ready: the broker or the data dir is not"}})
async def readyz(store: StoreDep, settings: SettingsDep, celery: CeleryDep) -> JSONResponse:
    broker, broker_note = await run_in_threadpool(_broker_ok, settings, celery)
    data, data_note = await run_in_threadpool(_data_dir_ok, store)
    workers = await run_in_threadpool(workers_view, settings) if broker else []
    body = {"status": "ready" if broker and data else "not ready",
            "broker": broker_note, "data_dir": data_note,
            "mode": "embedded" if settings.embedded else "broker",
            "workers": [{key: value for key, value in view.items() if key != "worker"} for view in workers]}
    return JSONResponse(body if broker and data else {**body, "detail": "not ready"},
                        status_code=200 if broker and data else 503)


@router.get("/metrics", summary="Prometheus metrics: jobs by state, job and phase durations, queue depth, "
                             "worker heartbeats, GPU memory, requeues",
            dependencies=[Depends(current_owner)], response_class=PlainTextResponse,
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                             "description": "Prometheus text exposition format"}})
async def metrics(store: StoreDep, settings: SettingsDep) -> Response:
    workers = await run_in_threadpool(workers_view, settings)
    body = await run_in_threadpool(render_metrics, store, workers)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
