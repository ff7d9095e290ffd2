"""Structured logs: one JSON object per line, carrying the job id when one is known.

Every line has ``ts`` (ISO 8601, UTC), ``level``, ``logger`` and ``message``; ``job_id``
while code runs inside :func:`job_context` (a contextvar, so threads started by a job and
asyncio tasks see their own value); ``exc_type`` and ``exc`` (the traceback) with
exceptions. The API (``rntk serve``) and the workers (``rntk worker``, and each Celery
process through the ``worker_process_init`` / ``worker_init`` signals) call :func:`setup_logging`.

A warning or error repeated word for word is written at most once per
:data:`REPEAT_PERIOD_S` (:class:`RepeatFilter`); the next one written after that carries
``suppressed``, the count of those dropped meanwhile. A flood of hostile connections once
wrote 26 MB of the same lines to the API's log.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
import threading
import time
from collections import OrderedDict
from datetime import datetime, timezone
from typing import Callable, Iterator

__all__ = ["REPEAT_PERIOD_S", "JsonFormatter", "RepeatFilter", "current_job_id", "job_context", "setup_logging"]

#: A warning or error identical to one written less than this long ago is not written.
REPEAT_PERIOD_S = 60.0

_job_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("rntk_job_id", default=None)

#: LogRecord attributes that are not user extras.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


def current_job_id() -> str | None:
    """The job id of the current context, or None outside a job."""
    return _job_id.get()


@contextlib.contextmanager
def job_context(job_id: str | None) -> Iterator[None]:
    """Tag every log line emitted inside the block with ``job_id``."""
    token = _job_id.set(job_id)
    try:
        yield
    finally:
        _job_id.reset(token)


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON (no embedded newlines: tracebacks are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        job_id = getattr(record, "job_id", None) or _job_id.get()
        if job_id:
            entry["job_id"] = job_id
        for key, value in vars(record).items():  # extra={...} fields
            if key not in _STANDARD and key not in entry and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc_type"] = record.exc_info[0].__name__ if record.exc_info[0] else None
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class RepeatFilter(logging.Filter):
    """Lets a record of ``min_level`` or above through at most once per ``period_s`` for the
    same (logger, level, job id, message text); the next one let through after a pause
    carries ``suppressed``: how many were dropped since the last one written. Records below
    ``min_level`` always pass. Thread-safe; remembers at most ``max_keys`` messages."""

    def __init__(self, period_s: float = REPEAT_PERIOD_S, min_level: int = logging.WARNING, max_keys: int = 1024,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.period_s, self.min_level, self.max_keys, self.clock = period_s, min_level, max_keys, clock
        self._seen: OrderedDict[tuple, list] = OrderedDict()  # key -> [time written, dropped since]
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < self.min_level:
            return True
        key = (record.name, record.levelno, getattr(record, "job_id", None) or _job_id.get(), record.getMessage())
        now = self.clock()
        with self._lock:
            entry = self._seen.get(key)
            if entry is not None and now - entry[0] < self.period_s:
                entry[1] += 1
                return False
            if entry is not None and entry[1]:
                record.suppressed = entry[1]
            self._seen[key] = [now, 0]
            self._seen.move_to_end(key)
            while len(self._seen) > self.max_keys:
                self._seen.popitem(last=False)
        return True


def setup_logging(level: str | int = "INFO", stream=None) -> logging.Handler:
    """Route the root logger (and uvicorn's and celery's loggers) through one JSON handler.

    Idempotent: a second call replaces the handler it installed before.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RepeatFilter())  # on the handler: it sees the records of every logger
    handler._rntk_json = True  # type: ignore[attr-defined]
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_rntk_json", False) or _plain_stream(h)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    logging.captureWarnings(True)  # warnings.warn(...) become JSON lines too (logger "py.warnings")
    # uvicorn and celery install their own handlers; let their lines reach ours instead
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "celery", "celery.task", "celery.worker"):
        named = logging.getLogger(name)
        named.handlers.clear()
        named.propagate = True
    return handler


def _plain_stream(handler: logging.Handler) -> bool:
    """A bare stderr/stdout StreamHandler (as logging.basicConfig installs)."""
    return type(handler) is logging.StreamHandler and getattr(handler, "stream", None) in (sys.stderr, sys.stdout)
