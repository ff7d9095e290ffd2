"""POST /datasets (streamed upload, validated, content-addressed per owner), GET /datasets/{id}."""

from __future__ import annotations

import shutil
from pathlib import Path

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool

from app.deps import current_owner, get_settings_dep, get_store
from app.models import DatasetView, errors
from worker.settings import Settings
from worker.jobs import Store, now
from app.uploads import StreamedFile, parse_multipart, safe_filename

router = APIRouter(tags=["datasets"], responses=errors(401))

SUFFIXES = (".csv", ".npz", ".zip", ".ts")


def validate_dataset(path: Path, settings: Settings, features_per_step: int = 1):
    from rntk_core.evaluation.datasets import DatasetError, DatasetLimits, load_dataset

    limits = DatasetLimits(max_samples=settings.max_samples, max_steps=settings.max_steps)
    try:
        return load_dataset(path, features_per_step=features_per_step, limits=limits)
    except DatasetError as exc:
        message = str(exc).replace(str(path.parent) + "/", "").replace(str(path.parent), "")
        raise HTTPException(422, f"invalid dataset: {message}") from None


def ingest(store: Store, settings: Settings, owner: str, upload: StreamedFile, folder: Path) -> dict:
    """Validate one streamed upload and store it under ``datasets/<owner>/<sha256>/``."""
    filename = safe_filename(upload.filename)
    suffix = Path(filename).suffix.lower()
    if suffix not in SUFFIXES:
        raise HTTPException(422, f"{filename}: unsupported file type {suffix or '(no extension)'!r}; "
                                 "upload a .csv, a .npz, a .ts, or a .zip of a UCI dataset folder "
                                 "or of NAME_TRAIN.ts + NAME_TEST.ts")
    if upload.size == 0:
        raise HTTPException(422, f"{filename}: the file is empty")
    named = folder / filename
    upload.path.rename(named)
    dataset = validate_dataset(named, settings)  # first: hashing reads a zip's entries whole
    from rntk_core.evaluation.datasets import content_sha256

    # the id hashes the content, not the packing: a folder zipped by curl or by the client
    # (other entry order, compression, timestamps) is the same dataset
    dataset_id = content_sha256(named)
    existing = store.dataset_meta(owner, dataset_id)
    if existing is not None:
        return existing
    meta = {"id": dataset_id, "sha256": upload.sha256, "name": dataset.name, "format": dataset.format,
            "n_samples": dataset.n_samples, "n_steps": dataset.n_steps,
            "n_features": dataset.n_features, "n_classes": dataset.n_classes,
            "filename": filename, "file": filename, "size": upload.size, "created_at": now()}
    return store.commit_dataset(owner, dataset_id, named, meta)


async def receive_upload(request: Request, store: Store, settings: Settings, owner: str,
                         ) -> tuple[dict, dict[str, str]]:
    """Stream the multipart body to a private folder, ingest its ``file``; also the text fields."""
    folder = store.upload_tmp()
    try:
        form = await parse_multipart(request, folder, settings.max_upload_bytes)
        upload = form.files.get("file")
        if upload is None:
            raise HTTPException(422, "missing the multipart field 'file'")
        meta = await run_in_threadpool(ingest, store, settings, owner, upload, folder)
        return meta, form.fields
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@router.post("/datasets", status_code=201, summary="Upload a dataset (.csv, .npz, .ts, or .zip of a UCI folder or a .ts TRAIN/TEST pair)",
             openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {
                 "schema": {"type": "object", "required": ["file"],
                            "properties": {"file": {"type": "string", "format": "binary"}}}}}}},
             response_model=DatasetView, responses=errors(400, 413, 415, 422, 507))
async def upload_dataset(request: Request, owner: str = Depends(current_owner),
                         store: Store = Depends(get_store),
                         settings: Settings = Depends(get_settings_dep)) -> DatasetView:
    meta, _ = await receive_upload(request, store, settings, owner)
    return DatasetView.from_meta(meta)


@router.get("/datasets/{dataset_id}", summary="A dataset's shape and format",
            response_model=DatasetView, responses=errors(404))
def get_dataset(dataset_id: str, owner: str = Depends(current_owner),
                store: Store = Depends(get_store)) -> DatasetView:
    meta = store.dataset_meta(owner, dataset_id)
    if meta is None:
        raise HTTPException(404, f"no dataset {dataset_id!r}")
    return DatasetView.from_meta(meta)
