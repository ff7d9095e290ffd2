"""HTML pages for a browser: ``GET /`` lists the jobs, ``GET /jobs/{id}/page`` shows one.

Plain server-rendered HTML with inline CSS: no scripts, no external assets, no build step.
Pages refresh themselves with ``<meta http-equiv="refresh">`` while something is running.

Auth: with ``RNTK_API_KEYS`` set, a page needs a key like every endpoint. A browser cannot
send the bearer header, so the pages (only they) also accept ``?key=KEY``, which sets an
HttpOnly, SameSite=Strict cookie and redirects to the same address without the key, and then
that cookie. Every page shows only the key owner's jobs.
"""

from __future__ import annotations

from datetime import datetime, timezone
from html import escape
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from app.deps import PAGE_COOKIE, get_store, page_credentials
from worker.jobs import JobRecord, JobState, Store

router = APIRouter(tags=["pages"], include_in_schema=False)

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1.5rem;color:#1d1d1f}
h1{font-size:1.35rem;margin:0 0 .8rem}h1 a{color:inherit;text-decoration:none}
table{border-collapse:collapse;min-width:40rem}th,td{padding:.35rem .7rem;text-align:left;border-bottom:1px solid #e4e4e4}
th{font-weight:600;color:#555}code{font-size:.92em}
.state{display:inline-block;padding:0 .45rem;border-radius:.6rem;font-size:.85em;font-weight:600}
.queued{background:#eef}.running{background:#fff3c4}.succeeded{background:#d9f5df}
.failed{background:#fbd9d9}.cancelled{background:#e6e6e6}
.muted{color:#777}.error{color:#a01010}progress{width:7rem;vertical-align:middle}
nav a{margin-right:.8rem}iframe{width:100%;height:80vh;border:1px solid #ddd;margin-top:1rem}
"""
_ACTIVE_REFRESH_S, _IDLE_REFRESH_S = 2, 15


def _page(title: str, body: str, refresh: int | None = None, status: int = 200) -> HTMLResponse:
    meta = f'<meta http-equiv="refresh" content="{refresh}">' if refresh else ""
    return HTMLResponse(
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">{meta}'
        f'<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>{body}</body></html>",
        status_code=status,
        headers={"Cache-Control": "no-store", "X-Frame-Options": "SAMEORIGIN",
                 "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                                            "frame-src 'self'; img-src 'self' data:; form-action 'self'"})


def _login(request: Request, reason: str) -> HTMLResponse:
    message = "That key is not valid." if reason == "invalid" else "This server needs an API key."
    body = (f"<h1>rntk</h1><p class=\"error\">{message}</p>"
            f'<form method="get" action="{escape(request.url.path)}"><label>API key '
            f'<input type="password" name="key" autocomplete="current-password" autofocus></label> '
            f'<button type="submit">Open</button></form>'
            f'<p class="muted">Or send <code>Authorization: Bearer &lt;key&gt;</code>.</p>')
    return _page("rntk: API key needed", body, status=401)


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


def _state(record: JobRecord) -> str:
    state = record.state.value
    return f'<span class="state {escape(state)}">{escape(state)}</span>'


def _progress(record: JobRecord) -> str:
    progress = record.progress
    stage = escape(progress.stage)
    done, total = progress.done, max(progress.total, 1)
    return f'<progress value="{min(done, total)}" max="{total}"></progress> {stage} {done}/{total}'


def _summary(record: JobRecord) -> str:
    summary = record.summary or {}
    parts = []
    for family, result in summary.items():
        accuracy = (result or {}).get("test_accuracy")
        text = f"{100 * accuracy:.1f}%" if isinstance(accuracy, (int, float)) else "n/a"
        parts.append(f"<span>{escape(str(family))} <b>{text}</b></span>")
    if not parts and record.error:
        return f'<span class="error">{escape(record.error.type)}: {escape(record.error.message)}</span>'
    return " · ".join(parts)


def _owned(store: Store, job_id: str, owner: str) -> JobRecord | None:
    record = store.read_job(job_id)
    if record is None or record.owner != owner or record.deleted:
        return None
    return record


def _not_found(job_id: str) -> HTMLResponse:
    return _page("rntk: no such job", f'<h1><a href="/">rntk</a></h1><p class="error">No job '
                                      f"<code>{escape(job_id)}</code>.</p>", status=404)


@router.get("/", response_class=HTMLResponse)
def jobs_page(request: Request, state: str | None = None, store: Store = Depends(get_store)) -> Response:
    owner, early = _authenticate(request)
    if early is not None:
        return early
    states = [s.value for s in JobState]
    if state not in states:
        state = None
    records = store.list_jobs(owner, JobState(state) if state else None, 200, 0)
    rows = []
    for record in records:
        job_id = escape(record.id)
        rows.append(
            f'<tr data-job="{job_id}"><td><a href="/jobs/{job_id}/page"><code>{job_id[:12]}</code></a></td>'
            f'<td class="job-state">{_state(record)}</td><td>{_progress(record)}</td>'
            f'<td class="summary">{_summary(record)}</td>'
            f'<td class="muted">{escape(_when(record.created_at))}</td></tr>')
    filters = " ".join(f'<a href="/?state={s}">{s}</a>' for s in states)
    table = ("<table><thead><tr><th>job</th><th>state</th><th>progress</th>"
             "<th>test accuracy</th><th>created</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
             if rows else '<p class="muted">No jobs yet. Submit one with <code>rntk submit DATA</code>.</p>')
    active = any(not r.state.terminal for r in records)
    body = (f'<h1><a href="/">rntk jobs</a></h1><nav><a href="/">all</a>{filters}</nav>{table}'
            f'<p class="muted">{len(records)} job(s){" (" + escape(state) + ")" if state else ""}; '
            f"refreshes every {_ACTIVE_REFRESH_S if active else _IDLE_REFRESH_S} s.</p>")
    return _page("rntk jobs", body, refresh=_ACTIVE_REFRESH_S if active else _IDLE_REFRESH_S)


def _page_job(request: Request, store: Store, job_id: str) -> tuple[JobRecord | None, Response | None]:
    """The caller's job, or the response to send instead (key form, or 404)."""
    owner, early = _authenticate(request)
    if early is not None:
        return None, early
    record = _owned(store, job_id, owner)
    if record is None:
        return None, _not_found(job_id)
    return record, None


@router.get("/jobs/{job_id}/page", response_class=HTMLResponse)
def job_page(job_id: str, request: Request, store: Store = Depends(get_store)) -> Response:
    record, early = _page_job(request, store, job_id)
    if early is not None:
        return early
    job = escape(record.id)
    artifacts = {entry["name"]: entry for entry in store.manifest(record.id)}
    facts = [("state", _state(record)), ("progress", _progress(record)),
             ("test accuracy", _summary(record) or '<span class="muted">none yet</span>'),
             ("dataset", f"<code>{escape(str(record.dataset_id))[:16]}</code>"),
             ("created", escape(_when(record.created_at))),
             ("finished", escape(_when(record.finished_at))),
             ("attempts", escape(str(record.attempts))),
             ("artifacts", escape(", ".join(sorted(artifacts))) or '<span class="muted">none</span>')]
    table = "<table>" + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in facts) + "</table>"
    if "report.html" in artifacts:
        # sandboxed: the report runs no script and cannot reach this page
        report = (f'<iframe id="report" title="report" sandbox src="/jobs/{job}/page/report.html">'
                  f"</iframe>")
    else:
        report = '<p class="muted">The report appears here when the job has succeeded.</p>'
    terminal = record.state.terminal
    body = (f'<h1><a href="/">rntk jobs</a> / <code>{job}</code></h1>{table}{report}'
            f'<p class="muted">Download everything with <code>rntk download {job}</code>.</p>')
    return _page(f"rntk job {record.id[:12]}", body, refresh=None if terminal else _ACTIVE_REFRESH_S)


@router.get("/jobs/{job_id}/page/report.html")
def job_report(job_id: str, request: Request, store: Store = Depends(get_store)) -> Response:
    record, early = _page_job(request, store, job_id)
    if early is not None:
        return early
    entry = next((e for e in store.manifest(record.id) if e["name"] == "report.html"), None)
    path = store.artifacts_dir(record.id) / "report.html"
    if entry is None or not path.is_file():
        return _page("rntk: no report", '<p class="muted">No report yet.</p>', status=404)
    return FileResponse(path, media_type="text/html; charset=utf-8", headers={
        "Cache-Control": "no-store",
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                                   "frame-ancestors 'self'"})
