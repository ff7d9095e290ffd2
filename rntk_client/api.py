"""The server with the caller's key, the one client error, and the options every command shares."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from typing import Any

import httpx

__all__ = ["DEFAULT_SERVER", "EXIT_OK", "EXIT_JOB", "EXIT_ERROR", "ClientError", "Parser", "Api",
           "add_connection_options", "one_job_parser", "job_path", "reason"]

DEFAULT_SERVER = "http://127.0.0.1:8000"
EXIT_OK, EXIT_JOB, EXIT_ERROR = 0, 1, 2


class ClientError(Exception):
    """A failure reported as one line and exit code 2 (or ``code``); ``status_code`` is the
    HTTP status when the server refused the request (404, 409, 422...), else None."""

    def __init__(self, message: str, code: int = EXIT_ERROR, status_code: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status_code = status_code


class Parser(argparse.ArgumentParser):
    """argparse whose usage errors become a :class:`ClientError` (one line plus usage, exit 2)."""

    def error(self, message: str) -> None:
        self.print_usage(sys.stderr)
        raise ClientError(message)


def _server_url(value: str | None) -> str:
    url = (value or os.environ.get("RNTK_SERVER") or DEFAULT_SERVER).strip().rstrip("/")
    if "://" not in url:
        url = "http://" + url
    return url


def reason(exc: Exception) -> str:
    """An exception's first line, without ``[Errno n]``, lower-cased to follow a colon."""
    text = str(exc) or type(exc).__name__
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", text.splitlines()[0] if text else text)
    return text[:1].lower() + text[1:]


class Api:
    """The server with the caller's key; every failure becomes a :class:`ClientError`."""

    def __init__(self, server: str | None, key: str | None, timeout: float = 60) -> None:
        self.base = _server_url(server)
        key = key if key is not None else os.environ.get("RNTK_API_KEY")
        headers = {"User-Agent": "rntk-client"}
        if key:
            headers["Authorization"] = f"Bearer {key.strip()}"
        self.has_key = bool(key)
        self.http = httpx.Client(base_url=self.base, headers=headers,
                                 timeout=httpx.Timeout(timeout, connect=10))

    def close(self) -> None:
        self.http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.ConnectError as exc:
            raise ClientError(f"cannot reach {self.base}: {reason(exc)}") from None
        except httpx.TimeoutException as exc:
            raise ClientError(f"{self.base} did not answer in time ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:
            raise ClientError(f"{method} {self.base}{path} failed: {reason(exc)}") from None
        self.check(response)
        return response

    def check(self, response: httpx.Response) -> None:
        if response.status_code < 400:
            return
        try:
            detail = response.json().get("detail")
        except (ValueError, AttributeError):
            detail = None
        if not isinstance(detail, str):
            detail = (json.dumps(detail) if detail is not None
                      else response.text.strip()[:200] or response.reason_phrase)
        detail = " ".join(detail.split())
        if response.status_code == 401:
            detail += " (pass --api-key or set RNTK_API_KEY)" if not self.has_key else ""
        raise ClientError(f"{response.status_code} {detail}", status_code=response.status_code)

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise ClientError(f"{self.base}{path} did not answer with JSON; is it an rntk server?") from None


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    """``--server`` and ``--api-key``, which every command takes."""
    parser.add_argument("--server", metavar="URL",
                        help=f"the rntk server (default: $RNTK_SERVER or {DEFAULT_SERVER})")
    parser.add_argument("--api-key", metavar="KEY", help="the API key (default: $RNTK_API_KEY)")


def one_job_parser(prog: str, description: str) -> Parser:
    """The parser of a command about one job: ``JOB`` and the connection options."""
    parser = Parser(prog=prog, description=description)
    parser.add_argument("job", metavar="JOB", help="the job id, or any unique prefix of it")
    add_connection_options(parser)
    return parser


def job_path(job_id: str) -> str:
    """``/jobs/{id}`` for a well-formed id; anything else is refused before it reaches a URL."""
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,128}", job_id):
        raise ClientError(f"{job_id!r} is not a job id")
    return f"/jobs/{job_id}"
