"""Dependencies: the settings, the store, the broker's app, and the current owner (auth).

Routes take them through the aliases written once here: ``owner: OwnerDep``,
``store: StoreDep``, ``settings: SettingsDep``, ``celery: CeleryDep``.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request

from worker.jobs import Store, owner_of_key
from worker.settings import Settings

__all__ = ["CeleryDep", "OwnerDep", "PAGE_COOKIE", "SettingsDep", "StoreDep", "current_owner", "get_celery",
           "get_settings_dep", "get_store", "match_key", "page_credentials"]


async def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


async def get_store(request: Request) -> Store:
    return request.app.state.store


async def get_celery(request: Request) -> Any:
    """The Celery app that sends job messages (``worker.celery_app.make_celery``)."""
    return request.app.state.celery


async def current_owner(request: Request) -> str:
    """The owner id of the request's bearer key (sha256 of it), or ``anonymous`` without auth.

    Keys are compared with :func:`hmac.compare_digest` against every configured key, so the
    time taken does not depend on how much of a key matched.
    """
    keys: list[str] = request.app.state.settings.keys
    if not keys:
        return owner_of_key(None)
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise HTTPException(401, "missing 'Authorization: Bearer <key>' header",
                            headers={"WWW-Authenticate": "Bearer"})
    matched = match_key(keys, token)
    if matched is None:
        raise HTTPException(401, "invalid API key", headers={"WWW-Authenticate": "Bearer"})
    return owner_of_key(matched)


def match_key(keys: list[str], token: str) -> str | None:
    """The configured key equal to ``token`` (constant-time per key), or None."""
    matched = None
    for key in keys:
        if hmac.compare_digest(key.encode(), token.encode()):
            matched = key
    return matched


#: The cookie that carries a browser's key for the HTML pages (and only for them).
PAGE_COOKIE = "rntk_key"


def page_credentials(request: Request) -> tuple[str | None, str]:
    """For the HTML pages: ``(owner, source)``; owner is None when no valid key came.

    The key may come as the bearer header, a ``?key=`` query (source ``"query"``: the page
    then sets the cookie and redirects to drop it from the address) or the ``rntk_key``
    cookie. Only the page routes accept the query and the cookie; the JSON API still takes
    the header alone. Without configured keys every page is the anonymous owner's.
    """
    keys: list[str] = request.app.state.settings.keys
    if not keys:
        return owner_of_key(None), "none"
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    candidates = []
    if scheme.lower() == "bearer" and token.strip():
        candidates.append((token.strip(), "header"))
    if request.query_params.get("key"):
        candidates.append((request.query_params["key"], "query"))
    if request.cookies.get(PAGE_COOKIE):
        candidates.append((request.cookies[PAGE_COOKIE], "cookie"))
    if not candidates:
        return None, "missing"
    token, source = candidates[0]  # the first one given decides: no falling through to others
    matched = match_key(keys, token)
    return (owner_of_key(matched), source) if matched is not None else (None, "invalid")


OwnerDep = Annotated[str, Depends(current_owner)]
StoreDep = Annotated[Store, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
CeleryDep = Annotated[Any, Depends(get_celery)]
