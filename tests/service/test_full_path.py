"""Upload -> submit -> poll -> download over real HTTP with a real worker, in both modes."""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np

from .conftest import IRIS, SMALL_CONFIG, wait_for


def _full_path(service, iris_zip) -> None:
    client = service.client()
    upload = client.post("/datasets", files={"file": ("iris.zip", iris_zip.read_bytes(), "application/zip")})
    assert upload.status_code == 201, upload.text
    dataset = upload.json()
    assert {k: dataset[k] for k in ("format", "n_samples", "n_steps", "n_features", "n_classes")} == {
        "format": "uci", "n_samples": 150, "n_steps": 4, "n_features": 1, "n_classes": 3}
    assert dataset["sha256"] == hashlib.sha256(iris_zip.read_bytes()).hexdigest()
    again = client.post("/datasets", files={"file": ("copy.zip", iris_zip.read_bytes())})
    assert again.status_code == 201 and again.json()["id"] == dataset["id"]
    assert client.get(f"/datasets/{dataset['id']}").json()["n_samples"] == 150

    submitted = client.post("/jobs", json={"dataset_id": dataset["id"], "config": SMALL_CONFIG,
                                           "artifacts": {"gram": "selected"}})
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]
    assert submitted.headers["location"] == f"/jobs/{job_id}"
    assert submitted.json()["state"] in ("queued", "running")

    job = wait_for(client, job_id, {"succeeded", "failed", "cancelled"})
    assert job["state"] == "succeeded", (job, service.log_tail())
    assert job["attempts"] == 1 and job["error"] is None
    # the worker keeps its compiled programs for the next job (RNTK_COMPILE_CACHE_MB)
    assert any((service.data_dir / "jax-cache").iterdir())
    assert job["started_at"] and job["finished_at"] and job["created_at"]
    assert job["progress"] == {"stage": "done", "done": 1, "total": 1, "overall": 1.0, "eta_s": 0.0}
    assert set(job["summary"]) == {"RNN", "RBF"}
    assert all(0.8 < job["summary"][f]["test_accuracy"] <= 1 and job["summary"][f]["chosen"] for f in ("RNN", "RBF"))

    listed = client.get("/jobs", params={"state": "succeeded"}).json()
    assert [j["id"] for j in listed] == [job_id]
    assert client.get("/jobs", params={"state": "queued"}).json() == []

    artifacts = client.get(f"/jobs/{job_id}/artifacts").json()
    names = {a["name"] for a in artifacts}
    assert {"report.json", "report.csv", "report.html"} <= names
    report = client.get(f"/jobs/{job_id}/artifacts/report.json").json()
    assert report["grams"] and all(g["file"] in names for g in report["grams"])
    page = client.get(f"/jobs/{job_id}/artifacts/report.html")  # opens in a browser, confined
    assert page.headers["content-disposition"].startswith("inline")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["content-type"].startswith("text/html")
    assert client.get(f"/jobs/{job_id}/artifacts/report.json").headers["content-disposition"].startswith("attachment")

    from rntk_core import gram
    from rntk_core.evaluation.datasets import load_dataset

    X = load_dataset(IRIS).X
    entry = report["grams"][0]
    info = next(a for a in artifacts if a["name"] == entry["file"])
    full = client.get(info["url"])
    assert full.status_code == 200 and len(full.content) == info["size"]
    assert hashlib.sha256(full.content).hexdigest() == info["sha256"]
    half = info["size"] // 2
    first = client.get(info["url"], headers={"Range": f"bytes=0-{half - 1}"})
    rest = client.get(info["url"], headers={"Range": f"bytes={half}-"})
    assert first.status_code == rest.status_code == 206
    assert first.headers["content-range"] == f"bytes 0-{half - 1}/{info['size']}"
    assert first.content + rest.content == full.content
    assert client.get(info["url"], headers={"Range": f"bytes={info['size']}-"}).status_code == 416
    assert client.get(info["url"], headers={"Range": "lines=1-2"}).status_code == 416

    downloaded = np.load(io.BytesIO(full.content))
    expected = gram(X / entry["x_scale"], **entry["params"])
    error = np.linalg.norm(downloaded - expected) / np.linalg.norm(expected)
    assert downloaded.shape == (150, 150) and error <= 1e-5, error

    for bad in ("../record.json", "..%2Frecord.json", "%2e%2e/record.json", "gram/../../record.json"):
        assert client.get(f"/jobs/{job_id}/artifacts/{bad}").status_code == 404
    assert client.get("/jobs/0123456789abcdef0123456789abcdef").status_code == 404

    metrics = client.get("/metrics").text
    assert 'rntk_jobs{state="succeeded"} 1.0' in metrics and "rntk_queue_depth 0.0" in metrics
    assert "rntk_job_duration_seconds_count" in metrics
    assert client.get("/readyz").status_code == 200

    # one set of artifacts on disk, nothing staged left behind
    job_dir = service.data_dir / "jobs" / job_id
    assert sorted(p.name for p in job_dir.iterdir() if "artifacts" in p.name) == ["artifacts"]
    assert json.loads((job_dir / "record.json").read_text())["attempts"] == 1


def test_full_path_embedded(service_factory, iris_zip) -> None:
    """The default: no broker configured, `serve` starts the worker over the filesystem transport."""
    service = service_factory()
    service.start_server()
    assert service.client().get("/readyz").json()["mode"] == "embedded"
    paths = service.client().get("/openapi.json").json()["paths"]
    assert {"/datasets", "/jobs", "/jobs/{job_id}", "/jobs/{job_id}/cancel", "/jobs/{job_id}/artifacts",
            "/jobs/{job_id}/artifacts/{name}", "/healthz", "/readyz", "/metrics"} <= set(paths)
    _full_path(service, iris_zip)


def test_full_path_redis(service_factory, iris_zip, redis_broker) -> None:
    """RNTK_BROKER_URL=redis://...: `serve` starts only the API, `worker` runs the job."""
    service = service_factory(**redis_broker)
    service.start_server()
    assert service.client().get("/readyz").json()["mode"] == "broker"
    service.start_worker()
    _full_path(service, iris_zip)


def test_readyz_broker_down(service_factory) -> None:
    """An unreachable broker makes /readyz 503 while /healthz stays 200; a submission is kept."""
    service = service_factory(broker_url="redis://127.0.0.1:1/0")
    service.start_server()
    client = service.client()
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 503 and "broker unreachable" in ready.json()["broker"]
