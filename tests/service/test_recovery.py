"""Exactly-once recovery: kill -9 of a worker's whole process tree during a job, and the
sweep / claim rules it relies on (unit level, no processes)."""

from __future__ import annotations

import signal
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from worker.settings import Settings
from worker.jobs import JobRecord, JobState, Store, now
from .conftest import RECOVERY_TIMING, descendants, evaluating, kill_tree, submit_longer, wait_for


def _check_once(service, job: dict) -> None:
    assert job["state"] == "succeeded", (job, service.log_tail())
    assert job["attempts"] == 2 and len(job["requeues"]) == 1, job
    job_dir = service.data_dir / "jobs" / job["id"]
    assert sorted(p.name for p in job_dir.iterdir() if "artifacts" in p.name) == ["artifacts"]
    client = service.client()
    artifacts = client.get(f"/jobs/{job['id']}/artifacts").json()
    on_disk = sorted(p.relative_to(job_dir / "artifacts").as_posix()
                     for p in (job_dir / "artifacts").rglob("*") if p.is_file())
    assert sorted(a["name"] for a in artifacts) == on_disk
    report = client.get(f"/jobs/{job['id']}/artifacts/report.json").json()
    assert {g["file"] for g in report["grams"]} == {n for n in on_disk if n.startswith("gram/")}


def test_kill9_worker_tree_redis(service_factory, iris_zip, redis_broker) -> None:
    """kill -9 of the worker and its pool child mid-job; a restarted worker completes it once."""
    service = service_factory(**redis_broker, **RECOVERY_TIMING)
    service.start_server()
    worker = service.start_worker()
    client = service.client()
    job_id = submit_longer(client, iris_zip)
    wait_for(client, job_id, {"running"}, timeout=90,
             condition=evaluating)
    assert descendants(worker.pid), "the prefork pool child should be running the job"
    kill_tree(worker, signal.SIGKILL)
    worker.wait(timeout=10)
    time.sleep(1)
    assert client.get(f"/jobs/{job_id}").json()["state"] == "running"  # nobody knows yet
    service.start_worker()
    job = wait_for(client, job_id, {"succeeded", "failed", "cancelled"}, timeout=150)
    _check_once(service, job)


def test_kill9_embedded_worker_restarts(service_factory, iris_zip) -> None:
    """Embedded mode: `serve` restarts its killed worker, which then completes the job once."""
    service = service_factory(**RECOVERY_TIMING)
    service.start_server()
    client = service.client()
    job_id = submit_longer(client, iris_zip)
    wait_for(client, job_id, {"running"}, timeout=90,
             condition=evaluating)
    workers = [pid for pid in descendants(service.server.pid)]
    assert workers
    for pid in workers:  # the worker tree only; the API lives on
        try:
            import os
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    job = wait_for(client, job_id, {"succeeded", "failed", "cancelled"}, timeout=150)
    _check_once(service, job)
    assert client.get("/healthz").status_code == 200


# --------------------------------------------------------------------------- unit level


class FakeCelery:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[tuple[str, str]] = []
        self.fail = fail

    def send_task(self, name, args, task_id, queue, retry):
        if self.fail:
            raise ConnectionError("broker down")
        self.sent.append((args[0], task_id))


def _record(store: Store, **fields) -> JobRecord:
    fields = {"created_at": now() - 10, "enqueued_at": now() - 10, **fields}
    record = JobRecord(id=store.new_job_id(), owner="anonymous", dataset_id="0" * 64,
                       message_id=uuid.uuid4().hex, **fields)
    return store.create_job(record)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "data")


def test_sweep_requeues_then_fails_dead_jobs(store: Store, tmp_path: Path) -> None:
    from worker.queue import sweep

    settings = Settings(data_dir=tmp_path / "data", dead_after_s=5, max_attempts=2)
    celery = FakeCelery()
    dead = _record(store, state="running", attempts=1, started_at=now() - 60)
    store.write_heartbeat(dead.id, {"pid": 1})
    (store.job_dir(dead.id) / "heartbeat.json").write_text('{"at": %f}' % (now() - 60))
    alive = _record(store, state="running", attempts=1, started_at=now() - 60)
    store.write_heartbeat(alive.id, {"pid": 1})
    actions = sweep(store, celery, settings)
    assert actions["requeued"] == [dead.id]
    requeued = store.read_job(dead.id)
    assert requeued.state == "queued" and requeued.message_id != dead.message_id
    assert celery.sent == [(dead.id, requeued.message_id)] and requeued.enqueued_at
    assert store.read_job(alive.id).state == "running"

    final = _record(store, state="running", attempts=2, started_at=now() - 60)
    sweep(store, celery, settings)
    failed = store.read_job(final.id)
    assert failed.state == "failed" and failed.error.type == "WorkerLost"
    assert "2 attempts" in failed.error.message


def test_sweep_leaves_a_just_reclaimed_job_whose_old_heartbeat_is_stale(store: Store, tmp_path: Path) -> None:
    """A requeued job claimed again runs before its first beat replaces the dead attempt's:
    its new start counts as life, so a sweep in that moment does not requeue it twice."""
    from worker.queue import sweep
    from worker.tasks import claim

    settings = Settings(data_dir=tmp_path / "data", dead_after_s=5, max_attempts=3)
    record = _record(store, state="queued", attempts=1)
    (store.job_dir(record.id) / "heartbeat.json").write_text('{"at": %f}' % (now() - 60))
    assert claim(store, record.id, record.message_id, 3, 5).attempts == 2
    assert sweep(store, FakeCelery(), settings)["requeued"] == []
    assert store.read_job(record.id).state == "running"
    assert claim(store, record.id, record.message_id, 3, 5) is None  # a duplicate delivery waits


def test_sweep_resends_jobs_queued_while_broker_was_down(store: Store, tmp_path: Path) -> None:
    from worker.queue import enqueue, sweep

    settings = Settings(data_dir=tmp_path / "data")
    record = _record(store, enqueued_at=None)
    assert not enqueue(store, FakeCelery(fail=True), settings, record.id)
    stored = store.read_job(record.id)
    assert stored.enqueued_at is None and "broker down" in stored.enqueue_error
    celery = FakeCelery()
    assert sweep(store, celery, settings)["resent"] == [record.id]
    assert celery.sent == [(record.id, record.message_id)]
    assert store.read_job(record.id).enqueued_at is not None
    assert sweep(store, celery, settings)["resent"] == []  # sent once


def test_claim_runs_each_job_once(store: Store) -> None:
    from worker.tasks import claim

    record = _record(store)
    assert claim(store, record.id, "superseded", 3, 60) is None
    claimed = claim(store, record.id, record.message_id, 3, 60)
    assert claimed.state == "running" and claimed.attempts == 1
    store.write_heartbeat(record.id, {"pid": -1, "ppid": -1})
    assert claim(store, record.id, record.message_id, 3, 60) is None  # duplicate delivery
    store.update_job(record.id, lambda rec: rec.move_to(JobState.succeeded))
    assert claim(store, record.id, record.message_id, 3, 60) is None
    cancelled = _record(store)
    store.request_cancel(cancelled.id)
    assert claim(store, cancelled.id, cancelled.message_id, 3, 60) is None
    assert store.read_job(cancelled.id).state == "cancelled"


def test_scrub_hides_server_paths(store: Store) -> None:
    from worker.tasks import scrub

    message = scrub(f"{store.root}/jobs/x/data.csv: line 3 bad; see /usr/lib/python3/zipfile.py", store)
    assert str(store.root) not in message and "/usr/lib" not in message and "zipfile.py" in message


def test_cancel_running_job(service_factory, iris_zip) -> None:
    """A running job honours cancel (between tiles or fits, where the engine polls
    should_cancel): it ends cancelled with no artifacts."""
    service = service_factory()
    service.start_server()
    client = service.client()
    job_id = submit_longer(client, iris_zip)
    wait_for(client, job_id, {"running"}, timeout=90,
             condition=evaluating)
    asked = time.monotonic()
    response = client.post(f"/jobs/{job_id}/cancel")
    assert response.status_code == 202 and response.json()["cancel_requested"] is True
    job = wait_for(client, job_id, {"cancelled"}, timeout=60)
    print(f"cancelled {time.monotonic() - asked:.1f} s after the request")
    assert job["finished_at"] and client.get(f"/jobs/{job_id}/artifacts").json() == []
    job_dir = service.data_dir / "jobs" / job_id
    assert not [p for p in job_dir.iterdir() if "artifacts" in p.name]


def test_cancel_lands_while_a_libsvm_fit_runs(service_factory, tmp_path) -> None:
    """libsvm cannot be interrupted and one fit here runs for tens of seconds (millions of SMO
    steps at C = 1e6): the cancel must not wait for it."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2000, 4))
    y = (x[:, 0] * x[:, 1] + 0.8 * rng.standard_normal(2000) > 0).astype(np.int64)
    np.savez(tmp_path / "slow.npz", X=x, y=y)
    service = service_factory()
    service.start_server()
    client = service.client()
    dataset = client.post("/datasets", files={"file": ("slow.npz", (tmp_path / "slow.npz").read_bytes())}).json()
    config = {"families": ["RBF"], "rbf_gamma": [0.5], "C": [1e6], "normalize": "none", "solver": "libsvm"}
    response = client.post("/jobs", json={"dataset_id": dataset["id"], "config": config})
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    wait_for(client, job_id, {"running"}, timeout=90,
             condition=lambda job: job["progress"]["stage"] == "validation fits")
    time.sleep(2.0)  # well inside the one fit
    asked = time.monotonic()
    assert client.post(f"/jobs/{job_id}/cancel").status_code == 202
    job = wait_for(client, job_id, {"cancelled"}, timeout=60)
    waited = time.monotonic() - asked
    print(f"cancelled {waited:.1f} s after the request")
    assert waited < 10, job
    assert job["progress"]["done"] == 0  # it was inside the fit, not between fits


def test_job_time_limit(service_factory, iris_zip) -> None:
    """A job past RNTK_JOB_TIME_LIMIT_S fails with a clear TimeLimitExceeded error."""
    service = service_factory(job_time_limit_s="4")
    service.start_server()
    client = service.client()
    job_id = submit_longer(client, iris_zip)
    job = wait_for(client, job_id, {"failed"}, timeout=90)
    assert job["error"]["type"] == "TimeLimitExceeded" and "4 s" in job["error"]["message"], job
    assert job["attempts"] == 1 and client.get(f"/jobs/{job_id}/artifacts").json() == []
