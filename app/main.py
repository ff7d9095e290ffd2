"""The FastAPI app factory."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from worker.settings import Settings, get_settings
from worker.jobs import Store

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

    app = FastAPI(title="rntk", version="0.1.0", lifespan=lifespan,
                  description="Recurrent neural tangent kernel evaluations as durable jobs.")
    app.state.settings, app.state.store, app.state.celery = settings, store, celery

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return JSONResponse({"detail": problems}, status_code=422)

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal server error"}, status_code=500)

    from app.routes import artifacts, datasets, health, jobs, pages

    for module in (health, datasets, jobs, artifacts, pages):
        app.include_router(module.router)
    return app
