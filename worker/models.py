"""The typed parts of what the service keeps on disk: a job record's artifact options, cost,
summary and timings, and a dataset's ``meta.json``.

Each part is read back exactly as it was written: unknown fields are kept (a newer writer's
file survives an older reader), and fields a file did not have are not added when it is
written again (:class:`Recorded`), so records from before a field existed keep their JSON.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

__all__ = ["ArtifactOptions", "DatasetMeta", "FamilySummary", "JobCost", "JobTimings", "Recorded"]


class Recorded(BaseModel):
    """A part of a file the service wrote: extra fields kept, written back as it was read."""

    model_config = ConfigDict(extra="allow")

    @model_serializer(mode="wrap")
    def _as_read(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        given = self.model_fields_set | set(self.model_extra or ())
        return {name: value for name, value in data.items() if name in given}


class ArtifactOptions(BaseModel):
    # Which artifacts a job writes: the job request's ``artifacts`` (no docstring: it would
    # become the schema's description in /openapi.json)
    model_config = ConfigDict(extra="forbid")
    gram: Literal["selected", "all", "none"] = Field(
        default="selected",
        description="Gram matrices to write: those of the selected configurations, every one of "
                    "the grid, or none.")


class JobCost(Recorded):
    """The estimate made at submit time: :meth:`rntk_core.evaluation.cost.CostEstimate.as_dict`."""

    n_samples: int
    steps: int
    grids: int
    kernels: int
    baseline_kernels: int
    validation_fits: int
    test_fits: int
    kernel_seconds: float
    validation_seconds: float
    test_seconds: float
    seconds: float
    method: str | None = None
    host_bytes: int | None = None
    fits: int | None = None
    fit_seconds: float | None = None
    stage_seconds: dict[str, float] = Field(default_factory=dict,
                                            description="Expected seconds per progress stage.")
    text: str | None = Field(default=None, description="One line for a person.")


class FamilySummary(Recorded):
    """One family's outcome in a finished job's record: its test accuracy and chosen settings."""

    test_accuracy: float | None = None
    chosen: list[dict[str, Any]] | None = None


class JobTimings(Recorded):
    """The report's ``timings``: seconds per phase of the evaluation (``load`` ... ``total``)."""

    load: float | None = None
    kernels: float | None = None
    validation: float | None = None
    test: float | None = None
    report: float | None = None
    total: float | None = None


class DatasetMeta(Recorded):
    """A stored dataset's ``meta.json``: what the upload was and the shape it validated to."""

    id: str
    sha256: str | None = Field(default=None, description="sha256 of the uploaded file's bytes.")
    name: str | None = None
    format: str
    n_samples: int
    n_steps: int
    n_features: int | None = None
    n_classes: int | None = None
    #: predefined splits (a UCI folder, a TRAIN/TEST archive, an .npz with splits): their test
    #: folds, how they select ("holdout" or "cv") and, for one TRAIN/TEST split, TRAIN's size;
    #: None for a dataset without (the stratified protocol) or stored before these existed
    test_folds: int | None = None
    selection: str | None = None
    train_samples: int | None = None
    filename: str | None = None
    file: str = Field(description="The data file's name in the dataset's folder.")
    size: int | None = None
    created_at: float | None = None
