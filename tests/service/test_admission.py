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


def test_features_per_step_is_read_from_the_stored_metadata(service_factory) -> None:
    """POST /jobs with features_per_step must not parse the dataset (a 400 MB one took 41 s
    and 3.5 GB of the API): the stored file becomes a FIFO that nobody writes, so any open()
    of it would hang the request."""
    import os

    service = service_factory()
    service.start_server()
    client = service.client()
    rows = "".join(f"{k},{k + 1},{k % 3},{k * 2},{k % 5},{k % 7},{k % 2}\n" for k in range(40))
    upload = client.post("/datasets", files={"file": ("six.csv", ("a,b,c,d,e,f,label\n" + rows).encode())})
    assert upload.status_code in (200, 201), upload.text
    dataset = upload.json()["id"]
    [meta] = list((service.data_dir / "datasets").glob(f"*/{dataset}/meta.json"))
    stored = next(p for p in meta.parent.iterdir() if p.name != "meta.json")
    stored.unlink()
    os.mkfifo(stored)
    config = {"families": ["RBF"], "rbf_gamma": [1.0], "C": [1.0]}
    estimate = client.post("/jobs/estimate", json={"dataset_id": dataset, "config": {**config, "features_per_step": 2}})
    assert estimate.status_code == 200 and estimate.json()["steps"] == 3, estimate.text
    refused = client.post("/jobs", json={"dataset_id": dataset, "config": {**config, "features_per_step": 4}})
    assert refused.status_code == 422 and "does not divide" in refused.json()["detail"], refused.text
    accepted = client.post("/jobs", json={"dataset_id": dataset, "config": {**config, "features_per_step": 3}})
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["cost"]["steps"] == 2
