"""Admission by memory: a dense job too large for a worker is refused with a 422 that names
the figure and suggests landmarks; with ``scale: auto`` (the default) it runs with landmarks."""

from __future__ import annotations

import io

import numpy as np

from rntk_core.evaluation.config import parse_config
from rntk_core.evaluation.cost import dense_host_bytes, gigabytes


def _large_npz() -> bytes:
    rng = np.random.default_rng(0)
    n = 12_000  # dense RBF: 5 N x N float64 arrays, about 5.8 GB
    buffer = io.BytesIO()
    np.savez(buffer, X=rng.normal(size=(n, 3)).astype(np.float32), y=np.arange(n) % 3)
    return buffer.getvalue()


def test_a_dense_job_over_the_workers_memory_is_refused_or_moved_to_landmarks(service_factory) -> None:
    service = service_factory(worker_memory_mb="3000")
    service.start_server()
    client = service.client()
    upload = client.post("/datasets", files={"file": ("large.npz", _large_npz())})
    assert upload.status_code in (200, 201), upload.text
    dataset = upload.json()["id"]
    base = {"families": ["RBF"], "rbf_gamma": [1.0], "C": [1.0]}

    refused = client.post("/jobs", json={"dataset_id": dataset, "config": {**base, "scale": "dense"}})
    assert refused.status_code == 422, refused.text
    detail = refused.json()["detail"]
    expected = gigabytes(dense_host_bytes(12_000, 3, parse_config({**base, "scale": "dense"})))
    assert expected.endswith("GB") and float(expected.split()[0]) > 5.7  # the N x N arrays dominate
    assert f"about {expected}" in detail and "3.1 GB" in detail and '"landmarks": 1024' in detail, detail
    unsupported = client.post("/jobs", json={"dataset_id": dataset, "config": {**base, "families": ["RBF", "MLP"]}})
    assert unsupported.status_code == 422 and "MLP" in unsupported.json()["detail"], unsupported.text
    assert client.get("/jobs").json() == [] or all(j["dataset_id"] != dataset for j in client.get("/jobs").json())

    moved = client.post("/jobs", json={"dataset_id": dataset, "config": base})
    assert moved.status_code == 202, moved.text
    job = moved.json()
    assert job["config"]["landmarks"] == 1024, job["config"]
    assert client.delete(f"/jobs/{job['id']}").status_code in (200, 202, 204)
