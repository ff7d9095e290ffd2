"""Entry points of ``rntk serve`` and ``rntk worker`` (wired in :mod:`rntk_launcher.cli`).

``serve_main``: the API under uvicorn. Without ``RNTK_BROKER_URL`` (the embedded default)
it also starts, and restarts if it dies, a real Celery worker subprocess that shares the
data directory and talks to the API over kombu's server-less "filesystem" transport.

``worker_main``: a Celery worker (prefork pool, concurrency 1; see :mod:`worker.tasks` for
why) for the configured broker. Run one per GPU.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Sequence

__all__ = ["serve_main", "worker_main", "is_loopback", "worker_command"]

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

    import uvicorn

    from app.main import create_app

    # uvicorn re-raises SIGTERM after its shutdown; make that an exception so `finally` runs
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    try:
        uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level=args.log_level,
                    access_log=False, log_config=None)
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
