"""The worker's stall watchdog: a job that hangs where Python cannot interrupt it (its
heartbeat still beats) is failed as ``Stalled``, naming its stage, and its worker is free for
the next job -- not held until the 6-hour time limit."""

from __future__ import annotations

import os
import time

from .conftest import SMALL_CONFIG, wait_for


def test_a_job_hung_in_a_native_wait_fails_as_stalled_and_frees_its_worker(service_factory, iris_zip) -> None:
    # 20 s: longer than the JAX import inside the "loading" stage on a loaded 2-core machine.
    service = service_factory(stall_after_s="20", heartbeat_s="0.5")
    service.start_server()
    client = service.client()
    dataset = client.post("/datasets", files={"file": ("iris.zip", iris_zip.read_bytes())}).json()
    # The stored upload becomes a FIFO with no writer: the worker's open() blocks in the kernel,
    # as on a hung network mount -- a real hang, and one that no Python signal handler ends.
    [meta] = list((service.data_dir / "datasets").glob(f"*/{dataset['id']}/meta.json"))
    # the upload itself, not meta.json or the parsed/ arrays (a FIFO's size differs from the
    # one they were parsed from, so the job reads the upload)
    stored = next(p for p in meta.parent.iterdir() if p.is_file() and p.name != "meta.json")
    original = stored.read_bytes()
    stored.unlink()
    os.mkfifo(stored)
    hung = client.post("/jobs", json={"dataset_id": dataset["id"], "config": SMALL_CONFIG})
    assert hung.status_code == 202, hung.text
    started = time.monotonic()
    job = wait_for(client, hung.json()["id"], {"failed"}, timeout=120)
    assert job["error"]["type"] == "Stalled", job
    assert "'loading'" in job["error"]["message"] and "20 s" in job["error"]["message"], job
    assert time.monotonic() - started < 100
    assert not list((service.data_dir / "jobs" / job["id"]).glob(".artifacts.*"))  # staged files dropped

    # The worker's slot was freed: the next job runs to the end, and the hung one stays failed.
    stored.unlink()
    stored.write_bytes(original)
    follow = client.post("/jobs", json={"dataset_id": dataset["id"], "config": SMALL_CONFIG})
    assert follow.status_code == 202, follow.text
    done = wait_for(client, follow.json()["id"], {"succeeded"}, timeout=150)
    assert done["state"] == "succeeded", service.log_tail()
    assert client.get(f"/jobs/{job['id']}").json()["state"] == "failed"
