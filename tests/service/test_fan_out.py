"""One landmark job over every worker (issue 19 item 4): its K(X, Z) blocks run as a Celery
chord, in the embedded mode (files as the result backend) and in Redis mode, over real worker
processes; a worker killed with kill -9 in the middle of the blocks costs time, not results."""

from __future__ import annotations

import io
import signal
import time

import numpy as np
import pytest

from tests.service.conftest import RECOVERY_TIMING, kill_tree, wait_for

#: Two families, one kernel each, 100-row blocks: every test fold's N rows make several blocks.
CONFIG = {"families": ["RNN", "RBF"], "sigma_u": [0.5], "sigma_b": [0.1], "layers": [1], "rbf_gamma": [1.0],
          "C": [1, 100], "landmarks": 48, "block_rows": 100}


def _npz(n: int = 480, steps: int = 12, seed: int = 0) -> bytes:
    """Two classes of noisy sine series that differ in frequency (a kernel can tell them apart)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    t = np.linspace(0, 2 * np.pi, steps)
    X = np.sin(np.outer(1 + y, t) + rng.uniform(0, 2 * np.pi, (n, 1))) + 0.3 * rng.normal(size=(n, steps))
    buffer = io.BytesIO()
    np.savez(buffer, X=X.astype(np.float32), y=y)
    return buffer.getvalue()


def _submit(client, data: bytes, config: dict = CONFIG) -> str:
    upload = client.post("/datasets", files={"file": ("waves.npz", data)})
    assert upload.status_code in (200, 201), upload.text
    job = client.post("/jobs", json={"dataset_id": upload.json()["id"], "config": config})
    assert job.status_code == 202, job.text
    return job.json()["id"]


def _report(client, job_id: str) -> dict:
    response = client.get(f"/jobs/{job_id}/artifacts/report.json")
    assert response.status_code == 200, response.text
    return response.json()


def _accuracies(report: dict) -> dict[str, float]:
    return {name: family["test_accuracy"] for name, family in report["families"].items()}


def _blocks(report: dict) -> dict:
    blocks = report["scale"]["blocks"]
    assert blocks["total"] > 2, blocks  # several blocks per fold: there was something to spread
    return blocks


def _in_process(data: bytes, tmp_path) -> dict[str, float]:
    """The same job's accuracies with the blocks computed in this process (no fan-out)."""
    from rntk_core.evaluation.config import parse_config
    from rntk_core.evaluation.datasets import load_dataset
    from rntk_core.evaluation.evaluate import evaluate

    path = tmp_path / "waves.npz"
    path.write_bytes(data)
    report = evaluate(load_dataset(path), parse_config(CONFIG))
    return {name: family.test_accuracy for name, family in report.families.items()}


def test_embedded_mode_runs_the_blocks_as_a_chord_on_a_file_result_backend(service_factory, tmp_path) -> None:
    service = service_factory()
    service.start_server()
    client = service.client()
    data = _npz()
    job_id = _submit(client, data)
    seen_blocks = wait_for(client, job_id, {"running", "succeeded"}, timeout=180,
                           condition=lambda job: job["state"] == "succeeded" or job["progress"]["stage"] == "blocks")
    job = wait_for(client, job_id, {"succeeded"}, timeout=300)
    report = _report(client, job_id)
    blocks = _blocks(report)
    assert sum(blocks["by_worker"].values()) == blocks["total"], blocks  # each block computed once
    assert seen_blocks["state"] == "succeeded" or seen_blocks["progress"]["total"] == blocks["total"]
    assert not any(path.name == "work" for path in (service.data_dir / "jobs").rglob("work")), \
        "the work folder outlived the job"
    assert _accuracies(report) == pytest.approx(_in_process(data, tmp_path), abs=1e-12), service.log_tail()
    assert job["state"] == "succeeded"
    logs = "".join(path.read_text(errors="replace") for path in service.logs.glob("*.log"))
    assert "rntk.block" in logs and "chord_unlock" not in logs, "the chord was not completed natively"


def test_redis_mode_spreads_one_job_over_two_workers(service_factory, redis_broker) -> None:
    service = service_factory(**redis_broker)
    service.start_server()
    service.start_worker()
    service.start_worker()
    client = service.client()
    job_id = _submit(client, _npz(n=800))
    wait_for(client, job_id, {"succeeded"}, timeout=400)
    blocks = _blocks(_report(client, job_id))
    assert len(blocks["by_worker"]) == 2, (blocks, service.log_tail())
    assert all(count > 0 for count in blocks["by_worker"].values()), blocks
    assert sum(blocks["by_worker"].values()) == blocks["total"], blocks


def test_a_worker_killed_during_the_blocks_changes_no_result(service_factory, redis_broker, tmp_path) -> None:
    """kill -9 of a whole worker (main process and child) while it computes a block: the sweep
    re-runs the job, which keeps its selection and the blocks already written, and the
    report's accuracies are those of a clean run."""
    data = _npz(n=800, seed=1)
    service = service_factory(**redis_broker, **RECOVERY_TIMING)
    service.start_server()
    victim = service.start_worker()
    client = service.client()
    job_id = _submit(client, data)
    wait_for(client, job_id, {"running"}, timeout=300,
             condition=lambda job: job["progress"]["stage"] == "blocks" and job["progress"]["done"] >= 1)
    kill_tree(victim, signal.SIGKILL)
    victim.wait(timeout=10)
    service.start_worker()
    job = wait_for(client, job_id, {"succeeded"}, timeout=400)
    assert job["attempts"] >= 2 and job["requeues"], job
    report = _report(client, job_id)
    assert _accuracies(report) == pytest.approx(_in_process(data, tmp_path), abs=1e-12), service.log_tail()


def test_cancel_during_the_blocks_stops_the_job_at_once(service_factory, redis_broker) -> None:
    service = service_factory(**redis_broker)
    service.start_server()
    service.start_worker()
    client = service.client()
    job_id = _submit(client, _npz(n=1600))
    wait_for(client, job_id, {"running"}, timeout=300, condition=lambda job: job["progress"]["stage"] == "blocks")
    response = client.post(f"/jobs/{job_id}/cancel")
    assert response.status_code == 202 and response.json()["state"] == "cancelled", response.text
    time.sleep(3)  # the worker goes on only to no-op blocks; the job stays cancelled
    assert client.get(f"/jobs/{job_id}").json()["state"] == "cancelled"
