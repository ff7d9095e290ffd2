"""Malformed uploads and requests: a 4xx with a useful detail each, and the server stays up."""

from __future__ import annotations

import io
import zipfile

import httpx

from .conftest import SMALL_CONFIG, wait_for


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


GOOD_CSV = b"a,b,label\n" + b"".join(b"%d,%d,%d\n" % (i, i * 2 % 7, i % 2) for i in range(40))
CASES = {
    "empty": (("empty.csv", b""), 422, "empty"),
    "wrong extension": (("data.txt", GOOD_CSV), 422, "unsupported file type"),
    "no extension": (("data", GOOD_CSV), 422, "unsupported file type"),
    "corrupt zip": (("broken.zip", b"PK\x03\x04 this is not a zip archive"), 422, "zip"),
    "zip path escape": (("evil.zip", _zip({"../evil.txt": b"x", "iris/iris.txt": b"n_patrons1= 1"})), 422, "escapes"),
    "nan csv": (("nan.csv", b"a,b,label\n1,nan,0\n2,3,1\n3,4,0\n4,5,1\n"), 422, "line"),
    "single class": (("one.csv", b"a,b,label\n" + b"1,2,0\n" * 10), 422, "at least 2 classes"),
    "binary garbage csv": (("junk.csv", bytes(range(256)) * 4), 422, "invalid dataset"),
}


def test_malformed_uploads_and_requests(service_factory, iris_zip) -> None:
    service = service_factory(max_upload_mb="0.05", max_queued_jobs="1")
    service.start_server()
    client = service.client()

    for label, ((name, data), status, words) in CASES.items():
        response = client.post("/datasets", files={"file": (name, data)})
        assert response.status_code == status, (label, response.text)
        detail = response.json()["detail"]
        assert words in detail, (label, detail)
        assert str(service.data_dir) not in detail and "/tmp" not in detail, (label, detail)
        assert client.get("/healthz").status_code == 200

    limit = int(0.05 * 1024 * 1024)
    big = GOOD_CSV + b"".join(b"%d,1,0\n" % i for i in range(limit // 6))
    assert len(big) > limit
    response = client.post("/datasets", files={"file": ("big.csv", big)})
    assert response.status_code == 413 and "limit" in response.json()["detail"]

    def chunked():  # no Content-Length: refused while streaming
        yield b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.csv\"\r\n\r\n"
        for start in range(0, len(big), 8192):
            yield big[start:start + 8192]
        yield b"\r\n--B--\r\n"

    try:
        response = client.post("/datasets", content=chunked(),
                               headers={"content-type": "multipart/form-data; boundary=B"})
        assert response.status_code == 413
    except httpx.HTTPError:
        pass  # the server may close the connection before the client finishes sending
    assert not list((service.data_dir / "tmp").iterdir())  # partial uploads removed

    for kwargs, status in (({"content": b"not multipart"}, 415),
                           ({"files": {"other": ("a.csv", GOOD_CSV)}}, 422)):
        response = client.post("/datasets", **kwargs)
        assert response.status_code == status and response.json()["detail"], response.text
    assert client.get("/healthz").status_code == 200

    # config and request errors
    dataset = client.post("/datasets", files={"file": ("iris.zip", iris_zip.read_bytes())}).json()
    for body, status, words in (
        ({"dataset_id": dataset["id"], "config": {"famlies": ["RNN"]}}, 422, "famlies"),
        ({"dataset_id": dataset["id"], "config": {"sigma_u": [-1]}}, 422, "sigma_u"),
        ({"dataset_id": dataset["id"], "artifacts": {"gram": "some"}}, 422, "gram"),
        ({"dataset_id": "0" * 64}, 404, "no dataset"),
        ({"config": {}}, 422, "dataset_id"),
    ):
        response = client.post("/jobs", json=body)
        assert response.status_code == status and words in response.json()["detail"], response.text
    response = client.post("/jobs", content=b"{oops", headers={"content-type": "application/json"})
    assert response.status_code == 422 and "JSON" in response.json()["detail"]
    assert client.get("/jobs", params={"state": "sleeping"}).status_code == 422
    assert client.get("/datasets/nope").status_code == 404

    # a config the API accepts but the dataset cannot run: failed, with a clean error
    response = client.post("/jobs", json={"dataset_id": dataset["id"], "config": {
        "families": ["RNN-P"], "rnnp_orders": [[0, 2, 1]], "sigma_u": [0.5], "sigma_b": [0.1],
        "layers": [1], "C": [1]}})
    assert response.status_code == 202, response.text
    failed = wait_for(client, response.json()["id"], {"failed", "succeeded"}, timeout=120)
    assert failed["state"] == "failed", failed
    assert failed["error"]["type"] == "ValueError" and "T = 4" in failed["error"]["message"]
    assert "Traceback" not in failed["error"]["message"] and "/" not in failed["error"]["message"]
    assert client.get(f"/jobs/{failed['id']}/artifacts").json() == []

    # quota: one queued-or-running job per owner here, then 429; cancel; delete
    first = client.post("/jobs", json={"dataset_id": dataset["id"], "config": SMALL_CONFIG})
    assert first.status_code == 202
    second = client.post("/jobs", json={"dataset_id": dataset["id"], "config": SMALL_CONFIG})
    assert second.status_code == 429 and "limit" in second.json()["detail"]
    job_id = first.json()["id"]
    cancel = client.post(f"/jobs/{job_id}/cancel")
    assert cancel.status_code in (202, 409), cancel.text
    job = wait_for(client, job_id, {"cancelled", "succeeded"}, timeout=120)
    if job["state"] == "cancelled":
        assert client.get(f"/jobs/{job_id}/artifacts").json() == []
    assert client.post(f"/jobs/{job_id}/cancel").status_code == 409
    assert client.delete(f"/jobs/{job_id}").status_code == 204
    assert client.get(f"/jobs/{job_id}").status_code == 404
    assert not (service.data_dir / "jobs" / job_id / "artifacts").exists()
    assert client.get("/healthz").status_code == 200
