"""POST /datasets (streamed upload, validated, content-addressed per owner), GET /datasets/{id}.

The routes translate HTTP; what they do is in :mod:`app.service` (and the upload's streaming
in :func:`app.uploads.receive_upload`).
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from app import service
from app.deps import OwnerDep, SettingsDep, StoreDep
from app.models import DatasetView, errors
from app.uploads import receive_upload

router = APIRouter(prefix="/datasets", tags=["datasets"], responses=errors(401))

_UPLOAD_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {
    "schema": {"type": "object", "required": ["file"],
               "properties": {"file": {"type": "string", "format": "binary"}}}}}}}


@router.post("", status_code=201, summary="Upload a dataset (.csv, .npz, .ts, or .zip of a UCI folder or a .ts TRAIN/TEST pair)",
             openapi_extra=_UPLOAD_BODY, response_model=DatasetView,
             responses=errors(400, 408, 413, 415, 422, 503, 507))
async def upload_dataset(request: Request, owner: OwnerDep, store: StoreDep, settings: SettingsDep) -> DatasetView:
    meta, _ = await receive_upload(request, store, settings, owner)
    return DatasetView.from_meta(meta)


@router.get("/{dataset_id}", summary="A dataset's shape and format",
            response_model=DatasetView, responses=errors(404))
def get_dataset(dataset_id: str, owner: OwnerDep, store: StoreDep) -> DatasetView:
    return DatasetView.from_meta(service.get_dataset(store, owner, dataset_id))
