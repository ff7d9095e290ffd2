"""``/docs`` (Swagger UI) and ``/redoc`` served offline.

FastAPI's own pages load their JavaScript and CSS from a CDN, so they are blank without
internet. The same pages here point at the files the ``fastapi-offline`` package ships
(Swagger UI bundle and CSS, ReDoc standalone), served by this app under ``/static-docs``.
"""

from __future__ import annotations

import functools
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

__all__ = ["STATIC_URL", "add_offline_docs"]

STATIC_URL = "/static-docs"
_REDOC_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"


def _assets() -> Path:
    import fastapi_offline

    return Path(fastapi_offline.__file__).parent / "static"


@functools.lru_cache(maxsize=1)
def _redoc_script() -> bytes:
    """ReDoc's bundle with its one remote asset (the footer logo) pointed at a local file."""
    script = (_assets() / "redoc.standalone.js").read_bytes()
    return script.replace(_REDOC_LOGO, f"{STATIC_URL}/favicon.png".encode())


def add_offline_docs(app: FastAPI) -> None:
    """Serve Swagger UI at ``/docs`` and ReDoc at ``/redoc`` from local files.

    The app must be created with ``docs_url=None, redoc_url=None``.
    """
    title = app.title

    @app.get(f"{STATIC_URL}/redoc.standalone.js", include_in_schema=False)
    async def redoc_script() -> Response:
        return Response(_redoc_script(), media_type="text/javascript",
                        headers={"Cache-Control": "public, max-age=86400"})

    app.mount(STATIC_URL, StaticFiles(directory=_assets()), name="static-docs")  # after the route above

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{title} - API docs",
            oauth2_redirect_url=f"{root}/docs/oauth2-redirect",
            swagger_js_url=f"{root}{STATIC_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{STATIC_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{STATIC_URL}/favicon.png",
            swagger_ui_parameters={"defaultModelsExpandDepth": 1, "tryItOutEnabled": False})

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    async def swagger_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{title} - ReDoc",
            redoc_js_url=f"{root}{STATIC_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{STATIC_URL}/favicon.png", with_google_fonts=False)

