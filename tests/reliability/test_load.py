"""Load: many submissions from concurrent clients while pollers read; none lost, latencies recorded."""

from __future__ import annotations

import random
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from tests.reliability.conftest import record_figures, scale
from tests.service.conftest import TERMINAL

#: The cheapest real job (one RBF kernel, one C): the worker's throughput, not the kernels.
TINY = {"families": ["RBF"], "rbf_gamma": [1.0], "C": [1.0]}


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def test_load(service_factory, iris_zip, redis_broker) -> None:
    submissions, clients, pollers = scale(12, 200), scale(4, 20), scale(8, 50)
    service = service_factory(**redis_broker, max_queued_jobs=str(submissions))
    service.start_server()
    for _ in range(2):  # one worker per core
        service.start_worker()
    with service.client() as client:
        dataset = client.post("/datasets", files={"file": ("iris.zip", iris_zip.read_bytes())}).json()["id"]

    accepted: list[str] = []
    submit_latency: list[float] = []
    poll_latency: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    done = threading.Event()
    started = time.monotonic()

    def submitter(share: int) -> None:
        with service.client() as client:
            for _ in range(share):
                moment = time.perf_counter()
                response = client.post("/jobs", json={"dataset_id": dataset, "config": TINY,
                                                      "artifacts": {"gram": "none"}})
                with lock:
                    submit_latency.append(time.perf_counter() - moment)
                    if response.status_code == 202:
                        accepted.append(response.json()["id"])
                    else:
                        errors.append(f"submit {response.status_code}: {response.text[:200]}")

    def poller(seed: int) -> None:  # like `rntk submit --wait`: one job, twice a second
        rng = random.Random(seed)
        with service.client() as client:
            while not done.is_set():
                with lock:
                    ids = list(accepted)
                if not ids:
                    time.sleep(0.05)
                    continue
                moment = time.perf_counter()
                response = client.get(f"/jobs/{rng.choice(ids)}")
                with lock:
                    poll_latency.append(time.perf_counter() - moment)
                    if response.status_code != 200:
                        errors.append(f"poll {response.status_code}")
                time.sleep(0.5)

    shares = [submissions // clients + (1 if k < submissions % clients else 0) for k in range(clients)]
    poll_threads = [threading.Thread(target=poller, args=(k,), daemon=True) for k in range(pollers)]
    for thread in poll_threads:
        thread.start()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(submitter, shares))
    submitted_in = time.monotonic() - started

    with service.client() as client:
        deadline = time.monotonic() + 60 + 15 * submissions
        pending = set(accepted)
        while pending and time.monotonic() < deadline:
            for job_id in list(pending):
                if client.get(f"/jobs/{job_id}").json()["state"] in TERMINAL:
                    pending.discard(job_id)
            time.sleep(1)
        finished = time.monotonic()
        done.set()
        states = [client.get(f"/jobs/{job_id}").json()["state"] for job_id in accepted]
    for thread in poll_threads:
        thread.join(timeout=10)

    assert not errors, errors[:5]
    assert len(accepted) == submissions and len(set(accepted)) == submissions
    assert states == ["succeeded"] * submissions, {s: states.count(s) for s in set(states)}
    ms = lambda values, q: round(1000 * _percentile(values, q), 1)  # noqa: E731
    record_figures("load", submissions=submissions, clients=clients, pollers=pollers, lost=0,
                   succeeded=states.count("succeeded"), polls=len(poll_latency),
                   poll_p50_ms=ms(poll_latency, 50), poll_p95_ms=ms(poll_latency, 95),
                   poll_p99_ms=ms(poll_latency, 99), submit_p50_ms=ms(submit_latency, 50),
                   submit_p95_ms=ms(submit_latency, 95), submit_p99_ms=ms(submit_latency, 99),
                   submitted_in_s=round(submitted_in, 1),
                   jobs_per_min=round(60 * submissions / (finished - started), 1),
                   median_poll_ms=round(1000 * statistics.median(poll_latency), 1), workers=2)
