"""Access: 401 without a key or with a wrong one, 404 across keys, no traversal, no public bind without keys."""

from __future__ import annotations

import subprocess
import sys

from tests.reliability.conftest import record_figures
from tests.service.conftest import REPO, SMALL_CONFIG, free_port, wait_for

TRAVERSALS = ("../record.json", "..%2Frecord.json", "%2E%2E/record.json", "../../jobs", "/etc/passwd",
              "artifacts/../../record.json", "..\\record.json", "gram/../../manifest.json", "%00report.json")


def test_access(service_factory, iris_zip) -> None:
    service = service_factory(api_keys="alice-key-123,bob-key-456")
    service.start_server()
    alice, bob = service.client("alice-key-123"), service.client("bob-key-456")
    nobody, wrong = service.client(), service.client("alice-key-124")
    dataset = alice.post("/datasets", files={"file": ("iris.zip", iris_zip.read_bytes())}).json()["id"]
    job = alice.post("/jobs", json={"dataset_id": dataset, "config": SMALL_CONFIG}).json()
    wait_for(alice, job["id"], {"succeeded"}, timeout=180)
    artifact = alice.get(f"/jobs/{job['id']}/artifacts").json()[0]["name"]

    owned = [("GET", "/jobs"), ("GET", f"/jobs/{job['id']}"), ("GET", f"/jobs/{job['id']}/artifacts"),
             ("GET", f"/jobs/{job['id']}/artifacts/{artifact}"), ("POST", f"/jobs/{job['id']}/cancel"),
             ("DELETE", f"/jobs/{job['id']}"), ("GET", f"/datasets/{dataset}"), ("POST", "/datasets"),
             ("POST", "/jobs"), ("GET", "/metrics")]
    unauthorised = 0
    for client in (nobody, wrong):
        for method, path in owned:
            response = client.request(method, path)
            assert response.status_code == 401, (method, path, response.status_code)
            unauthorised += 1
    hidden = 0
    for method, path in owned[1:7]:
        response = bob.request(method, path)
        assert response.status_code == 404, (method, path, response.status_code)
        hidden += 1
    assert bob.post("/jobs", json={"dataset_id": dataset, "config": SMALL_CONFIG}).status_code == 404
    assert bob.get("/jobs").json() == []
    traversal = 0
    for name in TRAVERSALS:
        response = alice.get(f"/jobs/{job['id']}/artifacts/{name}")
        assert response.status_code == 404, (name, response.status_code)
        assert b"owner" not in response.content and b"root:" not in response.content
        traversal += 1
    assert alice.get(f"/jobs/{job['id']}").status_code == 200  # the probes above changed nothing

    refused = 0
    for host in ("0.0.0.0", "::", "192.0.2.10"):
        env = {k: v for k, v in service.env.items() if k != "RNTK_API_KEYS"}
        result = subprocess.run([sys.executable, "-m", "rntk_launcher", "serve", "--host", host,
                                 "--port", str(free_port()), "--data-dir", str(service.data_dir)],
                                cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 2 and "without API keys" in result.stderr, (host, result.stderr[-500:])
        refused += 1
    record_figures("access", unauthorised_401=unauthorised, cross_key_404=hidden + 1,
                   traversal_404=traversal, public_bind_refused=refused)
