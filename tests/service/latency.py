"""p50 / p95 latency of GET /jobs/{id} under 50 concurrent pollers, on loopback.

Run: .venv/bin/python -m tests.service.latency [--pollers 50] [--seconds 10]
Starts an embedded `rntk serve` on a free port with a fresh data dir, uploads iris, submits
one small job, and polls that job from ``pollers`` concurrent async clients while it runs
and after it finished.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from .conftest import IRIS, SMALL_CONFIG, Service


async def _poll(base: str, job_id: str, until: float, samples: list[float]) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        while time.monotonic() < until:
            start = time.perf_counter()
            response = await client.get(f"/jobs/{job_id}")
            samples.append(time.perf_counter() - start)
            assert response.status_code == 200


async def _run(base: str, job_id: str, pollers: int, seconds: float) -> list[float]:
    samples: list[float] = []
    until = time.monotonic() + seconds
    await asyncio.gather(*(_poll(base, job_id, until, samples) for _ in range(pollers)))
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pollers", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="rntk-latency-"))
    (root / "logs").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RNTK_")}
    env.update({"RNTK_QUEUE": f"latency-{uuid.uuid4().hex[:6]}", "JAX_PLATFORMS": "cpu"})
    service = Service(root / "data", env, root / "logs")
    try:
        service.start_server()
        import io
        import zipfile

        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for file in sorted(IRIS.iterdir()):
                archive.write(file, f"iris/{file.name}")
        client = service.client()
        dataset = client.post("/datasets", files={"file": ("iris.zip", buffer.getvalue())}).json()
        job = client.post("/jobs", json={"dataset_id": dataset["id"], "config": SMALL_CONFIG}).json()
        samples = asyncio.run(_run(service.base, job["id"], args.pollers, args.seconds))
        samples.sort()
        final_state = client.get(f"/jobs/{job['id']}").json()["state"]
        p50 = statistics.median(samples) * 1000
        p95 = samples[int(0.95 * (len(samples) - 1))] * 1000
        print(f"{len(samples)} requests from {args.pollers} pollers in {args.seconds:g} s "
              f"({len(samples) / args.seconds:.0f} req/s): p50 {p50:.1f} ms, p95 {p95:.1f} ms; "
              f"job state at the end: {final_state}")
    finally:
        service.close()


if __name__ == "__main__":
    main()
