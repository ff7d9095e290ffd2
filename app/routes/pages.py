"""HTML pages for a browser: the job list with a submit form, one job's page, its report.

Server-rendered jinja2 templates (``app/templates/``, autoescaped) with inline CSS: no
scripts, no external assets, no build step. Pages refresh themselves with
``<meta http-equiv="refresh">`` while something is running.

- ``GET /``: the jobs (dataset, families, state, overall progress with ETA, accuracy) and a
  form that uploads a dataset and submits a job (``POST /page/submit``).
- ``GET /jobs/{id}/page``: the job's facts, its artifacts as links, a cancel button while it
  runs ("cancel requested" once asked), and the report inline (no iframe).
- ``GET /compare?job=A&job=B``: the jobs' test accuracy (± std over folds) per family side by side.
- ``GET /jobs/{id}/page/report.html`` and ``/jobs/{id}/page/artifacts/{name}``: the files.

Auth: with ``RNTK_API_KEYS`` set, a page needs a key like every endpoint. A browser cannot
send the bearer header, so the pages (only they) also accept ``?key=KEY``, which sets an
HttpOnly, SameSite=Strict cookie and redirects to the same address without the key, and then
that cookie. SameSite=Strict also keeps other sites from posting the forms. Every page shows
only the key owner's jobs.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from app import service
from app.deps import PAGE_COOKIE, CeleryDep, SettingsDep, StoreDep, page_credentials
from app.uploads import receive_upload
from app.models import REPORT_HTML_HEADERS
from worker.jobs import JobRecord, JobState, Store

router = APIRouter(tags=["pages"], include_in_schema=False)
#: A job's own pages: /jobs/{job_id}/page, its cancel button, report and artifacts.
job_router = APIRouter(prefix="/jobs/{job_id}/page", tags=["pages"], include_in_schema=False)

_TEMPLATES = Environment(loader=FileSystemLoader(Path(__file__).resolve().parents[1] / "templates"),
                         autoescape=select_autoescape(default=True, default_for_string=True),
                         trim_blocks=True, lstrip_blocks=True)
_ACTIVE_REFRESH_S, _IDLE_REFRESH_S = 2, 15
_STATES = [state.value for state in JobState]
_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'")
_EXAMPLE_CONFIG = {"families": ["RNN", "BI-RNN", "RBF"], "sigma_u": [0.5], "sigma_b": [0.1],
                   "layers": [1, 2], "C": [1, 100, 10000]}
_REPORT_STYLE = re.compile(r'<style id="rntk-report-style">(.*?)</style>', re.S)
_REPORT_MAIN = re.compile(r'<main class="rntk-report">.*</main>', re.S)


def _page(template: str, status: int = 200, refresh: int | None = None, **context: Any) -> HTMLResponse:
    html = _TEMPLATES.get_template(template).render(refresh=refresh, **context)
    return HTMLResponse(html, status_code=status, headers={
        "Cache-Control": "no-store", "X-Frame-Options": "DENY", "Content-Security-Policy": _CSP})


def _login(request: Request, reason: str) -> HTMLResponse:
    message = "That key is not valid." if reason == "invalid" else "This server needs an API key."
    return _page("login.html.j2", status=401, title="rntk: API key needed", message=message,
                 action=request.url.path)


def _authenticate(request: Request) -> tuple[str | None, Response | None]:
    """The owner, or the response to send instead (the key form, or the cookie redirect)."""
    owner, source = page_credentials(request)
    if owner is None:
        return None, _login(request, source)
    if source == "query":  # keep the key out of the address bar and history
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "key"]
        target = request.url.path + (f"?{urlencode(params)}" if params else "")
        redirect = RedirectResponse(target, status_code=303)
        redirect.set_cookie(PAGE_COOKIE, request.query_params["key"], httponly=True, samesite="strict",
                            secure=request.url.scheme == "https", path="/")
        return owner, redirect
    return owner, None


def _when(value: float | None) -> str:
    if value is None:
        return ""
    return datetime.fromtimestamp(value, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _eta(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)) or seconds < 0:
        return ""
    seconds = int(round(seconds))
    return f"ETA {seconds // 60}:{seconds % 60:02d}"


def _progress(record: JobRecord) -> dict | None:
    """Overall fraction (per mille) and one consistent text: ``42% kernels 3/8 ETA 0:12``."""
    progress, state = record.progress, record.state
    if state.terminal:
        return {"permille": 1000, "text": "100%"} if state == JobState.succeeded else None
    stage = progress.stage
    counts = f" {progress.done}/{progress.total}" if progress.total > 1 else ""
    parts = [f"{100 * progress.overall:.0f}%", "" if stage == state.value else stage + counts,
             _eta(progress.eta_s)]
    return {"permille": round(1000 * progress.overall), "text": " ".join(p for p in parts if p)}


def _summary(record: JobRecord) -> list[tuple[str, str]]:
    rows = []
    for family, result in (record.summary or {}).items():
        accuracy = result.test_accuracy
        rows.append((str(family), f"{100 * accuracy:.1f}%" if accuracy is not None else "n/a"))
    return rows


def _error(record: JobRecord) -> str | None:
    if record.error is None or record.summary:
        return None
    return f"{record.error.type}: {record.error.message}"


def _job(record: JobRecord) -> dict:
    """What the templates show of a job record."""
    families = record.config.families
    return {
        "id": record.id, "state": record.state.value,
        "dataset": record.dataset_name or "(unnamed)", "dataset_id": record.dataset_id,
        "families": ", ".join(map(str, families)) or "default",
        "progress": _progress(record), "summary": _summary(record), "error": _error(record),
        "created": _when(record.created_at), "finished": _when(record.finished_at),
        "attempts": record.attempts, "cost": record.cost.text if record.cost else None,
        "cancel_requested": record.cancel_requested and not record.state.terminal,
        "cancellable": not record.state.terminal and not record.cancel_requested,
    }


def _not_found(job_id: str) -> HTMLResponse:
    return _page("message.html.j2", status=404, title="rntk: no such job", message=f"No job {job_id}.")


def _jobs_page(store: Store, owner: str, state: str | None, *, status: int = 200,
               form_error: str | None = None, config_text: str | None = None) -> HTMLResponse:
    records = service.list_jobs(store, owner, JobState(state) if state else None, 200, 0)
    active = any(not r.state.terminal for r in records)
    refresh = _ACTIVE_REFRESH_S if active else _IDLE_REFRESH_S
    return _page("jobs.html.j2", status=status, refresh=None if form_error else refresh,
                 title="rntk jobs", jobs=[_job(r) for r in records], states=_STATES, state=state,
                 form_error=form_error,
                 config_text=config_text if config_text is not None else json.dumps(_EXAMPLE_CONFIG))


@router.get("/", response_class=HTMLResponse)
def jobs_page(request: Request, store: StoreDep, state: str | None = None) -> Response:
    owner, early = _authenticate(request)
    if early is not None:
        return early
    return _jobs_page(store, owner, state if state in _STATES else None)


@router.post("/page/submit", response_class=HTMLResponse)
async def submit_page(request: Request, store: StoreDep, settings: SettingsDep, celery: CeleryDep) -> Response:
    """The browser form: upload, submit, then go to the job's page (errors: the form again).

    The same path as ``POST /jobs`` (multipart): :func:`app.service.load_json` for the config,
    then :func:`app.service.submit_job`."""
    owner, early = _authenticate(request)
    if early is not None:
        return early
    config_text = ""
    try:
        meta, fields = await receive_upload(request, store, settings, owner)
        config_text = fields.get("config", "")
        body = {"dataset_id": meta.id,
                "config": service.load_json(config_text, "the config") if config_text.strip() else {},
                "artifacts": {"gram": fields.get("gram") or "selected"}}
        record = await run_in_threadpool(service.submit_job, store, settings, celery, owner, body)
    except (HTTPException, service.ServiceError) as exc:
        return _jobs_page(store, owner, None, status=exc.status_code, form_error=str(exc.detail),
                          config_text=config_text)
    return RedirectResponse(f"/jobs/{record.id}/page", status_code=303)


def _page_job(request: Request, store: Store, job_id: str) -> tuple[JobRecord | None, Response | None]:
    """The caller's job, or the response to send instead (key form, or 404)."""
    owner, early = _authenticate(request)
    if early is not None:
        return None, early
    record = service.find_job(store, owner, job_id)
    if record is None:
        return None, _not_found(job_id)
    return record, None


def _size(count: Any) -> str:
    if not isinstance(count, int):
        return ""
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return ""


def _inline_report(path: Path) -> tuple[Markup | None, Markup | None]:
    """The report's scoped style and ``<main>`` (written autoescaped by the report template)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None, None
    style, main = _REPORT_STYLE.search(text), _REPORT_MAIN.search(text)
    if not style or not main:
        return None, None
    return Markup(style.group(1).replace("body{", ".rntk-report-page{")), Markup(main.group(0))


@job_router.get("", response_class=HTMLResponse)
def job_page(job_id: str, request: Request, store: StoreDep) -> Response:
    record, early = _page_job(request, store, job_id)
    if early is not None:
        return early
    manifest = store.manifest(record.id)
    artifacts = [{"name": e["name"], "size": _size(e.get("size")),
                  "url": f"/jobs/{record.id}/page/artifacts/{e['name']}"} for e in manifest]
    style = body = None
    if any(e["name"] == "report.html" for e in manifest):
        style, body = _inline_report(store.artifacts_dir(record.id) / "report.html")
    return _page("job.html.j2", refresh=None if record.state.terminal else _ACTIVE_REFRESH_S,
                 title=f"rntk job {record.id[:12]}", job=_job(record), artifacts=artifacts,
                 report_style=style, report_body=body)


@job_router.post("/cancel")
def cancel_page(job_id: str, request: Request, store: StoreDep) -> Response:
    """The cancel button: ask, then show the job page (which says "cancel requested")."""
    owner, early = _authenticate(request)
    if early is not None:
        return early
    try:
        record, _ = service.cancel_job(store, owner, job_id)
    except service.NotFound:
        return _not_found(job_id)
    return RedirectResponse(f"/jobs/{record.id}/page", status_code=303)


def _artifact(store: Store, record: JobRecord, name: str) -> Path | None:
    found = service.find_artifact(store, record.id, name)
    return found[0] if found else None


@job_router.get("/artifacts/{name:path}")
def artifact_page(job_id: str, name: str, request: Request, store: StoreDep) -> Response:
    """An artifact for the browser (cookie auth), as a download."""
    record, early = _page_job(request, store, job_id)
    if early is not None:
        return early
    path = _artifact(store, record, name)
    if path is None:
        return _page("message.html.j2", status=404, title="rntk: no such file",
                     message=f"Job {job_id} has no artifact {name}.")
    return FileResponse(path, filename=path.name, headers={"Cache-Control": "no-store"})


@job_router.get("/report.html")
def job_report(job_id: str, request: Request, store: StoreDep) -> Response:
    """The standalone report (also linked from the artifacts)."""
    record, early = _page_job(request, store, job_id)
    if early is not None:
        return early
    path = _artifact(store, record, "report.html")
    if path is None:
        return _page("message.html.j2", status=404, title="rntk: no report", message="No report yet.")
    return FileResponse(path, media_type="text/html; charset=utf-8", headers=REPORT_HTML_HEADERS)


def _fold_std(store: Store, record: JobRecord) -> dict[str, float]:
    """Each family's std over test folds, from the job's report.json (empty without one)."""
    path = _artifact(store, record, "report.json")
    try:
        families = json.loads(path.read_text(encoding="utf-8")).get("families") or {} if path else {}
    except (OSError, ValueError):
        return {}
    spread = {}
    for family, result in families.items():
        folds = [f for f in (result or {}).get("fold_accuracies") or [] if isinstance(f, (int, float))]
        if len(folds) >= 2:
            mean = sum(folds) / len(folds)
            spread[family] = (sum((f - mean) ** 2 for f in folds) / len(folds)) ** 0.5
    return spread


@router.get("/compare", response_class=HTMLResponse)
def compare_page(request: Request, store: StoreDep, job: Annotated[list[str], Query()] = []) -> Response:
    """Several jobs' test accuracy per family side by side (``?job=A&job=B``)."""
    owner, early = _authenticate(request)
    if early is not None:
        return early
    records = [record for job_id in dict.fromkeys(job[:20]) if (record := service.find_job(store, owner, job_id))]
    families: list[str] = []
    for record in records:
        families += [name for name in (record.summary or {}) if name not in families]
    spreads = [_fold_std(store, record) for record in records]
    rows = []
    for family in families:
        cells = []
        for record, spread in zip(records, spreads):
            result = (record.summary or {}).get(family)
            accuracy = result.test_accuracy if result is not None else None
            text = f"{100 * accuracy:.1f}%" if accuracy is not None else "-"
            if family in spread and text != "-":
                text += f" ± {100 * spread[family]:.1f}"
            cells.append(text)
        rows.append((family, cells))
    return _page("compare.html.j2", title="rntk: compare jobs", jobs=[_job(r) for r in records], rows=rows)


router.include_router(job_router)
