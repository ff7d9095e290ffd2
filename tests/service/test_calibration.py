"""Each worker measures its cost-model rates at start (worker.calibration); the API's estimate
and the running job's ETAs use them: real workers (embedded and Redis mode), then unit level."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from rntk_core.evaluation.config import parse_config
from rntk_core.evaluation.cost import SECONDS_PER_CELL, SECONDS_PER_FIT_SAMPLE2, CostConstants, estimate_cost
from worker import calibration
from worker.calibration import CalibrationStore, fleet_constants
from worker.settings import Settings

from .conftest import SMALL_CONFIG, stop

#: A worker's first pool child imports JAX, then measures (about 2 s on 2 loaded cores).
CALIBRATED_WITHIN_S = 120


def _wait_for_records(store: CalibrationStore, count: int, timeout: float = CALIBRATED_WITHIN_S) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        records = store.alive()
        if len(records) >= count:
            return records
        time.sleep(0.5)
    raise TimeoutError(f"fewer than {count} calibration record(s) after {timeout} s: {store.alive()}")


def _estimate(client, iris_zip: Path) -> dict:
    dataset = client.post("/datasets", files={"file": ("iris.zip", iris_zip.read_bytes())}).json()
    response = client.post("/jobs/estimate", json={"dataset_id": dataset["id"], "config": SMALL_CONFIG})
    assert response.status_code == 200, response.text
    return response.json()


def _expected(estimate: dict, constants: CostConstants) -> dict:
    return estimate_cost(estimate["n_samples"], estimate["steps"], parse_config(SMALL_CONFIG),
                         constants=constants).as_dict()


def _check_record(record: dict) -> None:
    assert record["worker"].startswith("rntk-worker-") and record["device"].startswith("cpu")
    assert record["seconds_per_cell"] > 0 and record["seconds_per_fit_sample2"] > 0
    assert record["factor"] == pytest.approx(record["seconds_per_cell"] / SECONDS_PER_CELL)
    assert record["fit_factor"] == pytest.approx(record["seconds_per_fit_sample2"] / SECONDS_PER_FIT_SAMPLE2)
    assert 0 < time.time() - record["measured_at"] < 600 and record["measure_seconds"] < 60
    os.kill(record["pid"], 0)  # the worker's main process: alive


def test_an_embedded_worker_records_its_calibration_and_the_estimate_uses_it(service_factory, iris_zip) -> None:
    service = service_factory(calibrate=True)
    service.start_server()
    settings = Settings(data_dir=service.data_dir)
    [record] = _wait_for_records(CalibrationStore(settings), 1)
    _check_record(record)
    assert (service.data_dir / "broker" / "workers" / f"{record['worker']}.json").is_file()
    print(f"\ncalibration: {record['seconds_per_cell']:.3g} s/cell ({record['factor']:.3g}x), "
          f"fits {record['fit_factor']:.3g}x, measured in {record['measure_seconds']} s on {record['device']}")

    client = service.client()
    estimate = _estimate(client, iris_zip)
    expected = _expected(estimate, CostConstants.from_calibration(record))
    assert estimate["kernel_seconds"] == expected["kernel_seconds"] and estimate["seconds"] == expected["seconds"]
    assert estimate["basis"] == f"{record['device']} (calibrated)"

    ready = client.get("/readyz").json()
    assert [worker["factor"] for worker in ready["workers"]] == [record["factor"]]
    assert "worker" not in ready["workers"][0]  # no names without a key
    metrics = client.get("/metrics").text
    assert f'rntk_worker_seconds_per_cell{{device="{record["device"]}",worker="{record["worker"]}"}}' in metrics


def test_redis_calibrations_live_with_their_workers_and_the_slowest_prices_a_job(
        service_factory, redis_broker, iris_zip) -> None:
    service = service_factory(**redis_broker, calibrate=True)
    service.start_server()
    client = service.client()
    settings = Settings(data_dir=service.data_dir, **redis_broker)
    store = CalibrationStore(settings)

    # no worker recorded one: today's 2-core CPU constants
    estimate = _estimate(client, iris_zip)
    assert estimate["basis"] == "a 2-core CPU"
    assert estimate["seconds"] == _expected(estimate, CostConstants())["seconds"]

    # a recorded calibration (a fast GPU worker) prices the next estimate
    gpu = {"worker": "gpu0@elsewhere", "device": "gpu: test", "seconds_per_cell": 1e-11,
           "seconds_per_fit_sample2": 1e-9, "measured_at": time.time()}
    store.write(gpu["worker"], gpu)
    estimate = _estimate(client, iris_zip)
    assert estimate["kernel_seconds"] == _expected(estimate, CostConstants.from_calibration(gpu))["kernel_seconds"]
    assert estimate["basis"] == "gpu: test (calibrated)"

    # a real worker records its own, under its node name, with a TTL; the slower of the two prices jobs
    worker = service.start_worker()
    records = _wait_for_records(store, 2)
    [record] = [r for r in records if r["worker"] != gpu["worker"]]
    _check_record(record)
    ttl = store._client().pttl(store.key(record["worker"])) / 1000
    assert 0 < ttl <= calibration.ttl_s(settings)
    estimate = _estimate(client, iris_zip)
    slowest = CostConstants(record["seconds_per_cell"], record["seconds_per_fit_sample2"])
    assert estimate["kernel_seconds"] == _expected(estimate, slowest)["kernel_seconds"]
    assert estimate["basis"] == "the slowest of 2 calibrated workers"
    assert len(client.get("/readyz").json()["workers"]) == 2

    # the worker's beat keeps its record alive; a worker that stops takes it along
    time.sleep(2.5)  # beyond two beats (RNTK_HEARTBEAT_S=1)
    assert store._client().pttl(store.key(record["worker"])) / 1000 > ttl - 1.5
    stop(worker)
    assert store.read(record["worker"]) is None
    store.remove(gpu["worker"])
    assert _estimate(client, iris_zip)["basis"] == "a 2-core CPU"
    store.close()


# --------------------------------------------------------------------------- unit level


def test_file_records_are_alive_until_their_ttl(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", dead_after_s=50, heartbeat_s=1)
    store = CalibrationStore(settings)
    assert fleet_constants(settings) == CostConstants()  # none recorded
    store.write("a@host", {"worker": "a@host", "seconds_per_cell": 2e-9, "seconds_per_fit_sample2": 9e-8})
    store.write("b@host", {"worker": "b@host", "seconds_per_cell": 5e-9, "seconds_per_fit_sample2": 1e-8})
    # the slowest rate of each: any live worker may take the job
    assert fleet_constants(settings) == CostConstants(5e-9, 9e-8, "the slowest of 2 calibrated workers")

    stale = time.time() - 60
    os.utime(store.folder / "b@host.json", (stale, stale))  # b stopped beating 60 s ago
    assert [r["worker"] for r in store.alive()] == ["a@host"] and store.read("b@host") is None
    store.refresh("b@host")  # a beat brings it back
    assert len(store.alive()) == 2
    os.utime(store.folder / "b@host.json", (stale, stale))
    store.drop_expired()
    assert sorted(p.name for p in store.folder.iterdir()) == ["a@host.json"]
    store.remove("a@host")
    assert store.alive() == [] and fleet_constants(settings) == CostConstants()


def test_the_worker_beat_refreshes_and_removes_its_record(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", heartbeat_s=0.1)
    store = CalibrationStore(settings)
    store.write("w@host", {"worker": "w@host", "seconds_per_cell": 1e-9})
    path = store.folder / "w@host.json"
    earlier = time.time() - 20  # within the TTL (100 s)
    os.utime(path, (earlier, earlier))
    beat = calibration.WorkerBeat(settings, "w@host")
    beat.start()
    try:
        deadline = time.monotonic() + 10
        while path.stat().st_mtime < earlier + 10 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert time.time() - path.stat().st_mtime < 5
    finally:
        beat.stop()
    assert not path.exists()


def test_a_job_takes_its_etas_from_its_own_workers_rates(tmp_path: Path, monkeypatch) -> None:
    """The submit-time estimate (the slowest worker's) is redone with this worker's rates."""
    from worker.jobs import JobCost, JobRecord
    from worker.tasks import OverallProgress, own_estimate

    config = parse_config(SMALL_CONFIG)
    submitted = estimate_cost(2000, 30, config)
    record = JobRecord(id="0" * 32, owner="anonymous", dataset_id="0" * 64, config=config,
                       cost=JobCost.model_validate(submitted.as_dict()))
    assert own_estimate(record) == record.cost  # this process has no calibration

    done = threading.Event()
    done.set()
    monkeypatch.setattr(calibration._Local, "done", done)
    monkeypatch.setattr(calibration._Local, "record", {"seconds_per_cell": 1e-10, "device": "gpu: test"})
    fast = estimate_cost(2000, 30, config, constants=CostConstants(seconds_per_cell=1e-10))
    assert own_estimate(record).seconds == fast.seconds < submitted.seconds
    progress = OverallProgress(own_estimate(record))
    assert progress.expected == fast.seconds and progress.weights == fast.stage_seconds()
    assert progress.update("loading", 0, 1)[1] == pytest.approx(fast.seconds, abs=1.0)


def test_a_resumed_job_goes_on_from_its_records_progress(tmp_path: Path) -> None:
    """The chord's continuation (a new Attempt) starts where the blocks left the job's
    overall fraction, and counts the ETA's elapsed time from the job's start."""
    from worker.jobs import JobCost, JobRecord, Progress
    from worker.tasks import OverallProgress, blocks_progress

    config = parse_config({**SMALL_CONFIG, "landmarks": 64})
    cost = JobCost.model_validate(estimate_cost(20_000, 30, config).as_dict())
    record = JobRecord(id="0" * 32, owner="anonymous", dataset_id="0" * 64, config=config, cost=cost,
                       started_at=time.time() - 100.0,
                       progress=Progress(stage="blocks", done=3, total=4, overall=0.7, eta_s=40.0))
    resumed = OverallProgress(cost, resumed=record)
    fraction, eta = resumed.update("blocks", 4, 4)  # the continuation's first report
    assert fraction >= 0.7
    assert eta == pytest.approx(100.0 * (1 - fraction) / fraction, rel=0.05)  # the pace since the job started
    assert fraction == max(0.7, OverallProgress(cost).update("blocks", 4, 4)[0])  # never backwards
    assert OverallProgress(cost).update("loading", 0, 1)[0] == 0.0
    blocks = blocks_progress(record, 3, 4)
    assert blocks.stage == "blocks" and (blocks.done, blocks.total) == (3, 4)
    assert blocks.overall >= 0.7 and blocks.eta_s is not None and blocks.eta_s > 0


def test_a_job_reweighs_its_progress_by_its_datasets_protocol(tmp_path: Path) -> None:
    """Once loaded, a TRAIN/TEST archive's job is estimated with 1 test fold and CV selection
    (not the UCI protocol's 4 folds and one holdout): the attempt's weights, and the record's
    ``run_cost``, which the job's block tasks and continuation then weigh by."""
    from rntk_core.evaluation.datasets import load_dataset
    from tests.helpers import TS_DATA
    from worker.jobs import JobCost, JobRecord, Store
    from worker.settings import Settings
    from worker.tasks import Attempt, blocks_progress, own_estimate

    config = parse_config({**SMALL_CONFIG, "landmarks": 32})
    dataset = load_dataset(TS_DATA / "GunPoint.zip")
    submitted = JobCost.model_validate(estimate_cost(dataset.n_samples, dataset.n_steps, config).as_dict())
    store = Store(tmp_path)
    record = store.create_job(JobRecord(id=store.new_job_id(), owner="anonymous", dataset_id="0" * 64,
                                        config=config, cost=submitted))
    attempt = Attempt(store, record, Settings(data_dir=tmp_path), None)
    attempt.refine_estimate(dataset, config)
    stored = store.read_job(record.id)
    assert stored.run_cost is not None and stored.run_cost.test_fits == len(config.families)
    assert submitted.test_fits == 4 * len(config.families)
    assert stored.run_cost.validation_fits == config.cv_folds * submitted.validation_fits
    assert attempt.overall.weights == stored.run_cost.stage_seconds != submitted.stage_seconds
    assert own_estimate(stored) == stored.run_cost
    fraction = blocks_progress(stored, 1, 2).overall
    assert fraction == pytest.approx(attempt.overall.update("blocks", 1, 2)[0], abs=1e-4)
