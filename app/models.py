"""The HTTP API's request and response models: what /openapi.json documents."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from rntk_core.evaluation.config import EvaluationConfig
from worker.jobs import ArtifactOptions, DatasetMeta, JobError, JobRecord, JobState, Progress

__all__ = [
    "ArtifactOptions", "ArtifactView", "DatasetView", "ErrorResponse", "JobRequest", "JobView",
    "ERRORS", "errors",
]


class ErrorResponse(BaseModel):
    """Every error: ``{"detail": "what is wrong"}``."""

    detail: str


_ERROR_TEXT = {
    401: "missing or invalid API key",
    404: "no such object for this key",
    409: "the job is already finished",
    413: "the upload or request is over the size limit",
    416: "the Range cannot be satisfied",
    422: "invalid request, config or dataset",
    429: "too many queued or running jobs for this key",
    400: "a malformed multipart body",
    415: "not a multipart/form-data body",
    507: "the service's data volume is full",
    # an upload's own refusals (app.uploads)
    408: "the body sent nothing for RNTK_UPLOAD_IDLE_TIMEOUT_S",
    503: "RNTK_MAX_CONCURRENT_UPLOADS uploads are in progress; try again after Retry-After seconds",
}
ERRORS: dict[int, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text} for code, text in _ERROR_TEXT.items()
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` entry of a route that can answer these error codes."""
    return {code: ERRORS[code] for code in codes}


class JobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dataset_id: str = Field(description="The id returned by POST /datasets.")
    config: EvaluationConfig = Field(default_factory=EvaluationConfig,
                                     description="The evaluation config; omitted fields take the paper's defaults.")
    artifacts: ArtifactOptions = Field(default_factory=ArtifactOptions)


class DatasetView(BaseModel):
    id: str = Field(description="The dataset's content hash: the same files give the same id, "
                                "however they were zipped.")
    name: str | None = Field(default=None, description="The dataset's name (the UCI folder's, or the file's stem).")
    format: str
    n_samples: int
    n_steps: int
    n_features: int
    n_classes: int
    test_folds: int | None = Field(default=None, description="Test folds of the dataset's predefined splits "
                                   "(4 for a UCI folder, 1 for TRAIN/TEST); None: the stratified protocol's 4.")
    selection: str | None = Field(default=None, description="How its predefined splits select hyperparameters: "
                                  "\"holdout\" (a validation part) or \"cv\" (k folds inside TRAIN).")
    sha256: str = Field(description="sha256 of the uploaded file's bytes.")
    filename: str
    size: int
    created_at: float | None = None

    @classmethod
    def from_meta(cls, meta: DatasetMeta) -> "DatasetView":
        return cls.model_validate({name: getattr(meta, name, None) for name in cls.model_fields})


class Requeued(BaseModel):
    at: str | None
    reason: str


def iso(value: float | None) -> str | None:
    if value is None:
        return None
    return datetime.fromtimestamp(value, tz=timezone.utc).isoformat().replace("+00:00", "Z")


class JobView(BaseModel):
    """A job as the API shows it: no owner, no broker bookkeeping; times in ISO 8601 (UTC)."""

    id: str
    dataset_id: str
    dataset_name: str | None = None
    config: dict[str, Any] = Field(description="The job's EvaluationConfig, without the settings of "
                                               "families that do not run.")
    artifacts: dict[str, Any]
    state: JobState
    progress: Progress
    created_at: str | None
    started_at: str | None = None
    finished_at: str | None = None
    updated_at: str | None = None
    enqueued_at: str | None = None
    error: JobError | None = None
    summary: dict[str, Any] | None = None
    attempts: int = 0
    cost: dict[str, Any] | None = Field(default=None, description="The estimate made at submit time "
                                        "(rntk_core.evaluation.cost): kernels, fits, seconds.")
    run_cost: dict[str, Any] | None = Field(default=None, description="The estimate redone by the worker once "
                                            "the dataset was loaded (its protocol's folds and selection "
                                            "pairs, the worker's rates): what the progress and ETAs weigh by.")
    requeues: list[Requeued] = Field(default_factory=list)
    cancel_requested: bool = False
    worker: str | None = None
    phase_seconds: dict[str, float] = Field(default_factory=dict)
    timings: dict[str, Any] | None = None
    artifact_count: int | None = None
    url: str
    artifacts_url: str

    @classmethod
    def from_record(cls, record: JobRecord) -> "JobView":
        times = {name: iso(getattr(record, name)) for name in
                 ("created_at", "started_at", "finished_at", "updated_at", "enqueued_at")}
        # the typed parts as the record file holds them (config: the used settings only)
        parts = record.model_dump(mode="json", include={"config", "artifacts", "summary", "cost", "run_cost",
                                                          "timings"})
        return cls(
            id=record.id, dataset_id=record.dataset_id, dataset_name=record.dataset_name,
            config=parts["config"], artifacts=parts["artifacts"],
            state=record.state, progress=record.progress, error=record.error, summary=parts["summary"],
            attempts=record.attempts, cost=parts["cost"], run_cost=parts.get("run_cost"),
            cancel_requested=record.cancel_requested, worker=record.worker,
            phase_seconds=record.phase_seconds, timings=parts["timings"],
            artifact_count=record.artifact_count,
            requeues=[Requeued(at=iso(entry.at), reason=entry.reason) for entry in record.requeues],
            url=f"/jobs/{record.id}", artifacts_url=f"/jobs/{record.id}/artifacts", **times,
        )


class ArtifactView(BaseModel):
    name: str
    size: int
    sha256: str
    media_type: str
    url: str


#: How a stored report.html is served, by the API and by the pages alike: inline, under a
#: policy that lets it run nothing and load nothing from elsewhere.
REPORT_HTML_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                               "frame-ancestors 'none'",
}
