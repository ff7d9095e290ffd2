"""Wall time of whole jobs through the real service (uvicorn, Celery workers, files, Redis).

    .venv/bin/python -m benchmarks.job_wall_time small [--jobs 5]
        iris, default config, embedded mode: seconds from POST /jobs to succeeded (report.html
        written), for a fresh pool child per job (RNTK_CHILD_TASKS=1, the old behaviour) and a
        warm one (the default), in one run; medians and their ratio.
    .venv/bin/python -m benchmarks.job_wall_time fanout [--n 4000]
        one landmark job in Redis mode over 1 worker and over 2 workers (issue 19 item 4):
        seconds to succeeded, blocks per worker, and the ratio.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from tests.service.conftest import IRIS, Service, wait_for
from tests.service.test_fan_out import CONFIG as FAN_OUT_CONFIG
from tests.service.test_fan_out import _npz


def _service(root: Path, **settings: str) -> Service:
    env = {key: value for key, value in os.environ.items() if not key.startswith("RNTK_")}
    env.update({"JAX_PLATFORMS": "cpu", "PYTHONUNBUFFERED": "1", "RNTK_QUEUE": f"rntk-bench-{uuid.uuid4().hex[:8]}"})
    env.update({f"RNTK_{key.upper()}": str(value) for key, value in settings.items()})
    (root / "logs").mkdir(parents=True)
    return Service(root / "data", env, root / "logs")


def _upload(client, name: str, data: bytes) -> str:
    response = client.post("/datasets", files={"file": (name, data)})
    assert response.status_code in (200, 201), response.text
    return response.json()["id"]


def _iris_zip() -> bytes:
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(IRIS.iterdir()):
            archive.write(path, f"iris/{path.name}")
    return buffer.getvalue()


def _run(client, dataset: str, config: dict, timeout: float = 900) -> tuple[float, dict]:
    start = time.perf_counter()
    response = client.post("/jobs", json={"dataset_id": dataset, "config": config})
    assert response.status_code == 202, response.text
    job = wait_for(client, response.json()["id"], {"succeeded"}, timeout=timeout)
    return time.perf_counter() - start, job


def small(jobs: int) -> None:
    results: dict[str, list[float]] = {}
    for label, child_tasks in (("fresh child per job", "1"), ("warm child", "50")):
        with tempfile.TemporaryDirectory() as root:
            service = _service(Path(root), child_tasks=child_tasks)
            try:
                service.start_server()
                client = service.client()
                dataset = _upload(client, "iris.zip", _iris_zip())
                seconds = []
                for index in range(jobs):
                    took, job = _run(client, dataset, {})
                    seconds.append(took)
                    phases = ", ".join(f"{k} {v:.2f}" for k, v in job["phase_seconds"].items())
                    print(f"{label}: job {index + 1}: {took:.2f} s ({phases})", flush=True)
                results[label] = seconds
            finally:
                service.close()
    fresh, warm = (statistics.median(v[1:]) for v in results.values())
    print(f"median of jobs 2..{jobs}: fresh child {fresh:.2f} s, warm child {warm:.2f} s, "
          f"ratio warm/fresh {warm / fresh:.2f}; first job {results['fresh child per job'][0]:.2f} s "
          f"and {results['warm child'][0]:.2f} s")


def fanout(n: int) -> None:
    import redis

    url = os.environ.get("RNTK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    data = _npz(n=n)
    config = {**FAN_OUT_CONFIG, "block_rows": max(100, n // 16)}
    seconds = {}
    for workers in (1, 2):
        prefix = f"rntk-bench-{uuid.uuid4().hex[:8]}:"
        with tempfile.TemporaryDirectory() as root:
            service = _service(Path(root), broker_url=url, redis_key_prefix=prefix)
            try:
                service.start_server()
                for _ in range(workers):
                    service.start_worker()
                client = service.client()
                dataset = _upload(client, "waves.npz", data)
                _run(client, dataset, {**config, "landmarks": 16, "block_rows": n})  # warm both children
                took, job = _run(client, dataset, config)
                report = client.get(f"/jobs/{job['id']}/artifacts/report.json").json()
                blocks = report["scale"]["blocks"]
                seconds[workers] = took
                print(f"{workers} worker(s): {took:.2f} s; blocks {blocks['total']}, by worker "
                      f"{sorted(blocks['by_worker'].values())}", flush=True)
            finally:
                service.close()
                client_ = redis.Redis.from_url(url)
                for key in client_.scan_iter(match=f"{prefix}*"):
                    client_.delete(key)
    print(f"N={n}: 2 workers / 1 worker = {seconds[2] / seconds[1]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("small").add_argument("--jobs", type=int, default=5)
    sub.add_parser("fanout").add_argument("--n", type=int, default=4000)
    args = parser.parse_args()
    np.seterr(all="ignore")
    small(args.jobs) if args.command == "small" else fanout(args.n)


if __name__ == "__main__":
    main()
