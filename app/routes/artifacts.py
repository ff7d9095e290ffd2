"""A job's artifacts: the list, and downloads with HTTP Range support."""

from __future__ import annotations

import re

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse

from app import service
from app.deps import OwnerDep, StoreDep
from app.models import REPORT_HTML_HEADERS, ArtifactView, errors

router = APIRouter(prefix="/jobs/{job_id}/artifacts", tags=["artifacts"], responses=errors(401, 404))

_RANGE = re.compile(r"^\s*bytes\s*=\s*(.+)$", re.IGNORECASE)
_SPEC = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")


def range_ok(header: str, size: int) -> bool:
    """Whether a Range header is well formed and every range in it is satisfiable."""
    match = _RANGE.match(header)
    if not match:
        return False
    for spec in match.group(1).split(","):
        part = _SPEC.match(spec)
        if not part or (not part.group(1) and not part.group(2)):
            return False
        start, end = part.group(1), part.group(2)
        if start:
            if int(start) >= size or (end and int(end) < int(start)):
                return False
        elif int(end) == 0 or size == 0:
            return False
    return True


@router.get("", summary="The job's artifacts: name, size, sha256, media type, url",
            response_model=list[ArtifactView])
def list_artifacts(job_id: str, owner: OwnerDep, store: StoreDep) -> list[ArtifactView]:
    service.get_job(store, owner, job_id)
    return [ArtifactView(**entry, url=f"/jobs/{job_id}/artifacts/{entry['name']}")
            for entry in store.manifest(job_id)]


@router.get("/{name:path}", summary="Download one artifact (Range supported)",
            response_class=FileResponse, responses=errors(416))
def download_artifact(job_id: str, name: str, request: Request, owner: OwnerDep, store: StoreDep):
    service.get_job(store, owner, job_id)
    found = service.find_artifact(store, job_id, name)
    if found is None:
        raise HTTPException(404, f"job {job_id!r} has no artifact {name!r}")
    path, entry = found
    size = path.stat().st_size
    header = request.headers.get("range")
    if header is not None and not range_ok(header, size):
        return JSONResponse({"detail": f"range {header!r} not satisfiable for {size} bytes"},
                            status_code=416, headers={"Content-Range": f"bytes */{size}"})
    if entry["media_type"].startswith("text/html"):  # the report opens in the browser, confined
        return FileResponse(path, media_type="text/html; charset=utf-8", filename=path.name,
                            content_disposition_type="inline",
                            headers={"X-Content-SHA256": entry["sha256"], **REPORT_HTML_HEADERS})
    return FileResponse(path, media_type=entry["media_type"], filename=path.name,
                        headers={"X-Content-SHA256": entry["sha256"]})
