"""Wall time of whole jobs through the real service (uvicorn, Celery workers, files, Redis).

    .venv/bin/python -m benchmarks.job_wall_time small [--jobs 5]
        iris, default config, embedded mode: seconds from POST /jobs to succeeded (report.html
        written), for a fresh pool child per job (RNTK_CHILD_TASKS=1, the old behaviour) and a
        warm one (the default), in one run; medians and their ratio.
    .venv/bin/python -m benchmarks.job_wall_time poll [--jobs 4] [--polls 1.0 0.1]
        the same with a warm child, for iris's default job and an iris landmark job (M = 64,
        4 blocks as messages), with the embedded broker polling at each interval
        (RNTK_EMBEDDED_POLL_S), two services per interval, alternating; medians and ratios.
    .venv/bin/python -m benchmarks.job_wall_time fanout [--n 20000] [--landmarks 512] [--pin]
        one landmark job (generated sequences, T=32, one sigma pair) in Redis mode over 1
        worker and over 2 workers (issue 19 item 4): seconds to succeeded and in the blocks
        stage, blocks per worker, peak RSS per worker process, the API's RSS, and the ratios.
        --pin puts each worker (and its pool child) on a core of its own.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from tests.service.conftest import IRIS, Service, descendants, wait_for


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


@contextlib.contextmanager
def _iris_service(**settings: str) -> Iterator[tuple[Any, str]]:
    """An embedded service with ``settings`` in a temporary folder: its client and iris's id."""
    with tempfile.TemporaryDirectory() as root:
        service = _service(Path(root), **settings)
        try:
            service.start_server()
            client = service.client()
            yield client, _upload(client, "iris.zip", _iris_zip())
        finally:
            service.close()


def small(jobs: int) -> None:
    results: dict[str, list[float]] = {}
    for label, child_tasks in (("fresh child per job", "1"), ("warm child", "50")):
        with _iris_service(child_tasks=child_tasks) as (client, dataset):
            seconds = []
            for index in range(jobs):
                took, job = _run(client, dataset, {})
                seconds.append(took)
                phases = ", ".join(f"{k} {v:.2f}" for k, v in job["phase_seconds"].items())
                print(f"{label}: job {index + 1}: {took:.2f} s ({phases})", flush=True)
            results[label] = seconds
    fresh, warm = (statistics.median(v[1:]) for v in results.values())
    print(f"median of jobs 2..{jobs}: fresh child {fresh:.2f} s, warm child {warm:.2f} s, "
          f"ratio warm/fresh {warm / fresh:.2f}; first job {results['fresh child per job'][0]:.2f} s "
          f"and {results['warm child'][0]:.2f} s")


def poll(jobs: int, polls: list[str]) -> None:
    configs = {"default": {}, "landmarks": {"families": ["RNN", "RBF"], "landmarks": 64}}
    results: dict[tuple[str, str], list[float]] = {}
    for interval in polls * 2:  # alternating, so a slow minute of the machine hits each
        with _iris_service(embedded_poll_s=interval) as (client, dataset):
            for name, config in configs.items():
                seconds = [_run(client, dataset, config)[0] for _ in range(jobs)]
                print(f"poll {interval} s, {name}: {', '.join(f'{s:.2f}' for s in seconds)} s", flush=True)
                results.setdefault((interval, name), []).extend(seconds[1:])
    for name in configs:
        medians = {interval: statistics.median(results[(interval, name)]) for interval in polls}
        base = medians[polls[0]]
        print(f"{name}: median of jobs 2..{jobs} over two services: " + ", ".join(
            f"poll {interval} s {seconds:.2f} s ({seconds / base:.2f}x)" for interval, seconds in medians.items()))


class RssSampler:
    """Peak resident memory of process trees (a worker: its main process and pool child),
    sampled from /proc every ``every`` seconds in a thread."""

    def __init__(self, roots: dict[str, int], every: float = 0.5) -> None:
        self.roots, self.every = roots, every
        self.peak_process = {name: 0 for name in roots}  # the largest single process, MB
        self.peak_tree = {name: 0 for name in roots}  # the largest sum over the tree, MB
        self.first_tree: dict[str, int] = {}
        self.last_tree: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _rss_mb(pid: int) -> int:
        try:
            with open(f"/proc/{pid}/status") as handle:
                for line in handle:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) // 1024
        except OSError:
            pass
        return 0

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            for name, root in self.roots.items():
                sizes = [self._rss_mb(pid) for pid in (root, *descendants(root))]
                self.peak_process[name] = max(self.peak_process[name], max(sizes))
                self.peak_tree[name] = max(self.peak_tree[name], sum(sizes))
                self.first_tree.setdefault(name, sum(sizes))
                self.last_tree[name] = sum(sizes)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _run_timing_blocks(client, dataset: str, config: dict, timeout: float) -> tuple[float, float, dict]:
    """Seconds to succeeded, and seconds the job's progress stage was ``blocks``."""
    start = time.perf_counter()
    response = client.post("/jobs", json={"dataset_id": dataset, "config": config})
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    blocks_from = blocks_to = None
    while time.perf_counter() - start < timeout:
        job = client.get(f"/jobs/{job_id}").json()
        stage = (job.get("progress") or {}).get("stage")
        now = time.perf_counter()
        if stage == "blocks" and blocks_from is None:
            blocks_from = now
        if stage != "blocks" and blocks_from is not None and blocks_to is None:
            blocks_to = now
        if job["state"] in ("succeeded", "failed", "cancelled"):
            assert job["state"] == "succeeded", job
            return now - start, (blocks_to or now) - (blocks_from or now), job
        time.sleep(0.2)
    raise TimeoutError(f"job {job_id} did not finish in {timeout} s")


def fanout(n: int, steps: int, landmarks: int, pin: bool, worker_counts: list[int]) -> None:
    """One landmark job over 1 and 2 Redis-mode workers: wall time, the blocks stage, peak RSS
    per worker and the API's RSS. ``pin``: each worker on a core of its own (1 worker: core 0)."""
    import redis

    from benchmarks.sequences import write_archive

    url = os.environ.get("RNTK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    config = {"families": ["RNN"], "kinds": ["ntk"], "sigma_u": [0.5], "sigma_b": [0.1], "layers": [1],
              "C": [1.0], "landmarks": landmarks, "selection_samples": 2048, "cv_folds": 2}
    runs = {}
    with tempfile.TemporaryDirectory() as scratch:
        archive = write_archive(Path(scratch) / "sequences.zip", n, steps, 4)
        for workers in worker_counts:
            prefix = f"rntk-bench-{uuid.uuid4().hex[:8]}:"
            with tempfile.TemporaryDirectory() as root:
                service = _service(Path(root), broker_url=url, redis_key_prefix=prefix)
                try:
                    service.start_server()
                    procs = {f"worker{i}": service.start_worker(cpus={i} if pin else None).pid for i in range(workers)}
                    client = service.client()
                    with open(archive, "rb") as handle:
                        response = client.post("/datasets", files={"file": ("sequences.zip", handle)}, timeout=600)
                    assert response.status_code in (200, 201), response.text
                    dataset = response.json()["id"]
                    warm = _archive_bytes(min(n, 2000), steps)  # JAX imported and compiled in every child
                    small = _upload(client, "warm.zip", warm)
                    for _ in range(workers):
                        _run(client, small, {**config, "landmarks": 16, "block_rows": 100})
                    with RssSampler({"api": service.server.pid, **procs}) as rss:
                        took, blocks_s, job = _run_timing_blocks(client, dataset, config, timeout=3 * 3600)
                    report = client.get(f"/jobs/{job['id']}/artifacts/report.json").json()
                    row = {"workers": workers, "pinned": pin, "n": n, "steps": steps, "M": landmarks,
                           "seconds": round(took, 1), "blocks_seconds": round(blocks_s, 1),
                           "blocks": report["scale"]["blocks"]["total"],
                           "by_worker": sorted(report["scale"]["blocks"]["by_worker"].values()),
                           "test_accuracy": report["families"]["RNN"]["test_accuracy"],
                           "nystrom_error_max": report["scale"]["nystrom_error_max"],
                           "peak_rss_mb": {k: v for k, v in rss.peak_process.items() if k != "api"},
                           "api_rss_mb": {"start": rss.first_tree.get("api"), "peak": rss.peak_tree["api"],
                                          "end": rss.last_tree.get("api")}}
                    runs[workers] = row
                    print(json.dumps(row), flush=True)
                finally:
                    service.close()
                    client_ = redis.Redis.from_url(url)
                    for key in client_.scan_iter(match=f"{prefix}*"):
                        client_.delete(key)
    if 1 in runs and 2 in runs:
        print(json.dumps({"summary": "fanout", "n": n, "pinned": pin,
                          "seconds_2_over_1": round(runs[2]["seconds"] / runs[1]["seconds"], 2),
                          "blocks_seconds_2_over_1": round(runs[2]["blocks_seconds"] / runs[1]["blocks_seconds"], 2)}))


def _archive_bytes(n: int, steps: int) -> bytes:
    from benchmarks.sequences import write_archive

    with tempfile.TemporaryDirectory() as scratch:
        return write_archive(Path(scratch) / "warm.zip", n, steps, 4, seed=7).read_bytes()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("small").add_argument("--jobs", type=int, default=5)
    polling = sub.add_parser("poll")
    polling.add_argument("--jobs", type=int, default=4)
    polling.add_argument("--polls", nargs="+", default=["1.0", "0.1"])
    spread = sub.add_parser("fanout")
    spread.add_argument("--n", type=int, default=20_000)
    spread.add_argument("--steps", type=int, default=32)
    spread.add_argument("--landmarks", type=int, default=512)
    spread.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    spread.add_argument("--pin", action="store_true", help="each worker on one core of its own")
    args = parser.parse_args()
    np.seterr(all="ignore")
    if args.command == "small":
        small(args.jobs)
    elif args.command == "poll":
        poll(args.jobs, args.polls)
    else:
        fanout(args.n, args.steps, args.landmarks, args.pin, args.workers)


if __name__ == "__main__":
    main()
