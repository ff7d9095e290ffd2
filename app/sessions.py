"""Browser sessions for the HTML pages, and the CSRF tokens of their forms.

A login through the page form makes a session: a random id (256 bits) that travels only in
the ``rntk_session`` cookie, never the API key. The server keeps what the id stands for in
``data_dir/sessions/<sha256(id)>.json``: the owner and the expiry. The file is named by the
id's hash, so the folder (or a backup of it) holds no usable cookie. Logging out deletes the
file; an expired one is deleted when it is next looked up, and by the next login's prune.

The forms' CSRF tokens are HMAC-SHA256 of what they are bound to (a session, an owner, or a
login form's nonce) under a secret kept in ``data_dir/sessions/secret.key``, made once and
shared by every API process on the data volume.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SESSION_COOKIE", "Session", "Sessions"]

#: The cookie that carries a browser's session id (HttpOnly, SameSite=Strict).
SESSION_COOKIE = "rntk_session"
#: Longer cookie values are not ids this module made: refused without hashing them.
_MAX_ID_CHARS = 128


@dataclass(frozen=True)
class Session:
    id: str
    owner: str
    expires_at: float  # unix seconds


class Sessions:
    """The session files under ``folder`` (``data_dir/sessions``) and the CSRF secret."""

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)
        self._secret: bytes | None = None

    def _path(self, session_id: str) -> Path:
        return self.folder / f"{hashlib.sha256(session_id.encode()).hexdigest()}.json"

    def create(self, owner: str, lifetime_s: float) -> Session:
        """A new session for ``owner`` that ends ``lifetime_s`` from now (expired ones are pruned)."""
        self.prune()
        session = Session(id=secrets.token_urlsafe(32), owner=owner, expires_at=time.time() + lifetime_s)
        body = json.dumps({"owner": owner, "created_at": time.time(), "expires_at": session.expires_at})
        _write_private(self._path(session.id), body.encode())
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session with this id, or None (unknown, malformed or expired)."""
        if not session_id or len(session_id) > _MAX_ID_CHARS:
            return None
        path = self._path(session_id)
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            owner, expires_at = str(record["owner"]), float(record["expires_at"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if expires_at <= time.time():
            path.unlink(missing_ok=True)
            return None
        return Session(id=session_id, owner=owner, expires_at=expires_at)

    def delete(self, session_id: str) -> None:
        if session_id and len(session_id) <= _MAX_ID_CHARS:
            self._path(session_id).unlink(missing_ok=True)

    def prune(self) -> int:
        """Delete every expired session file; how many went."""
        removed, now = 0, time.time()
        for path in self.folder.glob("*.json"):
            try:
                if float(json.loads(path.read_text(encoding="utf-8"))["expires_at"]) > now:
                    continue
            except (ValueError, KeyError, TypeError):
                pass  # unreadable: not a session anyone can use
            except OSError:
                continue
            path.unlink(missing_ok=True)
            removed += 1
        return removed

    def token(self, binding: str) -> str:
        """The CSRF token of a form bound to ``binding`` (``session:<id>``, ``owner:<id>``, ``login:<nonce>``)."""
        return hmac.new(self.secret(), binding.encode(), hashlib.sha256).hexdigest()

    def check(self, binding: str, token: str | None) -> bool:
        """Whether ``token`` is the one of ``binding`` (constant-time)."""
        return bool(token) and hmac.compare_digest(self.token(binding).encode(), token.encode())

    def secret(self) -> bytes:
        """The HMAC key of the tokens: read from ``secret.key``, made there once if missing."""
        if self._secret is None:
            path = self.folder / "secret.key"
            if not path.exists():
                _write_private(path, secrets.token_bytes(32), replace=False)
            self._secret = path.read_bytes()
        return self._secret


def _write_private(path: Path, data: bytes, replace: bool = True) -> None:
    """Write ``data`` to ``path`` (mode 0600) atomically; with ``replace=False`` a file already
    there (another process won the race) is kept."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(temporary, path)
        else:
            try:
                os.link(temporary, path)
            except FileExistsError:
                pass
    finally:
        temporary.unlink(missing_ok=True)
