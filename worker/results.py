"""The embedded mode's result backend: Celery's file backend with an atomic counter, so
chords complete natively (as on Redis) instead of through ``celery.chord_unlock``.

Celery's key-value backends finish a chord without polling when they can increment a
counter (``implements_incr``): each header task, as it stores its result, increments the
chord's counter, and the one that reaches the header's size sends the body. The file
backend cannot, so Celery falls back to ``celery.chord_unlock``, a task that re-queues
itself every second until the header is ready, with no retry limit: it loops forever when a
header task is lost (celery#1700, celery#2725), and here every poll would also take the one
worker's slot and fork a pool child. This subclass adds the counter (a read-increment-write
under ``flock``, which the embedded mode's single machine makes exact) and writes every
value atomically (a rename), so a chord's body never reads a half-written result.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from celery.backends.filesystem import FilesystemBackend

from worker.jobs import file_lock

__all__ = ["LockedFilesystemBackend"]


class LockedFilesystemBackend(FilesystemBackend):
    """``file://`` results with native chords (an ``flock``-ed counter)."""

    implements_incr = True

    def __init__(self, url: str | None = None, *args: object, **kwargs: object) -> None:
        app = kwargs.get("app")
        # Celery builds a backend class given as ``Celery(backend=cls)`` without a URL
        url = url or (app.conf.result_backend if app is not None else None)
        if url and url.startswith("file://"):  # built on first use; the folder may be new
            Path(self._find_path(url)).mkdir(parents=True, exist_ok=True)
        super().__init__(url, *args, **kwargs)

    def _path(self, key: bytes | str) -> Path:
        return Path(os.fsdecode(self._filename(key if isinstance(key, bytes) else key.encode())))

    def set(self, key: bytes | str, value: bytes | str) -> None:
        target = self._path(key)
        temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        temporary.write_bytes(value if isinstance(value, bytes) else value.encode())
        os.replace(temporary, target)

    def incr(self, key: bytes | str) -> int:
        target = self._path(key)
        with file_lock(target.with_name(target.name + ".lock")):
            value = int(self.get(key if isinstance(key, bytes) else key.encode()) or 0) + 1
            self.set(key, str(value).encode())
        return value

    def expire(self, key: bytes | str, value: int) -> None:
        """Entries expire by :meth:`cleanup` (the sweep calls it), not one by one."""

    def delete(self, key: bytes | str) -> None:
        target = self._path(key)
        target.unlink(missing_ok=True)
        target.with_name(target.name + ".lock").unlink(missing_ok=True)
