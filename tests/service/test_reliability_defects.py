"""Regression tests for the eight defects of issue 12, each against real processes.

Every test here failed before its fix: a job stuck in ``queued`` after its delivery was lost,
a full disk reported as ``WorkerLost``, unbounded configs accepted, a racy quota, a 500 on
deeply nested JSON, two ``file`` parts silently merged, a 413 lost by urllib, and recovery
that needed the API process.
"""

from __future__ import annotations

import concurrent.futures
import json
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import httpx
import pytest

from .conftest import (RECOVERY_TIMING, SMALL_CONFIG, TERMINAL, deliver_without_claim, descendants, evaluating,
                       fill_disk, kill_tree, mount_small_disk, stop, submit_longer, wait_for)


def _upload(client: httpx.Client, iris_zip: Path) -> str:
    response = client.post("/datasets", files={"file": ("iris.zip", iris_zip.read_bytes())})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _record(service, job_id: str) -> dict:
    return json.loads((service.data_dir / "jobs" / job_id / "record.json").read_text())


def _wait_record(service, job_id: str, states: set[str], timeout: float) -> dict:
    """Poll the record file itself (for when no API is up)."""
    deadline = time.monotonic() + timeout
    record: dict = {}
    while time.monotonic() < deadline:
        record = _record(service, job_id)
        if record["state"] in states:
            return record
        time.sleep(0.3)
    raise TimeoutError(f"job {job_id} not in {states} after {timeout} s: {record}\n{service.log_tail()}")


# --------------------------------------------------------------------------- 1. lost delivery

def test_delivered_but_unclaimed_job_is_resent(service_factory, iris_zip, redis_broker) -> None:
    """Defect 1: a worker killed after delivery, before claim; the job still runs, once."""
    import redis

    service = service_factory(**redis_broker, unclaimed_after_s="10")
    service.start_server()
    client = service.client()
    dataset = _upload(client, iris_zip)
    response = client.post("/jobs", json={"dataset_id": dataset, "config": SMALL_CONFIG,
                                          "artifacts": {"gram": "none"}})
    assert response.status_code == 202, response.text
    job = response.json()

    assert deliver_without_claim(service) == _record(service, job["id"])["message_id"]
    broker = redis.Redis.from_url(redis_broker["broker_url"])
    assert broker.hlen(redis_broker["redis_key_prefix"] + "unacked") == 1  # stuck there for hours
    assert client.get(f"/jobs/{job['id']}").json()["state"] == "queued"

    service.start_worker()
    done = wait_for(client, job["id"], TERMINAL, timeout=120)
    assert done["state"] == "succeeded", (done, service.log_tail())
    assert done["attempts"] == 1, done  # the lost delivery never claimed it


def test_queued_job_waiting_in_line_is_not_resent(service_factory, iris_zip, redis_broker) -> None:
    """Defect 1's fix must leave alone a job that simply waits in the queue (no worker yet),
    however long: its message is still in the broker's list (under the key prefix)."""
    service = service_factory(**redis_broker, unclaimed_after_s="1")
    service.start_server()
    client = service.client()
    dataset = _upload(client, iris_zip)
    job_ids = [client.post("/jobs", json={"dataset_id": dataset, "config": SMALL_CONFIG}).json()["id"]
               for _ in range(3)]
    sent = {job_id: _record(service, job_id)["message_id"] for job_id in job_ids}
    time.sleep(5)  # several sweeps, each past the 1 s bound
    for job_id in job_ids:
        record = _record(service, job_id)
        assert record["state"] == "queued" and record["message_id"] == sent[job_id], record
        assert not record["requeues"], record


# --------------------------------------------------------------------------- 2. full disk


@pytest.fixture
def small_disk(tmp_path: Path):
    mountpoint = mount_small_disk(tmp_path / "disk")
    yield mountpoint
    subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True)


def test_full_disk_fails_once_with_disk_full(service_factory, iris_zip, small_disk) -> None:
    """Defect 2: ENOSPC while writing artifacts -> failed once, DiskFull, nothing staged left."""
    service = service_factory(**RECOVERY_TIMING)
    service.data_dir = small_disk / "data"
    service.start_server()
    client = service.client()
    dataset = _upload(client, iris_zip)
    filler = fill_disk(small_disk, leave_bytes=96 * 1024)
    response = client.post("/jobs", json={"dataset_id": dataset, "config": SMALL_CONFIG,
                                          "artifacts": {"gram": "all"}})
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    job = wait_for(client, job_id, TERMINAL, timeout=120)
    assert job["state"] == "failed", (job, service.log_tail())
    assert job["error"]["type"] == "DiskFull", (job, service.log_tail())
    assert "space" in job["error"]["message"].lower(), job
    assert job["attempts"] == 1 and not job.get("requeues"), job
    job_dir = service.data_dir / "jobs" / job_id
    assert not [p.name for p in job_dir.iterdir() if "artifacts" in p.name]
    time.sleep(6)  # longer than dead_after_s: the sweep must leave the failed job alone
    assert client.get(f"/jobs/{job_id}").json()["attempts"] == 1

    filler.unlink()  # space is back: the service works again
    response = client.post("/jobs", json={"dataset_id": dataset, "config": SMALL_CONFIG,
                                          "artifacts": {"gram": "all"}})
    assert response.status_code == 202, response.text
    assert wait_for(client, response.json()["id"], TERMINAL, timeout=120)["state"] == "succeeded"


# --------------------------------------------------------------------------- 3. bounds and cost

UNBOUNDED = {
    "C list of 10^5 values": ({"C": [float(k + 1) for k in range(100_000)]}, "C"),
    "rf_n_estimators 1e7": ({"families": ["RF"], "rf_n_estimators": [10_000_000]}, "rf_n_estimators"),
    "layers 1e9": ({"layers": [1_000_000_000]}, "layers"),
    "sigma_w 1e308": ({"sigma_w": [1e308]}, "sigma_w"),
    "C 1e300": ({"C": [1e300]}, "C"),
    "mlp_layers 1e6": ({"families": ["MLP"], "mlp_layers": [1_000_000]}, "mlp_layers"),
    "poly_degree 1e6": ({"families": ["POLY"], "poly_degree": [1_000_000]}, "poly_degree"),
}


def test_submit_refuses_unbounded_configs_and_records_cost(service_factory, iris_zip) -> None:
    """Defect 3: bounds at submit time (422 naming the limit), cost estimate refused past a limit."""
    service = service_factory(max_job_seconds="60")
    service.start_server()
    client = service.client()
    dataset = _upload(client, iris_zip)
    for label, (config, field) in UNBOUNDED.items():
        response = client.post("/jobs", json={"dataset_id": dataset, "config": config})
        assert response.status_code == 422, (label, response.status_code, response.text[:300])
        detail = json.dumps(response.json()["detail"])
        assert field in detail and "at most" in detail, (label, detail[:300])

    # every list within bounds, but the grid as a whole too costly for the configured limit
    costly = {"families": ["RNN", "RNN-P", "BI-RNN", "RNN-AVG", "BI-RNN-AVG"],
              "sigma_w": [0.5 + k / 10 for k in range(20)], "sigma_u": [0.5 + k / 10 for k in range(20)],
              "sigma_b": [0.0, 0.1, 0.2], "layers": [1, 2, 3, 4]}
    response = client.post("/jobs", json={"dataset_id": dataset, "config": costly})
    assert response.status_code == 422, response.text[:300]
    detail = json.dumps(response.json()["detail"])
    assert "cost" in detail and "RNTK_MAX_JOB_SECONDS" in detail, detail

    response = client.post("/jobs", json={"dataset_id": dataset, "config": SMALL_CONFIG})
    assert response.status_code == 202, response.text
    cost = response.json()["cost"]
    assert cost["kernels"] == 2 and cost["baseline_kernels"] == 8 and cost["fits"] >= 20, cost
    assert 0 < cost["seconds"] <= 60, cost
    assert client.get(f"/jobs/{response.json()['id']}").json()["cost"] == cost


# --------------------------------------------------------------------------- 4. quota


def test_quota_is_atomic_under_concurrent_submissions(service_factory, iris_zip, redis_broker) -> None:
    """Defect 4: limit 5, 20 concurrent submissions -> exactly 5 accepted (no worker runs them)."""
    service = service_factory(**redis_broker, max_queued_jobs="5")
    service.start_server()
    dataset = _upload(service.client(), iris_zip)
    barrier = threading.Barrier(20)

    def submit(_: int) -> int:
        with service.client() as client:
            barrier.wait()
            return client.post("/jobs", json={"dataset_id": dataset, "config": SMALL_CONFIG}).status_code

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        codes = list(pool.map(submit, range(20)))
    assert sorted(codes) == [202] * 5 + [429] * 15, codes
    assert len(service.client().get("/jobs").json()) == 5


# --------------------------------------------------------------------------- 5. nested JSON


def test_deeply_nested_json_is_a_4xx(service_factory, iris_zip) -> None:
    """Defect 5: JSON nested 1,000+ levels deep gets a 4xx with a clear detail, never a 500."""
    service = service_factory()
    service.start_server()
    client = service.client()
    dataset = _upload(client, iris_zip)
    for depth in (1_000, 100_000):
        bodies = {
            "array": "[" * depth + "]" * depth,
            "config": '{"dataset_id": "%s", "config": %s}' % (dataset, '{"a": ' * depth + "1" + "}" * depth),
        }
        for label, body in bodies.items():
            response = client.post("/jobs", content=body, headers={"content-type": "application/json"})
            assert 400 <= response.status_code < 500, (label, depth, response.status_code, response.text[:200])
            assert "nest" in json.dumps(response.json()["detail"]), (label, response.text[:200])
        response = client.post("/jobs", files={"file": ("iris.zip", iris_zip.read_bytes())},
                               data={"config": '{"a": ' * depth + "1" + "}" * depth})
        assert 400 <= response.status_code < 500, (depth, response.status_code, response.text[:200])
    assert client.get("/healthz").status_code == 200


# --------------------------------------------------------------------------- 6. two file parts


def test_two_file_parts_are_refused(service_factory, iris_zip) -> None:
    """Defect 6 (part): two ``file`` parts in one upload is a 422, not "the last one wins"."""
    service = service_factory()
    service.start_server()
    client = service.client()
    data = iris_zip.read_bytes()
    for path in ("/datasets", "/jobs"):
        started = time.monotonic()
        response = client.post(path, files=[("file", ("iris.zip", data)), ("file", ("other.csv", b"a,label\n1,0\n"))])
        assert response.status_code == 422, (path, response.text)
        assert "'file' appears more than once" in response.json()["detail"], response.text
        # the body was read to its end: the refusal does not wait out the drain's 10 s for
        # more of it (schemathesis' 10 s response limit caught that)
        assert time.monotonic() - started < 5, (path, time.monotonic() - started)


# --------------------------------------------------------------------------- 7. 413 for urllib


def _urllib_upload(url: str, size: int) -> int | str:
    boundary = uuid.uuid4().hex
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.csv\"\r\n"
            "Content-Type: text/csv\r\n\r\n").encode()
    body = head + b"1,0\n" * (size // 4) + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, ConnectionError, OSError) as exc:
        return f"{type(exc).__name__}: {exc}"


def test_oversize_upload_413_reaches_urllib(service_factory) -> None:
    """Defect 7: Python's urllib posting 6 MB against a 5 MB limit sees the 413, every time."""
    service = service_factory(max_upload_mb="5")
    service.start_server()
    outcomes = [_urllib_upload(service.base + "/datasets", 6 * 1024 * 1024) for _ in range(5)]
    outcomes += [_urllib_upload(service.base + "/jobs", 6 * 1024 * 1024) for _ in range(3)]
    assert outcomes == [413] * 8, outcomes
    assert httpx.get(service.base + "/healthz").status_code == 200


# --------------------------------------------------------------------------- 8. recovery without API


def test_recovery_runs_without_the_api(service_factory, iris_zip, redis_broker) -> None:
    """Defect 8: the API is down when a worker dies mid-job; the workers recover the job."""
    service = service_factory(**redis_broker, **RECOVERY_TIMING)
    service.start_server()
    worker = service.start_worker()
    client = service.client()
    job_id = submit_longer(client, iris_zip)
    wait_for(client, job_id, {"running"}, timeout=120, condition=evaluating)
    client.close()
    stop(service.server)  # the API is gone for good
    assert descendants(worker.pid)
    kill_tree(worker, signal.SIGKILL)
    worker.wait(timeout=10)
    service.start_worker()
    record = _wait_record(service, job_id, TERMINAL, timeout=180)
    assert record["state"] == "succeeded", (record, service.log_tail())
    assert record["attempts"] == 2 and len(record["requeues"]) == 1, record
