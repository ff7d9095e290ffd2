"""Faults: kill -9 of the worker at random moments, Redis restart, API restart, full disk, time limit.

Each job must end exactly once (one ``succeeded`` line in the worker logs, one artifact set),
with artifacts identical to a clean run: byte-for-byte (sha256) for the Gram matrices and
report.csv, and for report.json once its timings (wall-clock seconds) are left out.
"""

from __future__ import annotations

import hashlib
import json
import random
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.reliability.conftest import FULL, record_figures, scale
from tests.service.conftest import RECOVERY_TIMING, TERMINAL, kill_tree, stop, wait_for
from tests.service.conftest import deliver_without_claim

#: About 5 s on 2 cores (JAX import included), with two recurrent Gram matrices kept.
CONFIG = {"families": ["RNN", "RBF"], "sigma_u": [0.5], "sigma_b": [0.1], "layers": [1, 2], "C": [1, 100]}
#: report.json fields that hold wall-clock seconds, so differ between any two runs.
VOLATILE = ("timings", "family_seconds", "reproducibility")  # times, the job id and its request


def artifact_digests(service, job_id: str) -> dict[str, str]:
    """sha256 of every reproducible artifact (report.html, which shows timings, is left out)."""
    folder = service.data_dir / "jobs" / job_id / "artifacts"
    digests = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        name = path.relative_to(folder).as_posix()
        if name == "report.html":
            continue
        data = path.read_bytes()
        if name == "report.json":
            report = {k: v for k, v in json.loads(data).items() if k not in VOLATILE}
            data = json.dumps(report, sort_keys=True).encode()
        digests[name] = hashlib.sha256(data).hexdigest()
    return digests


def succeeded_lines(service, job_id: str, settle_s: float = 10.0) -> int:
    """How many attempts logged that they finished this job successfully. The worker logs the
    line just after it stores the state, so a job the API already shows succeeded may not have
    logged yet (a CI flake on sub-second jobs): wait up to ``settle_s`` for the first line."""
    deadline = time.monotonic() + settle_s
    while True:
        count = 0
        for log in service.logs.glob("worker*.log"):
            for line in log.read_text(errors="replace").splitlines():
                if f"job {job_id}: succeeded" in line:
                    count += 1
        if count or time.monotonic() > deadline:
            return count
        time.sleep(0.1)


def submit(client: httpx.Client, dataset: str, config: dict = CONFIG) -> str:
    response = client.post("/jobs", json={"dataset_id": dataset, "config": config, "artifacts": {"gram": "all"}})
    assert response.status_code == 202, response.text
    return response.json()["id"]


def upload(client: httpx.Client, iris_zip: Path) -> str:
    response = client.post("/datasets", files={"file": ("iris.zip", iris_zip.read_bytes())})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def wait_until(predicate, timeout: float, step: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


def test_kill9_worker_at_random_moments(service_factory, iris_zip, redis_broker) -> None:
    """kill -9 of the worker's tree at N moments; every job succeeds once, same artifacts."""
    kills = scale(3, 20)
    service = service_factory(**redis_broker, dead_after_s="8", heartbeat_s="0.5", unclaimed_after_s="15")
    service.start_server()
    worker = service.start_worker()
    client = service.client()
    dataset = upload(client, iris_zip)

    started = time.monotonic()
    clean_id = submit(client, dataset)
    clean = wait_for(client, clean_id, TERMINAL, timeout=180)
    assert clean["state"] == "succeeded", (clean, service.log_tail())
    clean_seconds = time.monotonic() - started
    reference = artifact_digests(service, clean_id)
    assert any(name.startswith("gram/") for name in reference) and "report.json" in reference

    rng = random.Random(12)
    # the fixed moments first (delivery before claim, artifact writes), then random ones
    moments = ["delivery", "writing"] + ["random"] * (kills - 2)
    outcomes = []
    for moment in moments:
        if moment == "delivery":
            stop(worker)  # no live worker may take the message first
            job_id = submit(client, dataset)
            deliver_without_claim(service)
            worker = service.start_worker()
        else:
            job_id = submit(client, dataset)
            job_dir = service.data_dir / "jobs" / job_id
            if moment == "writing":  # the staged artifacts folder is being filled
                assert wait_until(lambda: any(p.is_file() for d in job_dir.glob(".artifacts.*")
                                              for p in d.rglob("*")), timeout=180), service.log_tail()
            else:
                # A warm worker runs iris in ~0.2 s, between two polls: then the kill lands after it.
                wait_for(client, job_id, {"running"} | TERMINAL, timeout=180)
                time.sleep(rng.uniform(0.0, clean_seconds))
            kill_tree(worker, signal.SIGKILL)
            worker.wait(timeout=10)
            worker = service.start_worker()
        job = wait_for(client, job_id, TERMINAL, timeout=240)
        assert job["state"] == "succeeded", (moment, job, service.log_tail())
        assert succeeded_lines(service, job_id) == 1, (moment, job_id)
        job_dir = service.data_dir / "jobs" / job_id
        assert sorted(p.name for p in job_dir.iterdir() if "artifacts" in p.name) == ["artifacts"]
        assert artifact_digests(service, job_id) == reference, moment
        outcomes.append({"moment": moment, "attempts": job["attempts"]})
    record_figures("kill9_worker", kills=len(moments), succeeded_once=len(outcomes),
                   identical_artifacts=len(outcomes), artifacts_compared=len(reference),
                   attempts=[o["attempts"] for o in outcomes], moments=moments,
                   clean_run_s=round(clean_seconds, 1))


def test_redis_restart(service_factory, iris_zip, private_redis) -> None:
    """Jobs queued and running while Redis restarts all finish, each once."""
    n_jobs = scale(3, 10)
    service = service_factory(broker_url=private_redis.url, dead_after_s="8", heartbeat_s="0.5",
                              unclaimed_after_s="15")
    service.start_server()
    service.start_worker()
    client = service.client()
    dataset = upload(client, iris_zip)
    jobs = [submit(client, dataset) for _ in range(n_jobs)]
    wait_for(client, jobs[0], {"running"}, timeout=120)
    private_redis.stop()
    down = time.monotonic()
    time.sleep(2)
    private_redis.start()
    restarted = time.monotonic()
    final = [wait_for(client, job_id, TERMINAL, timeout=120 + 20 * n_jobs) for job_id in jobs]
    assert [job["state"] for job in final] == ["succeeded"] * n_jobs, (final, service.log_tail())
    assert all(succeeded_lines(service, job_id) == 1 for job_id in jobs)
    record_figures("redis_restart", jobs=n_jobs, succeeded_once=n_jobs, down_s=round(restarted - down, 1),
                   all_done_after_restart_s=round(time.monotonic() - restarted, 1))


def test_api_restart(service_factory, iris_zip, redis_broker) -> None:
    """kill -9 of the API with jobs in flight: nothing lost, the restarted API sees every job."""
    n_jobs = scale(2, 10)
    service = service_factory(**redis_broker)
    service.start_server()
    service.start_worker()
    client = service.client()
    dataset = upload(client, iris_zip)
    jobs = [submit(client, dataset) for _ in range(n_jobs)]
    kill_tree(service.server, signal.SIGKILL)
    service.server.wait(timeout=10)
    killed = time.monotonic()
    service.start_server()
    back = time.monotonic() - killed
    final = [wait_for(client, job_id, TERMINAL, timeout=120 + 20 * n_jobs) for job_id in jobs]
    assert [job["state"] for job in final] == ["succeeded"] * n_jobs, (final, service.log_tail())
    assert all(succeeded_lines(service, job_id) == 1 for job_id in jobs)
    record_figures("api_restart", jobs=n_jobs, succeeded_once=n_jobs, api_down_s=round(back, 1))


@pytest.mark.skipif(not FULL, reason="the short run has the same check in tests/service/test_reliability_defects.py")
def test_full_disk_repeated(service_factory, iris_zip, tmp_path) -> None:
    """ENOSPC while writing artifacts, 5 times: each fails once as DiskFull; then the disk recovers."""
    from tests.service.conftest import fill_disk, mount_small_disk

    disk = mount_small_disk(tmp_path / "disk")
    try:
        service = service_factory(**RECOVERY_TIMING)
        service.data_dir = disk / "data"
        service.start_server()
        client = service.client()
        dataset = upload(client, iris_zip)
        seconds = []
        for _ in range(5):
            filler = fill_disk(disk, leave_bytes=96 * 1024)
            started = time.monotonic()
            job = wait_for(client, submit(client, dataset), TERMINAL, timeout=120)
            seconds.append(round(time.monotonic() - started, 1))
            assert job["state"] == "failed" and job["error"]["type"] == "DiskFull" and job["attempts"] == 1, job
            filler.unlink()
            assert wait_for(client, submit(client, dataset), TERMINAL, timeout=120)["state"] == "succeeded"
        record_figures("full_disk", tries=5, disk_full_once=5, recovered=5, seconds_to_fail=seconds)
        service.close()
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_time_limit(service_factory, iris_zip) -> None:
    """A job past its time limit fails as TimeLimitExceeded, once, and the worker takes the next."""
    tries = scale(1, 3)
    service = service_factory(job_time_limit_s="3")
    service.start_server()
    client = service.client()
    dataset = upload(client, iris_zip)
    longer = {**CONFIG, "families": ["RNN", "RNN-P", "BI-RNN", "RBF"], "sigma_u": [0.25, 0.5, 1.0],
              "sigma_b": [0.001, 0.1, 0.5], "layers": [1, 2, 3], "C": [0.01, 1, 100, 1e4, 1e6]}
    for _ in range(tries):
        job = wait_for(client, submit(client, dataset, longer), TERMINAL, timeout=120)
        assert job["state"] == "failed" and job["error"]["type"] == "TimeLimitExceeded", job
        assert job["attempts"] == 1
    record_figures("time_limit", tries=tries, failed_once_with_time_limit=tries)
