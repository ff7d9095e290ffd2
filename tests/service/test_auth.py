"""API keys: 401 without one, 404 across owners, open health checks, loopback-only without keys."""

from __future__ import annotations

import subprocess
import sys

from .conftest import REPO, SMALL_CONFIG, free_port


def test_auth_isolation_between_two_keys(service_factory, iris_zip) -> None:
    service = service_factory(api_keys="alice-key-123, bob-key-456")
    service.start_server()
    anonymous, alice, bob = service.client(), service.client("alice-key-123"), service.client("bob-key-456")
    wrong = service.client("alice-key-12")

    assert anonymous.get("/healthz").status_code == 200
    assert anonymous.get("/readyz").status_code == 200
    for client in (anonymous, wrong):
        for method, path in (("GET", "/jobs"), ("GET", "/metrics"), ("POST", "/datasets"),
                             ("GET", "/datasets/" + "0" * 64), ("POST", "/jobs")):
            response = client.request(method, path)
            assert response.status_code == 401, (method, path, response.text)
            assert response.json()["detail"] and response.headers["www-authenticate"] == "Bearer"

    # one-shot multipart submit: file + config
    response = alice.post("/jobs", files={"file": ("iris.zip", iris_zip.read_bytes())},
                          data={"config": __import__("json").dumps(SMALL_CONFIG),
                                "artifacts": '{"gram": "none"}'})
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["artifacts"] == {"gram": "none"}
    job_id, dataset_id = job["id"], job["dataset_id"]

    assert alice.get(f"/datasets/{dataset_id}").status_code == 200
    assert alice.get(f"/jobs/{job_id}").status_code == 200
    for method, path in (("GET", f"/datasets/{dataset_id}"), ("GET", f"/jobs/{job_id}"),
                         ("POST", f"/jobs/{job_id}/cancel"), ("DELETE", f"/jobs/{job_id}"),
                         ("GET", f"/jobs/{job_id}/artifacts"),
                         ("GET", f"/jobs/{job_id}/artifacts/report.json")):
        response = bob.request(method, path)
        assert response.status_code == 404, (method, path, response.text)
    assert bob.get("/jobs").json() == []
    refused = bob.post("/jobs", json={"dataset_id": dataset_id, "config": SMALL_CONFIG})
    assert refused.status_code == 404

    # bob's own copy of the same file: same content id, his own scope
    mine = bob.post("/datasets", files={"file": ("iris.zip", iris_zip.read_bytes())})
    assert mine.status_code == 201 and mine.json()["id"] == dataset_id
    assert alice.get(f"/jobs/{job_id}").status_code == 200  # untouched by bob

    assert alice.delete(f"/jobs/{job_id}").status_code == 204
    assert alice.get(f"/jobs/{job_id}").status_code == 404


def test_serve_refuses_public_host_without_keys(tmp_path) -> None:
    env = {"PATH": "/usr/bin:/bin", "RNTK_DATA_DIR": str(tmp_path / "data")}
    result = subprocess.run([sys.executable, "-m", "rntk_launcher", "serve", "--host", "0.0.0.0",
                             "--port", str(free_port())], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    assert "refusing" in result.stderr and "RNTK_API_KEYS" in result.stderr
