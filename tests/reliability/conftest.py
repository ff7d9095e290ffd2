"""The reliability suite: faults, fuzzing, load and access against real processes.

``RNTK_RELIABILITY=full`` (``make test-reliability``) runs the full counts (20 worker kills,
200 submissions from 20 clients with 50 pollers, ...); otherwise a short version runs inside
``make test``. Every test records its figures with :func:`record_figures`: printed, and
appended as JSON lines to ``$RNTK_RELIABILITY_FIGURES`` when that is set (RELIABILITY.md
quotes them).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.service.conftest import free_port, iris_zip, redis_broker, service_factory  # noqa: F401 (fixtures)

FULL = os.environ.get("RNTK_RELIABILITY") == "full"


def scale(short: int, full: int) -> int:
    """The count for this run: ``full`` under ``RNTK_RELIABILITY=full``, else ``short``."""
    return full if FULL else short


def record_figures(test: str, **figures: object) -> None:
    line = json.dumps({"test": test, "mode": "full" if FULL else "short", "at": time.time(), **figures})
    print(f"\nFIGURES {line}")
    target = os.environ.get("RNTK_RELIABILITY_FIGURES")
    if target:
        with open(target, "a") as handle:
            handle.write(line + "\n")


class PrivateRedis:
    """A redis-server of our own (AOF on), so restarting it disturbs nobody else."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.port = folder, free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
             "--appendonly", "yes", "--appendfsync", "always", "--save", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        import redis

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if redis.Redis.from_url(self.url, socket_connect_timeout=0.5).ping():
                    return
            except redis.RedisError:
                time.sleep(0.1)
        raise TimeoutError("private redis-server did not come up")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()  # SIGTERM: Redis flushes its AOF and exits
            self.process.wait(timeout=20)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed; the Redis restart test needs its own server")
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    if server.process and server.process.poll() is None:
        server.process.kill()
        server.process.wait(timeout=10)
