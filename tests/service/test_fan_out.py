"""One landmark job over every worker (issue 19 item 4): its K(X, Z) blocks run as a Celery
chord, in the embedded mode (files as the result backend) and in Redis mode, over real worker
processes; a worker killed with kill -9 in the middle of the blocks costs time, not results.
A dense job whose grids would take one worker too long (RNTK_FAN_OUT_DENSE_S) runs them as
row blocks of K(X, X) the same way, and reports what the one-process job does."""

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

#: The same families dense: no landmarks; RNTK_FAN_OUT_DENSE_S tiny, so its grids fan out.
DENSE_CONFIG = {**{key: value for key, value in CONFIG.items() if key != "landmarks"}, "block_rows": 96}
DENSE_FAN_OUT = {"fan_out_dense_s": "0.000001"}


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


def _in_process_report(data: bytes, tmp_path, config: dict = CONFIG) -> dict:
    """The same job's report computed in this process (no fan-out; a dense job's grids in one pass)."""
    from rntk_core.evaluation.config import parse_config
    from rntk_core.evaluation.datasets import load_dataset
    from rntk_core.evaluation.evaluate import evaluate

    path = tmp_path / "waves.npz"
    path.write_bytes(data)
    return evaluate(load_dataset(path), parse_config(config)).model_dump(mode="json", exclude_unset=True)


def _in_process(data: bytes, tmp_path) -> dict[str, float]:
    """The same job's accuracies with the blocks computed in this process (no fan-out)."""
    return _accuracies(_in_process_report(data, tmp_path))


def test_embedded_mode_runs_the_blocks_as_a_chord_on_a_file_result_backend(service_factory, tmp_path) -> None:
    service = service_factory()
    service.start_server()
    client = service.client()
    data = _npz()
    job_id = _submit(client, data)
    seen: list[dict] = []
    seen_blocks = wait_for(client, job_id, {"running", "succeeded"}, timeout=180,
                           condition=lambda job: seen.append(job) or job["state"] == "succeeded"
                           or job["progress"]["stage"] == "blocks")
    job = wait_for(client, job_id, {"running", "succeeded"}, timeout=300,
                   condition=lambda job: seen.append(job) or job["state"] == "succeeded")
    # one overall bar across the job's tasks: never backwards, an ETA while the blocks run
    overall = [job["progress"]["overall"] for job in seen]
    assert overall == sorted(overall) and overall[-1] == 1.0, [(j["progress"]["stage"], j["progress"]["overall"])
                                                                for j in seen]
    assert all(j["progress"]["eta_s"] is not None and j["progress"]["overall"] > 0 for j in seen
               if j["state"] == "running" and j["progress"]["stage"] == "blocks"), seen
    # the worker's estimate with the loaded dataset's protocol (stratified: 4 folds, one holdout)
    assert job["run_cost"]["method"] == "landmarks" and job["run_cost"]["test_fits"] == 4 * len(CONFIG["families"])
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


def test_embedded_mode_fans_out_the_grids_of_a_slow_dense_job(service_factory, tmp_path) -> None:
    """Its K(X, X) row blocks run as the chord's tasks; the report, read from their stores,
    is the one-process job's: every configuration's score, each family's choice and accuracy."""
    service = service_factory(**DENSE_FAN_OUT)
    service.start_server()
    client = service.client()
    data = _npz()
    job_id = _submit(client, data, DENSE_CONFIG)
    wait_for(client, job_id, {"succeeded"}, timeout=300)
    report = _report(client, job_id)
    blocks = _blocks(report)
    assert report["scale"]["method"] == "dense" and blocks["rows_per_block"] == 96, blocks
    assert sum(blocks["by_worker"].values()) == blocks["total"] == 5, blocks  # ceil(480 / 96), one grid pass
    expected = _in_process_report(data, tmp_path, DENSE_CONFIG)
    assert [c["validation_accuracy"] for c in report["configurations"]] == \
        [c["validation_accuracy"] for c in expected["configurations"]], service.log_tail()
    assert {name: (family["chosen"], family["fold_accuracies"]) for name, family in report["families"].items()} == \
        {name: (family["chosen"], family["fold_accuracies"]) for name, family in expected["families"].items()}
    assert not any((service.data_dir / "jobs").rglob("work")), "the work folder outlived the job"
    logs = "".join(path.read_text(errors="replace") for path in service.logs.glob("*.log"))
    assert "rntk.block" in logs and "chord_unlock" not in logs


def test_redis_mode_spreads_a_dense_jobs_grids_over_two_workers(service_factory, redis_broker) -> None:
    service = service_factory(**redis_broker, **DENSE_FAN_OUT)
    service.start_server()
    service.start_worker()
    service.start_worker()
    client = service.client()
    job_id = _submit(client, _npz(n=800), {**DENSE_CONFIG, "block_rows": 50})
    wait_for(client, job_id, {"succeeded"}, timeout=300)
    blocks = _blocks(_report(client, job_id))
    assert len(blocks["by_worker"]) == 2, (blocks, service.log_tail())
    assert sum(blocks["by_worker"].values()) == blocks["total"] == 16, blocks


def test_a_dense_job_fans_out_only_past_its_estimated_grid_seconds() -> None:
    from rntk_core.evaluation.config import parse_config
    from rntk_core.evaluation.cost import estimate_cost, grid_seconds
    from worker.fanout import dense_fans_out
    from worker.settings import Settings

    config = parse_config(DENSE_CONFIG)
    seconds = grid_seconds(20_000, 100, config)
    assert 0 < seconds < estimate_cost(20_000, 100, config).kernel_seconds  # RBF's kernel is not the grids'
    assert dense_fans_out(20_000, 100, config, Settings(fan_out_dense_s=seconds / 2))
    assert not dense_fans_out(20_000, 100, config, Settings(fan_out_dense_s=seconds * 2))
    assert not dense_fans_out(20_000, 100, config, Settings(fan_out_dense_s=0))
    assert not dense_fans_out(20_000, 100, config, Settings(fan_out_dense_s=1, fan_out_blocks=False))
    assert not dense_fans_out(20_000, 100, parse_config(CONFIG), Settings(fan_out_dense_s=1))  # landmarks
    assert not dense_fans_out(20_000, 100, parse_config({**DENSE_CONFIG, "families": ["RBF"]}),
                              Settings(fan_out_dense_s=1e-9))  # no recurrent grids
