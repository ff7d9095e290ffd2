"""Structured logs and /metrics: JSON lines with the job id, and the metrics a GPU host's
operator watches (jobs by state, job and phase durations, queue depth, heartbeats, GPU
memory, worker deaths)."""

from __future__ import annotations

import io
import json
import logging
import os
import uuid
import zipfile
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from worker.logs import JsonFormatter, job_context, setup_logging
from app.metrics import render_metrics
from rntk_core.evaluation.files import atomic_write_json
from tests.helpers import CACHE_VARIABLES, UCI
from worker.jobs import JobRecord, Store, now

#: The service tests' small evaluation (about 5 s on 2 CPU cores).
SMALL_CONFIG = {"families": ["RNN", "RBF"], "sigma_u": [0.5], "sigma_b": [0.1], "layers": [1], "C": [1, 100]}


@pytest.fixture
def json_log():
    """Route logging through :func:`setup_logging` into a buffer; restore logging afterwards."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    named = {name: (list(logging.getLogger(name).handlers), logging.getLogger(name).propagate)
             for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "celery", "celery.task", "celery.worker")}
    buffer = io.StringIO()
    setup_logging("INFO", stream=buffer)
    yield buffer
    logging.captureWarnings(False)
    root.handlers[:], root.level = saved
    for name, (handlers, propagate) in named.items():
        logging.getLogger(name).handlers[:] = handlers
        logging.getLogger(name).propagate = propagate


def lines(buffer: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


def samples(body: bytes | str) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of a Prometheus exposition."""
    text = body.decode() if isinstance(body, bytes) else body
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def test_json_log_lines_carry_the_job_id(json_log) -> None:
    log = logging.getLogger("rntk.test")
    log.info("outside %s", "any job")
    with job_context("abc123"):
        log.warning("inside", extra={"attempt": 2})
        try:
            raise ValueError("multi\nline")
        except ValueError:
            log.exception("failed")
    log.info("after")
    outside, inside, failed, after = lines(json_log)
    assert set(outside) == {"ts", "level", "logger", "message"}
    assert outside["message"] == "outside any job" and outside["logger"] == "rntk.test" and outside["level"] == "INFO"
    assert outside["ts"].endswith("+00:00")
    assert inside["job_id"] == "abc123" and inside["attempt"] == 2 and inside["level"] == "WARNING"
    assert failed["job_id"] == "abc123" and failed["exc_type"] == "ValueError" and "ValueError: multi\nline" in failed["exc"]
    assert "job_id" not in after
    assert len(json_log.getvalue().splitlines()) == 4  # one line each, tracebacks included


def test_formatter_is_one_line_per_record() -> None:
    record = logging.LogRecord("rntk.x", logging.ERROR, __file__, 1, "a\nb", None, None)
    text = JsonFormatter().format(record)
    assert "\n" not in text and json.loads(text)["message"] == "a\nb"


def _job(store: Store, state: str, **fields) -> JobRecord:
    fields = {"created_at": now() - 100, "attempts": 1, **fields}
    record = JobRecord(id=store.new_job_id(), owner="anonymous", dataset_id="0" * 64, state=state,
                       message_id=uuid.uuid4().hex, **fields)
    return store.create_job(record)


def test_metrics_from_records_and_heartbeats(tmp_path: Path) -> None:
    store = Store(tmp_path)
    finished = now()
    _job(store, "succeeded", started_at=finished - 30, finished_at=finished, worker="gpu-host-a",
         phase_seconds={"loading": 0.5, "kernels": 20.0, "validation fits": 6.0, "writing": 0.2},
         attempts=2, requeues=[{"at": finished - 40, "reason": "no heartbeat"}])
    _job(store, "failed", started_at=finished - 10, finished_at=finished - 5, attempts=3, worker="gpu-host-a",
         requeues=[{"at": 1, "reason": "lost"}, {"at": 2, "reason": "lost"}], error={"type": "WorkerLost", "message": "died"})
    _job(store, "queued")
    _job(store, "queued", deleted=True)
    on_gpu = _job(store, "running", started_at=finished - 50, worker="gpu-host-b")
    atomic_write_json(store.job_dir(on_gpu.id) / "heartbeat.json", {
        "at": now() - 3, "host": "gpu-host-b", "pid": 1,
        "device_memory": [{"device": "gpu:0", "bytes_in_use": 123456789}, {"device": "gpu:1", "bytes_in_use": 42}]})
    on_cpu = _job(store, "running", started_at=finished - 5, worker="cpu-host")
    store.write_heartbeat(on_cpu.id, {"host": "cpu-host", "pid": 2})

    found = samples(render_metrics(store))
    assert found[("rntk_jobs", (("state", "queued"),))] == 1  # the deleted one is not counted
    assert found[("rntk_jobs", (("state", "running"),))] == 2
    assert found[("rntk_queue_depth", ())] == 1
    assert found[("rntk_job_duration_seconds_count", (("state", "succeeded"),))] == 1
    assert found[("rntk_job_duration_seconds_sum", (("state", "succeeded"),))] == pytest.approx(30)
    assert found[("rntk_job_phase_duration_seconds_sum", (("phase", "kernels"),))] == pytest.approx(20)
    assert found[("rntk_job_phase_duration_seconds_count", (("phase", "validation fits"),))] == 1
    age = found[("rntk_job_heartbeat_age_seconds", (("job_id", on_gpu.id), ("worker", "gpu-host-b")))]
    assert 2 < age < 60
    assert ("rntk_job_heartbeat_age_seconds", (("job_id", on_cpu.id), ("worker", "cpu-host"))) in found
    assert found[("rntk_worker_last_seen_timestamp_seconds", (("worker", "gpu-host-a"),))] == pytest.approx(finished)
    assert {labels for name, labels in found if name == "rntk_worker_last_seen_timestamp_seconds"} == {
        (("worker", host),) for host in ("gpu-host-a", "gpu-host-b", "cpu-host")}
    assert found[("rntk_gpu_memory_bytes_in_use", (("device", "gpu:0"), ("worker", "gpu-host-b")))] == 123456789
    assert not any(name == "rntk_gpu_memory_bytes_in_use" and ("worker", "cpu-host") in labels
                   for name, labels in found), "no GPU memory where the worker could not read it"
    assert found[("rntk_job_requeues_total", ())] == 3  # worker deaths
    assert found[("rntk_jobs_retried", ())] == 2
    assert found[("rntk_jobs_worker_lost_total", ())] == 1


def test_a_real_job_logs_json_and_shows_in_metrics(tmp_path, monkeypatch, json_log) -> None:
    """Upload and submit through the app, run the Celery task in-process, then scrape /metrics."""
    from fastapi.testclient import TestClient

    from app.main import create_app
    from worker.settings import Settings, get_settings
    from worker.tasks import run_job

    iris = UCI / "iris"
    if not iris.is_dir():
        pytest.skip(f"{iris} is missing")
    data_dir = tmp_path / "data"
    for key in [k for k in os.environ if k.startswith("RNTK_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("RNTK_DATA_DIR", str(data_dir))
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    # the in-process task sets JAX's cache variables with setdefault; these are restored after
    monkeypatch.setenv("RNTK_COMPILE_CACHE_MB", "0")
    for key in CACHE_VARIABLES:
        monkeypatch.delenv(key, raising=False)
    get_settings.cache_clear()
    try:
        settings = Settings()
        with TestClient(create_app(settings, sweep=False)) as client:
            archive = tmp_path / "iris.zip"
            with zipfile.ZipFile(archive, "w") as bundle:
                for file in sorted(iris.iterdir()):
                    bundle.write(file, f"iris/{file.name}")
            dataset = client.post("/datasets", files={"file": ("iris.zip", archive.read_bytes())})
            assert dataset.status_code == 201, dataset.text
            submitted = client.post("/jobs", json={"dataset_id": dataset.json()["id"], "config": SMALL_CONFIG})
            assert submitted.status_code == 202, submitted.text
            job_id = submitted.json()["id"]
            message_id = Store(data_dir).read_job(job_id).message_id

            assert run_job.apply(args=[job_id], task_id=message_id).get() == "succeeded"

            job = client.get(f"/jobs/{job_id}").json()
            assert job["state"] == "succeeded" and job["attempts"] == 1
            assert {"loading", "kernels", "writing"} <= set(job["phase_seconds"])
            assert set(job["timings"]) >= {"kernels", "validation", "test", "total"}
            metrics = client.get("/metrics")
            assert metrics.status_code == 200
    finally:
        get_settings.cache_clear()

    found = samples(metrics.text)
    assert found[("rntk_jobs", (("state", "succeeded"),))] == 1
    assert found[("rntk_job_duration_seconds_count", (("state", "succeeded"),))] == 1
    assert found[("rntk_job_phase_duration_seconds_count", (("phase", "kernels"),))] == 1
    assert ("rntk_worker_last_seen_timestamp_seconds", (("worker", job["worker"]),)) in found
    assert found[("rntk_job_requeues_total", ())] == 0
    assert not any(name == "rntk_gpu_memory_bytes_in_use" for name, _ in found)  # a CPU run

    records = lines(json_log)
    mine = [entry for entry in records if entry["logger"] == "rntk.tasks"]
    assert mine and all(entry["job_id"] == job_id for entry in mine), mine
    assert any(entry["message"].endswith("attempt 1") and entry["attempt"] == 1 for entry in mine)
