"""Fixtures for the service tests: real uvicorn and Celery worker subprocesses, real Redis.

Every subprocess gets its own session; finalizers SIGTERM then SIGKILL its whole process
tree (found through /proc), so no test leaves a server or worker behind.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
import zipfile
from pathlib import Path
from typing import Callable, Iterator

import httpx
import pytest

from tests.helpers import CACHE_VARIABLES, REPO, UCI

IRIS = UCI / "iris"
REDIS_URL = os.environ.get("RNTK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

#: A small evaluation (about 5 s on 2 CPU cores, JAX import included).
SMALL_CONFIG = {"families": ["RNN", "RBF"], "sigma_u": [0.5], "sigma_b": [0.1], "layers": [1], "C": [1, 100]}
#: A longer one (about 10 s), so a worker can be killed in the middle of it.
LONGER_CONFIG = {"families": ["RNN", "RNN-P", "BI-RNN", "RNN-AVG", "BI-RNN-AVG", "RBF"],
                 "sigma_u": [0.25, 0.5, 1.0, 1.5], "sigma_b": [0.001, 0.1, 0.5], "layers": [1, 2, 3],
                 "C": [0.01, 1, 100, 1e4, 1e6]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (from /proc), children first."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry))
        except (OSError, IndexError, ValueError):
            continue
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_tree(process: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to the process and every descendant at once (as kill -9 of a tree)."""
    for pid in [process.pid, *descendants(process.pid)]:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    tree = descendants(process.pid)
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        pass
    for pid in [process.pid, *tree]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


class Service:
    """A running ``rntk serve`` (and optionally workers) with an httpx client.

    Started as ``python -m rntk_launcher serve|worker``, which is the ``rntk`` command.
    """

    def __init__(self, data_dir: Path, env: dict[str, str], logs: Path) -> None:
        self.data_dir, self.env, self.logs = data_dir, env, logs
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.processes: list[subprocess.Popen] = []
        self.server: subprocess.Popen | None = None

    def _spawn(self, args: list[str], log_name: str, cpus: set[int] | None = None) -> subprocess.Popen:
        log = open(self.logs / log_name, "ab")
        # cpus: the process and everything it forks run on these cores only (benchmarks)
        pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
        process = subprocess.Popen([sys.executable, "-m", "rntk_launcher", *args], cwd=REPO, env=self.env,
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=pin)
        self.processes.append(process)
        return process

    def start_server(self, timeout: float = 60) -> None:
        self.server = self._spawn(["serve", "--host", "127.0.0.1", "--port", str(self.port),
                                   "--data-dir", str(self.data_dir), "--log-level", "warning"], "serve.log")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                raise RuntimeError(f"server exited: {(self.logs / 'serve.log').read_text()[-3000:]}")
            try:
                if httpx.get(self.base + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError("server did not come up")

    def start_worker(self, cpus: set[int] | None = None) -> subprocess.Popen:
        return self._spawn(["worker", "--data-dir", str(self.data_dir), "--loglevel", "INFO"],
                           f"worker{len(self.processes)}.log", cpus)

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.base, headers=headers, timeout=30)

    def log_tail(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in self.logs.glob("*.log"))

    def close(self) -> None:
        for process in reversed(self.processes):
            stop(process)


@pytest.fixture
def service_factory(tmp_path: Path) -> Iterator[Callable[..., Service]]:
    """Build a :class:`Service` with ``RNTK_*`` overrides; every process is stopped afterwards."""
    made: list[Service] = []

    def make(**settings: str) -> Service:
        env = {key: value for key, value in os.environ.items()
               if not key.startswith("RNTK_") and key not in CACHE_VARIABLES}
        env.update({"RNTK_HEARTBEAT_S": "1", "RNTK_SWEEP_S": "1", "PYTHONUNBUFFERED": "1",
                    "JAX_PLATFORMS": "cpu", "RNTK_QUEUE": f"rntk-test-{uuid.uuid4().hex[:8]}",
                    # 2 s of measuring per worker start, off but where a test asks (test_calibration)
                    "RNTK_CALIBRATE": "false"})
        env.update({f"RNTK_{key.upper()}": str(value) for key, value in settings.items()})
        root = tmp_path / f"service{len(made)}"
        (root / "logs").mkdir(parents=True)
        service = Service(root / "data", env, root / "logs")
        made.append(service)
        return service

    yield make
    for service in made:
        service.close()


@pytest.fixture
def redis_broker() -> Iterator[dict[str, str]]:
    """Settings for the Redis mode with a unique queue and key prefix; keys removed afterwards.

    Skips when Redis is unreachable, except under CI=true, where that is a failure.
    """
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis at {REDIS_URL} is unreachable under CI=true: {exc}")
        pytest.skip(f"Redis at {REDIS_URL} is unreachable ({exc}); the Redis-mode tests need it")
    tag = uuid.uuid4().hex[:10]
    prefix = f"rntk-test-{tag}:"
    yield {"broker_url": REDIS_URL, "redis_key_prefix": prefix, "queue": f"rntk-test-{tag}"}
    for key in client.scan_iter(match=f"{prefix}*", count=500):
        client.delete(key)
    client.close()


@pytest.fixture(scope="session")
def iris_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``../shared/data/uci/iris`` zipped as a folder, as a user would upload it."""
    if not IRIS.is_dir():
        pytest.skip(f"{IRIS} is missing")
    path = tmp_path_factory.mktemp("upload") / "iris.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(IRIS.iterdir()):
            archive.write(file, f"iris/{file.name}")
    return path


TERMINAL = {"succeeded", "failed", "cancelled"}
#: Heartbeat and dead-worker timing for tests that kill workers. A live job's heartbeat thread has
#: stalled past 4 s on a loaded 2-core machine, and the sweep then re-ran a job that was alive.
RECOVERY_TIMING = {"dead_after_s": "10", "heartbeat_s": "0.5"}


def wait_for(client: httpx.Client, job_id: str, states: set[str], timeout: float = 150,
             condition: Callable[[dict], bool] | None = None) -> dict:
    """Poll GET /jobs/{id} until its state is in ``states`` (and ``condition`` holds)."""
    deadline = time.monotonic() + timeout
    job: dict = {}
    while time.monotonic() < deadline:
        response = client.get(f"/jobs/{job_id}")
        assert response.status_code == 200, response.text
        job = response.json()
        if job["state"] in states and (condition is None or condition(job)):
            return job
        if job["state"] in TERMINAL - states:
            raise AssertionError(f"job {job_id} ended {job['state']} while waiting for {states}: {job}")
        time.sleep(0.2)
    raise TimeoutError(f"job {job_id} not in {states} after {timeout} s: {job}")


def submit_longer(client: httpx.Client, iris_zip: Path) -> str:
    """Upload iris and submit :data:`LONGER_CONFIG`; the job's id."""
    dataset = client.post("/datasets", files={"file": ("iris.zip", iris_zip.read_bytes())}).json()
    response = client.post("/jobs", json={"dataset_id": dataset["id"], "config": LONGER_CONFIG})
    assert response.status_code == 202, response.text
    return response.json()["id"]


def evaluating(job: dict) -> bool:
    """Past loading: the evaluation (kernels, fits) is under way."""
    return job["progress"]["stage"] not in ("queued", "requeued", "starting", "loading")


# --------------------------------------------------------------------------- fault injection

#: Takes one message off the queue the way a worker's delivery does (with Redis, into kombu's
#: ``unacked`` hash), prints its task id, then hangs until killed: a worker killed between
#: delivery and claim.
_GRAB = """
import time
from worker.settings import Settings
from worker.celery_app import make_celery
settings = Settings()
with make_celery(settings).connection_for_read() as connection:
    channel = connection.default_channel
    for _ in range(600):
        message = channel.basic_get(settings.queue, no_ack=False)
        if message is not None:
            break
        time.sleep(0.05)
    print("GOT", message.headers.get("id") if message else None, flush=True)
    time.sleep(600)
"""


def deliver_without_claim(service: Service) -> str:
    """Have the next queued message delivered to a consumer that dies (kill -9) before any
    claim; returns the message's task id."""
    grabber = subprocess.Popen([sys.executable, "-c", _GRAB], cwd=REPO, env=service.env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        line = grabber.stdout.readline().decode()
        assert line.startswith("GOT ") and "None" not in line, line + grabber.stdout.read().decode()
        return line.split()[1]
    finally:
        kill_tree(grabber, signal.SIGKILL)
        grabber.wait(timeout=10)


def mount_small_disk(mountpoint: Path, size: str = "16m") -> Path:
    """Mount a small tmpfs (root only); skip with the reason where mounting is impossible."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mountpoint)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs for the full-disk test: {result.stderr.strip() or result.returncode}")
    return mountpoint


def fill_disk(folder: Path, leave_bytes: int) -> Path:
    """Fill the filesystem of ``folder`` until about ``leave_bytes`` remain free."""
    stats = os.statvfs(folder)
    free = stats.f_bavail * stats.f_frsize
    filler = folder / "filler.bin"
    with open(filler, "wb") as handle:
        handle.write(b"\0" * max(0, free - leave_bytes))
    return filler
