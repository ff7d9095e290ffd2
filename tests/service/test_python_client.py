"""The Python client (``rntk_client.Client``) against a real embedded ``rntk serve``, and its
job-id prefixes and progress text against a stub server."""

from __future__ import annotations

import hashlib
import io
import json

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_iris

from rntk_client import Client, ClientError, Job
from rntk_client.render import describe, overall_fraction, short_ids
from tests.helpers import assert_close

from .conftest import SMALL_CONFIG


def test_client_drives_a_real_service(service_factory, tmp_path) -> None:
    service = service_factory(api_keys="alice-key-123")
    service.start_server()
    X, y = load_iris(return_X_y=True)
    names = np.array(["setosa", "versicolor", "virginica"])[y]  # string labels go through the .npz

    with Client(service.base, "alice-key-123") as client:
        job = client.submit((X, names), SMALL_CONFIG, name="iris")
        assert isinstance(job, Job) and len(job.id) == 32 and job.record["state"] in ("queued", "running")
        bar = io.StringIO()
        assert job.wait(150, interval=0.2, file=bar) is job
        assert job.status == "succeeded", (job.record, service.log_tail())
        drawn = bar.getvalue()
        assert "100%|" in drawn and "elapsed, ETA " in drawn and "ETA ," not in drawn, drawn[-2000:]
        assert job.id[:12] in drawn

        report = job.report  # the typed model, validated
        assert type(report).__name__ == "Report" and report.dataset.name == "iris"
        assert report.dataset.n_samples == 150 and report.dataset.classes == ["setosa", "versicolor", "virginica"]
        assert set(report.families) == {"RNN", "RBF"}
        assert all(0.8 < report.families[f].test_accuracy <= 1 for f in ("RNN", "RBF"))

        # the Gram matrix selected for RNN, as rntk_core.gram makes it from the report's params
        gram = job.gram("RNN")
        entry = next(e for e in report.grams if "RNN" in e.families)
        assert gram.shape == (150, 150) and np.array_equal(gram, job.gram(entry.file))
        import rntk_core

        assert_close(gram, rntk_core.gram(X / entry.x_scale, **entry.params), 1e-5, "RNN Gram")

        written = job.download(tmp_path / "out")
        listing = job.artifacts()
        assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in written) == sorted(e["name"] for e in listing)
        for entry in listing:
            path = tmp_path / "out" / entry["name"]
            assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
        assert json.loads((tmp_path / "out" / "report.json").read_text())["dataset"]["name"] == "iris"

        # a prefix names the job; an unknown one is one clear error
        assert client.job(job.id[:12]).id == job.id and client.resolve(job.id[:5]) == job.id
        with pytest.raises(ClientError, match="no job of yours"):
            client.job("ffff")
        assert [j.id for j in client.jobs(state="succeeded")] == [job.id]
        with pytest.raises(ClientError) as finished:
            job.cancel()
        assert finished.value.status_code == 409

    with Client(service.base, "bob-key") as other:  # an unknown key
        with pytest.raises(ClientError) as denied:
            other.job(job.id)
        assert denied.value.status_code == 401


def _stub(ids: list[str]) -> Client:
    """A client whose server lists ``ids`` (pages of at most ``limit``) and answers every job."""
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/jobs":
            limit, offset = int(request.url.params["limit"]), int(request.url.params["offset"])
            return httpx.Response(200, json=[{"id": job_id} for job_id in ids[offset:offset + limit]])
        job_id = request.url.path.rsplit("/", 1)[-1]
        if job_id in ids:
            return httpx.Response(200, json={"id": job_id, "state": "succeeded"})
        return httpx.Response(404, json={"detail": f"no job {job_id!r}"})

    client = Client("http://stub")
    client.api.http = httpx.Client(base_url="http://stub", transport=httpx.MockTransport(answer))
    return client


def test_job_prefixes_resolve_like_git(monkeypatch) -> None:
    import rntk_client.client as module

    monkeypatch.setattr(module, "_PAGE", 2)  # three pages
    ids = ["187a0b1c" + "0" * 24, "187a0b1c" + "1" * 24, "187a0b2d" + "2" * 24, "19" + "3" * 30, "2" * 32]
    with _stub(ids) as client:
        assert client.job("187a0b1c1").id == ids[1]
        assert client.resolve("187a0b2") == ids[2] and client.resolve("2") == ids[4]
        assert client.resolve(ids[0]) == ids[0]  # a full id is used as is
        with pytest.raises(ClientError, match=r"'187a0b1c' is ambiguous: 2 jobs match .*give more of the id"):
            client.resolve("187a0b1c")
        with pytest.raises(ClientError, match="no job of yours has an id starting with '3'"):
            client.resolve("3")
        with pytest.raises(ClientError, match="is not a job id"):
            client.resolve("../x")
    # shown ids are at least 12 characters and tell the jobs apart
    shown = short_ids([ids[0], ids[1], ids[0]])
    assert len(set(shown.values())) == 2 and all(len(v) == 12 for v in shown.values())


def test_cancelled_job_shows_where_it_stopped() -> None:
    cancelled = {"id": "a" * 32, "state": "cancelled", "progress": {
        "stage": "kernels", "done": 3, "total": 8, "overall": 0.19, "eta_s": 40}}
    assert overall_fraction(cancelled) == 0.19
    line = describe(cancelled).splitlines()[1]
    assert line.split() == ["progress", "19%", "cancelled", "(stopped", "in", "kernels", "3/8)"], line
    succeeded = {"id": "b" * 32, "state": "succeeded", "progress": {"stage": "done", "overall": 0.97}}
    assert overall_fraction(succeeded) == 1.0 and "100% succeeded" in describe(succeeded)


def test_in_memory_arrays_are_packed_as_the_services_npz(tmp_path) -> None:
    from rntk_client.data import payload
    from rntk_core.evaluation.datasets.common import DatasetLimits
    from rntk_core.evaluation.datasets.npz import load_npz

    X = np.random.default_rng(0).normal(size=(12, 5, 2))
    lengths = np.array([5, 4] * 6)
    name, handle, media = payload((X, ["a", "b", "c"] * 4, lengths), name="toy")
    assert name == "toy.npz" and media == "application/octet-stream"
    (tmp_path / name).write_bytes(handle.read())
    dataset = load_npz(tmp_path / name, None, 1, DatasetLimits())
    assert dataset.X.shape == (12, 5, 2) and list(dataset.lengths) == list(lengths)
    with pytest.raises(ClientError, match="need y"):
        payload({"X": X})
    with pytest.raises(ClientError, match="Python objects"):
        payload((np.array([object()] * 12), np.zeros(12)))
