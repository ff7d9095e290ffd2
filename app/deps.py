"""Dependencies: the settings, the store, and the current owner (auth)."""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request

from app.settings import Settings
from app.store import Store, owner_of_key

__all__ = ["current_owner", "get_store", "get_settings_dep"]


async def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


async def get_store(request: Request) -> Store:
    return request.app.state.store


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
    matched = None
    for key in keys:
        if hmac.compare_digest(key.encode(), token.encode()):
            matched = key
    if matched is None:
        raise HTTPException(401, "invalid API key", headers={"WWW-Authenticate": "Bearer"})
    return owner_of_key(matched)
