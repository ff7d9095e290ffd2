"""The FastAPI app factory."""

from __future__ import annotations

import errno
import logging
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

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
    app.add_middleware(SecurityHeaders)
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
