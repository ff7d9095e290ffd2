"""The FastAPI app factory."""

from __future__ import annotations

import errno
import logging
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.deps import cross_origin
from app.service import ServiceError
from worker.jobs import Store
from worker.settings import Settings, get_settings

__all__ = ["create_app"]

log = logging.getLogger("rntk.app")


def create_app(settings: Settings | None = None, *, sweep: bool = True) -> FastAPI:
    """Build the app for ``settings``; ``sweep`` runs the recovery sweep in this process."""
    settings = settings or get_settings()
    store = Store(settings.data_dir)
    from worker.celery_app import ensure_broker_dirs, make_celery
    from worker.queue import Sweeper

    ensure_broker_dirs(settings)

    celery = make_celery(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        sweeper = Sweeper(store, celery, settings) if sweep else None
        if sweeper:
            sweeper.start()
        try:
            yield
        finally:
            if sweeper:
                sweeper.stop()

    app = FastAPI(title="rntk", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Recurrent neural tangent kernel evaluations as durable jobs. Every "
                              "error is `{\"detail\": \"...\"}`; with API keys configured, send "
                              "`Authorization: Bearer <key>`.")
    from app.docs import add_offline_docs

    add_offline_docs(app)  # /docs and /redoc from local files: they render offline
    app.state.settings, app.state.store, app.state.celery = settings, store, celery

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:  # Starlette names the first matching route's methods only
            headers["Allow"] = ", ".join(allowed_methods(app, request.url.path))
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers or None)

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return JSONResponse({"detail": problems}, status_code=422)

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            log.error("the data volume is full (%s %s)", request.method, request.url.path)
            return JSONResponse({"detail": "the service's data volume is full; nothing was stored. "
                                           "Try again once space has been freed."}, status_code=507)
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal server error"}, status_code=500)

    from app.routes import artifacts, datasets, health, jobs, pages

    for module in (health, datasets, jobs, artifacts, pages):
        app.include_router(module.router)
    app.add_middleware(RequestGuard, allowed_hosts=settings.allowed_hosts)
    app.add_middleware(SecurityHeaders)  # outermost: the guard's refusals carry its headers too
    app.openapi = lambda: _openapi(app)
    return app


class SecurityHeaders:
    """Every response says not to sniff its type and not to leak its URL to other sites
    (plain ASGI, so streamed downloads stay streamed)."""

    HEADERS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"same-origin")]

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in message.get("headers", [])}
                message = {**message, "headers": [*message.get("headers", []),
                                                  *[h for h in self.HEADERS if h[0] not in names]]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class RequestGuard:
    """Two checks before any route, for the API and the pages alike (plain ASGI):

    - **Host**: the ``Host`` header must name this service, or the answer is 400. Otherwise a
      web page could point a DNS name it controls at this address (DNS rebinding) and read
      every answer as its own origin. Accepted: the names in ``RNTK_ALLOWED_HOSTS`` (port
      ignored; ``*.example.org`` its subdomains; ``*`` any), the loopback names, and the
      address the connection arrived at as the ASGI server reports it (an IP literal under
      uvicorn: no DNS name is involved, so no rebinding).
    - **Origin**: a state-changing request (any method but GET, HEAD, OPTIONS) that a browser
      says came from another origin is 403 (:func:`app.deps.cross_origin`). Without keys any
      web site could otherwise post a form or a no-cors ``fetch`` to the service, and with
      them a page on another port of the same host rides the pages' cookie.
    """

    SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
    LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})

    def __init__(self, app: Any, allowed_hosts: str) -> None:
        self.app = app
        names = {name.strip().lower().rstrip(".") for name in allowed_hosts.split(",") if name.strip()}
        self.any_host = "*" in names
        self.suffixes = tuple(name[1:] for name in names if name.startswith("*."))
        self.names = self.LOOPBACK | {name for name in names if not name.startswith("*")}

    def host_allowed(self, host: str, server: Any) -> bool:
        if self.any_host:
            return True
        if host in self.names or (self.suffixes and host.endswith(self.suffixes)):
            return True
        return bool(server) and isinstance(server[0], str) and host == server[0].lower()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        host = host_name(headers.get("host", ""))
        if not self.host_allowed(host, scope.get("server")):
            shown = headers.get("host", "")[:200]
            detail = (f"this server does not answer to the host name {shown!r} (Host header); an operator "
                      f"who serves it under that name adds it to RNTK_ALLOWED_HOSTS" if shown else
                      "the request has no Host header")
            await JSONResponse({"detail": detail}, status_code=400)(scope, receive, send)
            return
        if scope["method"] not in self.SAFE_METHODS:
            refused = cross_origin(headers)
            if refused is not None:
                await JSONResponse({"detail": refused}, status_code=403)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def host_name(value: str) -> str:
    """The name part of a Host header value, lowercased: ``[::1]:8000`` -> ``::1``,
    ``Example.org.:80`` -> ``example.org``."""
    value = value.strip().lower()
    if value.startswith("["):
        value = value[1:value.find("]")] if "]" in value else ""
    elif value.count(":") == 1:
        value = value.split(":", 1)[0]
    return value.rstrip(".")


def allowed_methods(app: FastAPI, path: str) -> list[str]:
    """Every method some route serves at ``path`` (HEAD with GET, as Starlette answers it)."""
    from starlette.routing import Match

    def leaves(routes: Any) -> Any:  # included routers nest their routes (FastAPI >= 0.16x)
        for route in routes:
            included = getattr(route, "original_router", None)
            if included is not None:
                yield from leaves(included.routes)
            else:
                yield route

    scope = {"type": "http", "path": path, "method": "GET", "root_path": ""}
    matching = [route for route in leaves(app.router.routes)
                if getattr(route, "methods", None) and route.matches(scope)[0] != Match.NONE]
    # A literal path (/jobs/estimate) is its own resource, not an id of /jobs/{job_id}.
    literal = [route for route in matching if getattr(route, "path", None) == path]
    return sorted({method for route in (literal or matching) for method in route.methods})


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema, made to say what the service does: every error body is
    ``{"detail": str}`` (also the 422s, which FastAPI documents as a list), and the API key is
    a bearer token on every operation that can answer 401."""
    if app.openapi_schema:
        return app.openapi_schema
    from fastapi.openapi.utils import get_openapi

    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    error_ref = {"$ref": "#/components/schemas/ErrorResponse"}
    components = schema.setdefault("components", {})
    components.setdefault("schemas", {})
    # POST /jobs reads JSON or multipart by hand, so FastAPI cannot see its body model: add
    # JobRequest (with EvaluationConfig and every field's description), which it refers to
    from app.models import JobRequest

    body = JobRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    components["schemas"].update(body.pop("$defs", {}))
    components["schemas"]["JobRequest"] = body
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            if "422" in responses:
                responses["422"] = {"description": responses["422"].get("description", "Validation Error"),
                                    "content": {"application/json": {"schema": error_ref}}}
            if "401" in responses:
                operation["security"] = [{"bearer": []}]
    for name in ("HTTPValidationError", "ValidationError"):
        components["schemas"].pop(name, None)
    components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer",
                                                "description": "An API key from RNTK_API_KEYS."}}
    app.openapi_schema = schema
    return schema
