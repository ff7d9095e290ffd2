"""Structured logs: one JSON object per line, carrying the job id when one is known.

Every line has ``ts`` (ISO 8601, UTC), ``level``, ``logger`` and ``message``; ``job_id``
while code runs inside :func:`job_context` (a contextvar, so threads started by a job and
asyncio tasks see their own value); ``exc_type`` and ``exc`` (the traceback) with
exceptions. The API (``rntk serve``) and the workers (``rntk worker``, and each Celery
process through the ``worker_process_init`` / ``worker_init`` signals) call :func:`setup_logging`.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
from datetime import datetime, timezone
from typing import Iterator

__all__ = ["JsonFormatter", "current_job_id", "job_context", "setup_logging"]

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


def setup_logging(level: str | int = "INFO", stream=None) -> logging.Handler:
    """Route the root logger (and uvicorn's and celery's loggers) through one JSON handler.

    Idempotent: a second call replaces the handler it installed before.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
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
