"""HTML pages for a browser: the job list with a submit form, one job's page, its report.

Server-rendered jinja2 templates (``app/templates/``, autoescaped) with inline CSS: no
scripts, no external assets, no build step. Pages refresh themselves with
``<meta http-equiv="refresh">`` while something is running.

- ``GET /``: the jobs (dataset, families, state, overall progress with ETA, accuracy) and a
  form that uploads a dataset and submits a job (``POST /page/submit``).
- ``GET /jobs/{id}/page``: the job's facts, its artifacts as links, a cancel button while it
  runs ("cancel requested" once asked), and the report inline (no iframe).
- ``GET /compare?job=A&job=B``: the jobs' test accuracy (± std over folds) per family side by side,
  and the config fields in which they differ.
- ``GET /jobs/{id}/page/report.html`` and ``/jobs/{id}/page/artifacts/{name}``: the files.

Auth: with ``RNTK_API_KEYS`` set, a page needs a key like every endpoint. A browser cannot
send the bearer header, so the pages (only they) also accept a login session: ``GET
/page/login`` shows a form that posts the key (in the body) to ``POST /page/login``, which
sets the HttpOnly, SameSite=Strict cookie ``rntk_session``. It holds a random session id,
never the key; the owner and the expiry (``RNTK_SESSION_HOURS``, default 12) live on the
server (:mod:`app.sessions`), and ``POST /page/logout`` (the "Log out" button) deletes them.
A page asked for without a valid session redirects to the login form. A ``?key=`` in the
address is ignored: no GET ever logs a browser in. Every page shows only the owner's jobs.

CSRF: SameSite=Strict is not enough (another port of the same host is the same *site*), and
without keys there is no cookie at all. So every form that changes something (submit,
cancel, login, logout) is refused with 403 when the browser says it came from another origin
(``app.main.RequestGuard``, also for the API), and it carries a token in its action's query
string (``?csrf=``), checked before the body is read, so that a refused upload stores
nothing. The token is an HMAC (:meth:`app.sessions.Sessions.token`) of the session, of the
owner (the bearer header, or no keys), or, on the login form, of a nonce in a short-lived
``rntk_login`` cookie. The query is where Spring Security also puts a multipart form's
token; every answer carries ``Referrer-Policy: same-origin``, and a form's POST redirects.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
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
from app.deps import CeleryDep, SessionsDep, SettingsDep, StoreDep, match_key, page_user, sessions_of
from app.sessions import SESSION_COOKIE
from app.uploads import drain, receive_upload
from app.models import REPORT_HTML_HEADERS
from rntk_core.evaluation.report.compare import config_differences
from worker.jobs import JobRecord, JobState, Store, owner_of_key

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
#: The login form's nonce (its CSRF token is the HMAC of it), and the cookie that held the raw
#: key before sessions (cleared at login and logout).
_LOGIN_COOKIE, _OLD_KEY_COOKIE = "rntk_login", "rntk_key"
_LOGIN_FORM_S = 3600
_MAX_LOGIN_BODY = 16 << 10


@dataclass(frozen=True)
class _Visitor:
    """Whom a page is for: the owner, the token its forms carry, and its login session if it
    came through one (then the pages show a logout button)."""

    owner: str
    binding: str  # what its token is bound to (:class:`app.deps.PageUser`)
    csrf: str
    session_id: str | None = None

    @property
    def logged_in(self) -> bool:
        return self.session_id is not None


def _page(template: str, status: int = 200, refresh: int | None = None, visitor: _Visitor | None = None,
          **context: Any) -> HTMLResponse:
    context = {"csrf": visitor.csrf if visitor else "", "logged_in": bool(visitor and visitor.logged_in), **context}
    html = _TEMPLATES.get_template(template).render(refresh=refresh, **context)
    return HTMLResponse(html, status_code=status, headers={
        "Cache-Control": "no-store", "X-Frame-Options": "DENY", "Content-Security-Policy": _CSP})


def _message(status: int, title: str, message: str, visitor: _Visitor | None = None) -> HTMLResponse:
    return _page("message.html.j2", status=status, title=title, message=message, visitor=visitor)


def _here(request: Request) -> str:
    """The request's path and query, less any ``key`` (where to come back to after the login)."""
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "key"]
    return request.url.path + (f"?{urlencode(params)}" if params else "")


def _local(target: str | None) -> str:
    """``target`` if it is a path on this server, else ``/`` (no redirect to another site)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")) or any(
            ord(c) < 32 for c in target):
        return "/"
    return target


def _authenticate(request: Request) -> tuple[_Visitor | None, Response | None]:
    """Whom the page is for, or the response to send instead: a GET goes to the login form
    (and comes back after it), anything else is 401 with a link to it."""
    user, reason = page_user(request)
    if user is not None:
        token = sessions_of(request).token(user.binding)
        return _Visitor(user.owner, user.binding, token, user.session.id if user.session else None), None
    if request.method in ("GET", "HEAD"):
        query = {"next": _here(request)}
        if reason in ("expired", "invalid"):
            query["reason"] = reason
        early: Response = RedirectResponse(f"/page/login?{urlencode(query)}", status_code=303)
    else:
        early = _message(401, "rntk: log in", "Log in first: open the job list to get the login form.")
    if reason == "expired":
        early.delete_cookie(SESSION_COOKIE, path="/")
    return None, early


def _forged(request: Request, visitor: _Visitor) -> HTMLResponse | None:
    """403 when the form's ``?csrf=`` token is not the visitor's, else None."""
    if sessions_of(request).check(visitor.binding, request.query_params.get("csrf")):
        return None
    return _message(403, "rntk: form refused",
                    "This form's security token is missing or out of date (a request from another site, or "
                    "a page from before your last login). Reload the page and submit again.", visitor)


def _login_form(request: Request, status: int, message: str | None, target: str) -> HTMLResponse:
    """The login form, with its nonce cookie (kept if the browser has a well-formed one)."""
    nonce = request.cookies.get(_LOGIN_COOKIE, "")
    if not re.fullmatch(r"[A-Za-z0-9_-]{32,64}", nonce):
        nonce = secrets.token_urlsafe(32)
    response = _page("login.html.j2", status=status, title="rntk: log in", message=message,
                     csrf=sessions_of(request).token(f"login:{nonce}"), next=_local(target))
    response.set_cookie(_LOGIN_COOKIE, nonce, max_age=_LOGIN_FORM_S, path="/page/login", httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")
    return response


_LOGIN_REASONS = {"expired": "Your login has expired or ended: log in again.",
                  "invalid": "That key is not valid."}


@router.get("/page/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/", reason: str = "") -> Response:
    """The login form (``next``: where to go after it)."""
    if not request.app.state.settings.keys:
        return RedirectResponse(_local(next), status_code=303)  # no keys: nothing to log in to
    return _login_form(request, 200, _LOGIN_REASONS.get(reason), next)


@router.post("/page/login")
async def login(request: Request, settings: SettingsDep, sessions: SessionsDep, next: str = "/") -> Response:
    """Check the key from the form's body, start a session, and go to ``next``."""
    if not settings.keys:
        return RedirectResponse("/", status_code=303)
    nonce = request.cookies.get(_LOGIN_COOKIE, "")
    if not nonce or not sessions.check(f"login:{nonce}", request.query_params.get("csrf")):
        await drain(request)
        return _login_form(request, 403, "The login form had expired or was not this server's own: "
                                         "enter the key again.", next)
    declared = request.headers.get("content-length", "")
    if not declared.isdigit() or int(declared) > _MAX_LOGIN_BODY:
        await drain(request)
        return _login_form(request, 413, "The login form's body was too large, or had no length.", next)
    form = await request.form()
    matched = match_key(settings.keys, str(form.get("key") or "").strip())
    if matched is None:
        return _login_form(request, 401, _LOGIN_REASONS["invalid"], next)
    sessions.delete(request.cookies.get(SESSION_COOKIE, ""))  # a new login ends the browser's old session
    lifetime = max(1, round(settings.session_hours * 3600))
    session = sessions.create(owner_of_key(matched), lifetime)
    response = RedirectResponse(_local(next), status_code=303)
    response.set_cookie(SESSION_COOKIE, session.id, max_age=lifetime, expires=lifetime, path="/", httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")
    response.delete_cookie(_LOGIN_COOKIE, path="/page/login")
    if _OLD_KEY_COOKIE in request.cookies:
        response.delete_cookie(_OLD_KEY_COOKIE, path="/")
    return response


@router.post("/page/logout")
def logout(request: Request, sessions: SessionsDep) -> Response:
    """The logout button: delete the session on the server, drop the cookie, show the login form."""
    visitor, _ = _authenticate(request)
    if visitor is not None and visitor.session_id is not None:
        forged = _forged(request, visitor)
        if forged is not None:
            return forged
        sessions.delete(visitor.session_id)
    response = RedirectResponse("/page/login", status_code=303)
    for name in (SESSION_COOKIE, _OLD_KEY_COOKIE):
        if name in request.cookies:
            response.delete_cookie(name, path="/")
    return response


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


def _not_found(job_id: str, visitor: _Visitor) -> HTMLResponse:
    return _message(404, "rntk: no such job", f"No job {job_id}.", visitor)


def _jobs_page(store: Store, visitor: _Visitor, state: str | None, *, status: int = 200,
               form_error: str | None = None, config_text: str | None = None) -> HTMLResponse:
    records = service.list_jobs(store, visitor.owner, JobState(state) if state else None, 200, 0)
    active = any(not r.state.terminal for r in records)
    refresh = _ACTIVE_REFRESH_S if active else _IDLE_REFRESH_S
    return _page("jobs.html.j2", status=status, refresh=None if form_error else refresh, visitor=visitor,
                 title="rntk jobs", jobs=[_job(r) for r in records], states=_STATES, state=state,
                 form_error=form_error,
                 config_text=config_text if config_text is not None else json.dumps(_EXAMPLE_CONFIG))


@router.get("/", response_class=HTMLResponse)
def jobs_page(request: Request, store: StoreDep, state: str | None = None) -> Response:
    visitor, early = _authenticate(request)
    if early is not None:
        return early
    return _jobs_page(store, visitor, state if state in _STATES else None)


@router.post("/page/submit", response_class=HTMLResponse)
async def submit_page(request: Request, store: StoreDep, settings: SettingsDep, celery: CeleryDep) -> Response:
    """The browser form: upload, submit, then go to the job's page (errors: the form again).

    The same path as ``POST /jobs`` (multipart): :func:`app.service.load_json` for the config,
    then :func:`app.service.submit_job`. The token is checked before the upload is read."""
    visitor, early = _authenticate(request)
    if early is None:
        early = _forged(request, visitor)
    if early is not None:
        await drain(request)  # so that the browser reads the answer (see app.uploads)
        return early
    owner, config_text = visitor.owner, ""
    try:
        meta, fields = await receive_upload(request, store, settings, owner)
        config_text = fields.get("config", "")
        body = {"dataset_id": meta.id,
                "config": service.load_json(config_text, "the config") if config_text.strip() else {},
                "artifacts": {"gram": fields.get("gram") or "selected"}}
        record = await run_in_threadpool(service.submit_job, store, settings, celery, owner, body)
    except (HTTPException, service.ServiceError) as exc:
        return _jobs_page(store, visitor, None, status=exc.status_code, form_error=str(exc.detail),
                          config_text=config_text)
    return RedirectResponse(f"/jobs/{record.id}/page", status_code=303)


def _page_job(request: Request, store: Store, job_id: str,
              ) -> tuple[JobRecord | None, _Visitor | None, Response | None]:
    """The caller's job and the caller, or the response to send instead (the login, or 404)."""
    visitor, early = _authenticate(request)
    if early is not None:
        return None, None, early
    record = service.find_job(store, visitor.owner, job_id)
    if record is None:
        return None, visitor, _not_found(job_id, visitor)
    return record, visitor, None


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
    record, visitor, early = _page_job(request, store, job_id)
    if early is not None:
        return early
    manifest = store.manifest(record.id)
    artifacts = [{"name": e["name"], "size": _size(e.get("size")),
                  "url": f"/jobs/{record.id}/page/artifacts/{e['name']}"} for e in manifest]
    style = body = None
    if any(e["name"] == "report.html" for e in manifest):
        style, body = _inline_report(store.artifacts_dir(record.id) / "report.html")
    return _page("job.html.j2", refresh=None if record.state.terminal else _ACTIVE_REFRESH_S, visitor=visitor,
                 title=f"rntk job {record.id[:12]}", job=_job(record), artifacts=artifacts,
                 report_style=style, report_body=body)


@job_router.post("/cancel")
def cancel_page(job_id: str, request: Request, store: StoreDep, celery: CeleryDep,
                settings: SettingsDep) -> Response:
    """The cancel button: ask, then show the job page (which says "cancel requested")."""
    visitor, early = _authenticate(request)
    if early is None:
        early = _forged(request, visitor)
    if early is not None:
        return early
    try:
        record, _ = service.cancel_job(store, visitor.owner, job_id, celery, settings)
    except service.NotFound:
        return _not_found(job_id, visitor)
    return RedirectResponse(f"/jobs/{record.id}/page", status_code=303)


def _artifact(store: Store, record: JobRecord, name: str) -> Path | None:
    found = service.find_artifact(store, record.id, name)
    return found[0] if found else None


@job_router.get("/artifacts/{name:path}")
def artifact_page(job_id: str, name: str, request: Request, store: StoreDep) -> Response:
    """An artifact for the browser (cookie auth), as a download."""
    record, visitor, early = _page_job(request, store, job_id)
    if early is not None:
        return early
    path = _artifact(store, record, name)
    if path is None:
        return _message(404, "rntk: no such file", f"Job {job_id} has no artifact {name}.", visitor)
    return FileResponse(path, filename=path.name, headers={"Cache-Control": "no-store"})


@job_router.get("/report.html")
def job_report(job_id: str, request: Request, store: StoreDep) -> Response:
    """The standalone report (also linked from the artifacts)."""
    record, visitor, early = _page_job(request, store, job_id)
    if early is not None:
        return early
    path = _artifact(store, record, "report.html")
    if path is None:
        return _message(404, "rntk: no report", "No report yet.", visitor)
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
    visitor, early = _authenticate(request)
    if early is not None:
        return early
    records = [record for job_id in dict.fromkeys(job[:20])
               if (record := service.find_job(store, visitor.owner, job_id))]
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
    differences = config_differences([record.config.model_dump(mode="json") for record in records])
    return _page("compare.html.j2", title="rntk: compare jobs", visitor=visitor, jobs=[_job(r) for r in records],
                 rows=rows, differences=differences)


router.include_router(job_router)
