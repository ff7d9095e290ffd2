"""Entry points of ``rntk serve`` and ``rntk worker`` (wired in :mod:`rntk_launcher.cli`).

``serve_main``: the API under uvicorn. Without ``RNTK_BROKER_URL`` (the embedded default)
it also starts, and restarts if it dies, a real Celery worker subprocess that shares the
data directory and talks to the API over kombu's server-less "filesystem" transport.

``worker_main``: a Celery worker (prefork pool, concurrency 1; see :mod:`worker.tasks` for
why) for the configured broker. Run one per GPU.

Connections are bounded before any request reaches the app (:func:`guarded_protocol`):
uvicorn closes an idle keep-alive connection after ``timeout_keep_alive`` but waits for
ever on one that stops mid-headers, and 10,500 such connections once exhausted the API's
file descriptors. So a connection must send a request's complete headers within
``RNTK_HEADER_TIMEOUT_S`` of opening (or of its last response), headers are at most
16 KB (h11's bound, set explicitly), and past ``RNTK_MAX_CONNECTIONS`` open connections
a new one is closed at once. A stalled request *body* is the app's to time out
(:func:`app.uploads.body_chunks`). uvicorn's ``limit_concurrency`` is not used: it answers
503 only once a request's headers have arrived, so it frees no descriptor held by an idle
connection, and it would refuse /healthz while uploads run.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Sequence

__all__ = ["guarded_protocol", "is_loopback", "run_api", "serve_main", "worker_command", "worker_main"]

log = logging.getLogger("rntk.serve")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def worker_command(queue: str, loglevel: str = "INFO") -> list[str]:
    """The Celery worker command line (the worker's main process never imports JAX)."""
    return [sys.executable, "-m", "celery", "-A", "worker.celery_app:celery_app", "worker",
            "--pool=prefork", "--concurrency=1", "--prefetch-multiplier=1", "-Q", queue,
            "--without-gossip", "--without-mingle", "--without-heartbeat",
            f"--loglevel={loglevel}", "--hostname", f"rntk-worker-{os.getpid()}@%h"]


class _Supervisor:
    """Keeps the embedded worker subprocess running until stopped."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.command, self.env = command, env
        self.process: subprocess.Popen | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rntk-worker-supervisor", daemon=True)

    def _spawn(self) -> None:
        # its own session: stopping it (or a kill -9 of its tree) leaves the API alone
        self.process = subprocess.Popen(self.command, env=self.env, start_new_session=True)
        log.info("embedded worker started (pid %s)", self.process.pid)

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.process is None or self.process.poll() is not None:
                if self.process is not None:
                    log.warning("embedded worker exited with %s; restarting", self.process.returncode)
                    if self._stop.wait(1.0):
                        break
                self._spawn()
            self._stop.wait(0.5)

    def start(self) -> None:
        self._spawn()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        if self.process and self.process.poll() is None:
            with_group = os.getpgid(self.process.pid)
            os.killpg(with_group, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(with_group, signal.SIGKILL)
                self.process.wait(timeout=5)


#: Largest request head (request line and headers) a connection may send.
MAX_HEADER_BYTES = 16 << 10


def guarded_protocol(header_timeout_s: float, max_connections: int) -> type:
    """uvicorn's h11 protocol with a deadline for request headers and a cap on connections."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedH11Protocol(H11Protocol):
        header_deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                log.warning("closed a new connection: %d are open already (RNTK_MAX_CONNECTIONS)", max_connections)
                transport.abort()
                return
            self._arm()

        def handle_events(self) -> None:
            cycle = self.cycle
            super().handle_events()
            if self.cycle is not cycle:  # a request's headers are complete
                self._disarm()

        def on_response_complete(self) -> None:
            self._arm()  # the next request's headers are due too (a pipelined one disarms it at once)
            super().on_response_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self.header_deadline = self.loop.call_later(header_timeout_s, self._headers_overdue)

        def _disarm(self) -> None:
            if self.header_deadline is not None:
                self.header_deadline.cancel()
                self.header_deadline = None

        def _headers_overdue(self) -> None:
            self.header_deadline = None
            if self.transport.is_closing() or (self.cycle is not None and not self.cycle.response_complete):
                return
            log.warning("closed a connection that sent no complete request headers within %g s "
                        "(RNTK_HEADER_TIMEOUT_S)", header_timeout_s)
            self.transport.close()

    return GuardedH11Protocol


def _raise_descriptor_limit(needed: int) -> None:
    """Raise this process's soft limit on open files towards ``needed`` (within the hard one)."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and soft < needed:
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed if hard == resource.RLIM_INFINITY else min(needed, hard),
                                                        hard))
    except (ImportError, ValueError, OSError):
        pass


def run_api(app: Any, settings: Any, host: str, port: int, log_level: str = "info") -> None:
    """Serve ``app`` under uvicorn with the connection bounds of this module's doc."""
    import uvicorn

    _raise_descriptor_limit(settings.max_connections + 256)  # files, the broker, the workers' pipes
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False, log_config=None,
                http=guarded_protocol(settings.header_timeout_s, settings.max_connections),
                timeout_keep_alive=5, h11_max_incomplete_event_size=MAX_HEADER_BYTES)


def _data_dir_env(data_dir: str | None) -> None:
    if data_dir:
        os.environ["RNTK_DATA_DIR"] = str(Path(data_dir).resolve())


def serve_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rntk serve", description="Start the rntk HTTP API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--data-dir", default=None, help="overrides RNTK_DATA_DIR")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    _data_dir_env(args.data_dir)
    from worker.logs import setup_logging

    setup_logging(args.log_level)  # JSON lines, uvicorn's included (log_config=None below)

    from worker.settings import Settings

    settings = Settings()
    if not settings.keys and not is_loopback(args.host):
        print(f"rntk serve: refusing to listen on {args.host!r} without API keys: anyone who can "
              "reach it could run jobs and read results. Set RNTK_API_KEYS=key1,key2 (clients "
              "send 'Authorization: Bearer <key>'), or bind 127.0.0.1.", file=sys.stderr)
        return 2
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    from worker.celery_app import ensure_broker_dirs

    ensure_broker_dirs(settings)
    supervisor = None
    if settings.embedded:
        env = {**os.environ, "RNTK_DATA_DIR": str(settings.data_dir.resolve()),
               "RNTK_EMBEDDED_PARENT_PID": str(os.getpid())}
        env.pop("RNTK_BROKER_URL", None)
        # started before this process imports the app (and JAX with it)
        supervisor = _Supervisor(worker_command(settings.queue), env)
        supervisor.start()
        print(f"rntk serve: embedded mode, worker pid {supervisor.process.pid}, "
              f"data in {settings.data_dir.resolve()}", file=sys.stderr)
    else:
        print("rntk serve: broker mode, start workers with `rntk worker`", file=sys.stderr)

    from app.main import create_app

    # uvicorn re-raises SIGTERM after its shutdown; make that an exception so `finally` runs
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    try:
        run_api(create_app(settings), settings, args.host, args.port, args.log_level)
    finally:
        if supervisor:
            supervisor.stop()
    return 0


def worker_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rntk worker",
                                     description="Start a Celery worker for the configured broker (one per GPU).")
    parser.add_argument("--data-dir", default=None, help="overrides RNTK_DATA_DIR")
    parser.add_argument("--loglevel", default="INFO")
    args = parser.parse_args(argv)
    _data_dir_env(args.data_dir)
    from worker.logs import setup_logging

    setup_logging(args.loglevel)  # the Celery worker it becomes sets up the same (worker/celery_app.py)

    from worker.settings import Settings

    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    from worker.celery_app import ensure_broker_dirs

    ensure_broker_dirs(settings)
    command = worker_command(settings.queue, args.loglevel)
    # exec: the worker replaces this process (signals and kill -9 reach it directly)
    os.execv(command[0], command)
    return 0  # not reached
