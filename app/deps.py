"""Dependencies: the settings, the store, the broker's app, and the current owner (auth).

Routes take them through the aliases written once here: ``owner: OwnerDep``,
``store: StoreDep``, ``settings: SettingsDep``, ``celery: CeleryDep``, ``sessions: SessionsDep``.
The HTML pages authenticate with :func:`page_user` instead (the header or a login session),
and every state-changing request passes :func:`cross_origin` (``app.main.RequestGuard``).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Request
from starlette.datastructures import Headers

from app.sessions import SESSION_COOKIE, Session, Sessions
from worker.jobs import Store, owner_of_key
from worker.settings import Settings

__all__ = ["CeleryDep", "OwnerDep", "PageUser", "SessionsDep", "SettingsDep", "StoreDep", "cross_origin",
           "current_owner", "get_celery", "get_sessions", "get_settings_dep", "get_store", "match_key", "page_user",
           "sessions_of"]


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


def sessions_of(request: Request) -> Sessions:
    """The pages' sessions and CSRF tokens under ``data_dir/sessions`` (one per app: it caches the secret)."""
    state = request.app.state
    if getattr(state, "sessions", None) is None:
        state.sessions = Sessions(state.store.root / "sessions")
    return state.sessions


async def get_sessions(request: Request) -> Sessions:
    return sessions_of(request)


@dataclass(frozen=True)
class PageUser:
    """Who a page request is for, and what its forms' CSRF tokens are bound to."""

    owner: str
    #: ``session:<id>`` after a login through the form, else ``owner:<owner id>`` (the bearer
    #: header, or no keys configured).
    binding: str
    session: Session | None = None


def page_user(request: Request) -> tuple[PageUser | None, str]:
    """For the HTML pages: ``(user, reason)``; user is None when no valid credential came,
    and reason then says why (``missing``, ``invalid``, ``expired``).

    Credentials are the bearer header or the ``rntk_session`` cookie that ``POST /page/login``
    sets; the first one given decides. Only the pages read the cookie: the JSON API takes the
    header alone. A ``?key=`` in the address is ignored. A session whose key has since been
    removed from ``RNTK_API_KEYS`` no longer counts. Without configured keys every page is the
    anonymous owner's.
    """
    keys: list[str] = request.app.state.settings.keys
    if not keys:
        owner = owner_of_key(None)
        return PageUser(owner, f"owner:{owner}"), "none"
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        matched = match_key(keys, token.strip())
        if matched is None:
            return None, "invalid"
        owner = owner_of_key(matched)
        return PageUser(owner, f"owner:{owner}"), "header"
    session_id = request.cookies.get(SESSION_COOKIE)
    if not session_id:
        return None, "missing"
    session = sessions_of(request).get(session_id)
    if session is None or session.owner not in {owner_of_key(key) for key in keys}:
        return None, "expired"
    return PageUser(session.owner, f"session:{session.id}", session), "session"


def _origin_of(url: str) -> str | None:
    """``host[:port]`` of an Origin or Referer value, lowercased; None for ``null`` or junk."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or "@" in parts.netloc:
        return None
    return parts.netloc.lower()


def cross_origin(headers: Headers) -> str | None:
    """Why a state-changing request is refused as cross-origin, or None to let it through.

    A browser names the page that sent a request in ``Origin`` (every POST from Chromium and
    Firefox), else in ``Referer``. Either one naming another origin than ``Host`` refuses it:
    another port of the same host is another origin, though the same *site* for SameSite
    cookies. ``Origin: null`` (a sandboxed or opaque sender) is refused too. A request with
    neither (curl, the API client) passes here; the pages' forms also need their token.
    The scheme is not compared: behind a TLS proxy the app may see http where the browser
    says https (the proxy must pass the Host header on).
    """
    host = headers.get("host", "").strip().lower()
    origin = headers.get("origin")
    if origin is not None:
        if _origin_of(origin) != host:
            return (f"cross-origin request refused: it came from a page at {origin!r}, not from this "
                    f"server ({host!r}). Use the forms on this server's own pages.")
        return None
    referer = headers.get("referer")
    if referer and _origin_of(referer) != host:
        return (f"cross-origin request refused: it came from a page at {referer.split('?')[0]!r}, not from "
                f"this server ({host!r}). Use the forms on this server's own pages.")
    return None


OwnerDep = Annotated[str, Depends(current_owner)]
StoreDep = Annotated[Store, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
CeleryDep = Annotated[Any, Depends(get_celery)]
SessionsDep = Annotated[Sessions, Depends(get_sessions)]
