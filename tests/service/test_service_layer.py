"""One service layer under the routes (app/service.py), typed records, and no import cycles.

The JSON API and the page form create jobs through the same functions, so a config that one
refuses the other refuses the same way: a 5,000-deep config was a 500 at /page/submit (plain
``json.loads``) and a 422 at POST /jobs.
"""

from __future__ import annotations

import ast
import html
import json
import re
import subprocess
import sys
from pathlib import Path

from rntk_core.evaluation.config import EvaluationConfig, used_settings
from tests.helpers import REPO
from worker.jobs import DatasetMeta, JobRecord, Store

from .conftest import SMALL_CONFIG

DEEP_LIST = "[" * 5000 + "]" * 5000
DEEP_OBJECT = '{"a": ' * 5000 + "1" + "}" * 5000


def _submit_action(client) -> str:
    """The page form's action, with its CSRF token (``/page/submit?csrf=...``)."""
    return html.unescape(re.search(r'action="(/page/submit[^"]*)"', client.get("/").text).group(1))


def _jobs_on_disk(data_dir: Path) -> list[str]:
    jobs = data_dir / "jobs"
    return sorted(path.name for path in jobs.iterdir()) if jobs.is_dir() else []


def test_deep_config_is_the_same_422_at_the_api_and_the_page(service_factory, iris_zip) -> None:
    service = service_factory()
    service.start_server()
    client = service.client()
    upload = client.post("/datasets", files={"file": ("iris.zip", iris_zip.read_bytes())})
    assert upload.status_code == 201, upload.text
    dataset_id = upload.json()["id"]

    for deep in (DEEP_LIST, DEEP_OBJECT):
        api = client.post("/jobs", content='{"dataset_id": "%s", "config": %s}' % (dataset_id, deep),
                          headers={"content-type": "application/json"})
        assert api.status_code == 422, api.text[:300]
        assert api.json()["detail"] == "the body is nested too deeply (at most 32 levels)"

        form = client.post("/jobs", files={"file": ("iris.zip", iris_zip.read_bytes())}, data={"config": deep})
        assert form.status_code == 422, form.text[:300]
        assert form.json()["detail"] == "form field 'config' is nested too deeply (at most 32 levels)"

        page = client.post(_submit_action(client), files={"file": ("iris.zip", iris_zip.read_bytes())},
                           data={"config": deep, "gram": "selected"})
        assert page.status_code == 422, page.text[:300]  # was a 500
        assert "the config is nested too deeply (at most 32 levels)" in page.text
        assert 'id="form-error"' in page.text

    assert client.get("/jobs").json() == []
    assert _jobs_on_disk(service.data_dir) == []
    assert client.get("/healthz").status_code == 200


def test_the_api_and_the_page_make_the_same_job(service_factory, iris_zip) -> None:
    """No worker runs: both jobs stay queued, with the same config, artifacts and estimate."""
    service = service_factory()
    service.start_server()
    client = service.client()
    api = client.post("/jobs", files={"file": ("iris.zip", iris_zip.read_bytes())},
                      data={"config": json.dumps(SMALL_CONFIG), "artifacts": '{"gram": "none"}'})
    assert api.status_code == 202, api.text
    page = client.post(_submit_action(client), files={"file": ("iris.zip", iris_zip.read_bytes())},
                       data={"config": json.dumps(SMALL_CONFIG), "gram": "none"})
    assert page.status_code == 303, page.text[:300]
    page_id = page.headers["location"].split("/")[2]
    assert page.headers["location"] == f"/jobs/{page_id}/page"
    from_api, from_page = api.json(), client.get(f"/jobs/{page_id}").json()
    for field in ("dataset_id", "dataset_name", "config", "artifacts", "cost", "state"):
        assert from_api[field] == from_page[field], field
    assert from_api["config"] == used_settings(EvaluationConfig.model_validate(SMALL_CONFIG))
    assert from_api["artifacts"] == {"gram": "none"}
    assert set(from_api["cost"]) >= {"seconds", "stage_seconds", "text", "kernels", "fits"}

    # an invalid config: the same 422 message from both, and no third job
    bad = json.dumps({"families": ["NOPE"]})
    api = client.post("/jobs", files={"file": ("iris.zip", iris_zip.read_bytes())}, data={"config": bad})
    page = client.post(_submit_action(client), files={"file": ("iris.zip", iris_zip.read_bytes())},
                       data={"config": bad})
    assert api.status_code == page.status_code == 422
    assert api.json()["detail"].startswith("invalid job request: config.families")
    assert "NOPE" in page.text
    assert len(client.get("/jobs").json()) == 2


# ------------------------------------------------------------------------------ records


#: A record as the service wrote it before the typed parts (config as used settings).
OLD_RECORD = {
    "id": "0000000000000001" + "a" * 16, "owner": "anonymous", "dataset_id": "b" * 64, "dataset_name": "iris",
    "config": used_settings(EvaluationConfig(families=["RNN", "RBF"], C=[1, 100], layers=[1])),
    "artifacts": {"gram": "selected"}, "state": "succeeded",
    "progress": {"stage": "done", "done": 1, "total": 1, "overall": 1.0, "eta_s": 0.0},
    "created_at": 1700000000.0, "started_at": 1700000001.0, "finished_at": 1700000009.0,
    "summary": {"RNN": {"test_accuracy": 0.96, "chosen": [{"family": "RNN", "kind": "ntk", "C": 1.0}]},
                "RBF": {"test_accuracy": None, "chosen": []}},
    "attempts": 1,
    # an estimate from before stage_seconds and text existed
    "cost": {"n_samples": 150, "steps": 4, "grids": 1, "kernels": 4, "baseline_kernels": 8,
             "validation_fits": 16, "test_fits": 8, "kernel_seconds": 0.01, "validation_seconds": 0.02,
             "test_seconds": 0.01, "seconds": 5.04},
    "timings": {"load": 1.5, "kernels": 2.0, "validation": 1.0, "test": 0.5, "total": 5.2},
    "message_id": "c" * 32, "a_newer_field": {"kept": True},
}


def test_an_old_record_loads_typed_and_is_written_back_unchanged(tmp_path: Path) -> None:
    record = JobRecord.model_validate(OLD_RECORD)
    assert isinstance(record.config, EvaluationConfig) and record.config.families == ["RNN", "RBF"]
    assert record.artifacts.gram == "selected"
    assert record.summary["RNN"].test_accuracy == 0.96 and record.summary["RBF"].chosen == []
    assert record.cost.seconds == 5.04 and record.cost.stage_seconds == {} and record.cost.text is None
    assert record.timings.total == 5.2 and record.timings.report is None
    written = record.model_dump(mode="json")
    for field, value in OLD_RECORD.items():
        assert written[field] == value, field

    store = Store(tmp_path)
    (store.jobs_root / OLD_RECORD["id"]).mkdir()
    (store.jobs_root / OLD_RECORD["id"] / "record.json").write_text(json.dumps(OLD_RECORD))
    assert store.read_job(OLD_RECORD["id"]).model_dump(mode="json")["config"] == OLD_RECORD["config"]

    from app.models import JobView

    view = JobView.from_record(record).model_dump(mode="json")
    for field in ("config", "artifacts", "summary", "cost", "timings"):
        assert view[field] == OLD_RECORD[field], field


def test_a_record_older_than_a_bound_still_loads() -> None:
    """C = 1e13 was accepted before the upper bounds; the record loads, the worker re-checks."""
    record = JobRecord.model_validate({**OLD_RECORD, "config": {"families": ["RNN"], "C": [1e13]}})
    assert record.config.C == [1e13]
    from rntk_core.evaluation.config import ConfigError, parse_config

    try:
        parse_config(record.config.model_dump())
    except ConfigError as exc:
        assert "C[0]" in str(exc)
    else:
        raise AssertionError("the worker's check must refuse the config")


def test_dataset_meta_is_typed_and_keeps_its_file(tmp_path: Path) -> None:
    written = {"id": "d" * 64, "sha256": "e" * 64, "name": "iris", "format": "uci", "n_samples": 150,
               "n_steps": 4, "n_features": 4, "n_classes": 3, "filename": "iris.zip", "file": "iris.zip",
               "size": 1234, "created_at": 1700000000.0, "from_a_newer_writer": 1}
    folder = Store(tmp_path).datasets_root / "anonymous" / written["id"]
    folder.mkdir(parents=True)
    (folder / "meta.json").write_text(json.dumps(written))
    store = Store(tmp_path)
    meta = store.dataset_meta("anonymous", written["id"])
    assert isinstance(meta, DatasetMeta) and meta.n_samples == 150 and meta.name == "iris"
    assert meta.model_dump(mode="json") == written
    assert store.dataset_file("anonymous", written["id"]) == folder / "iris.zip"
    older = {key: written[key] for key in ("id", "format", "n_samples", "n_steps", "file")}
    assert DatasetMeta.model_validate(older).model_dump(mode="json") == older  # nothing added


# ------------------------------------------------------------------------------ layout


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_no_import_cycles_in_app_and_worker() -> None:
    """Every import, lazy ones included, among the modules of app/ and worker/."""
    modules = {}
    for package in ("app", "worker"):
        for path in (REPO / package).rglob("*.py"):
            name = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
            modules[name] = path
    edges = {name: {other for other in _imports(path) if other in modules and other != name}
             for name, path in modules.items()}
    for start in modules:  # a path from a module back to itself is a cycle
        seen, todo = set(), list(edges[start])
        while todo:
            current = todo.pop()
            assert current != start, f"import cycle through {start}"
            if current not in seen:
                seen.add(current)
                todo.extend(edges[current])
    assert not [(a, b) for a in edges for b in edges[a] if a.startswith("worker") and b.startswith("app")]
    pages = _imports(REPO / "app" / "routes" / "pages.py")
    assert not {name for name in pages if name.startswith("app.routes")}, "pages go through app.service"


def test_device_memory_reader_imports_no_jax() -> None:
    code = "import sys, worker.queue, rntk_core.devices; print('jax' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
    import worker.queue
    from rntk_core import devices

    assert worker.queue.device_memory is devices.device_memory  # one reader, the engine's


def test_a_405_names_every_method_of_the_path(service_factory) -> None:
    """Routes live in routers with prefixes; the Allow header still lists what the path serves
    (it was empty once FastAPI nested included routers)."""
    service = service_factory()
    service.start_server()
    client = service.client()
    cases = {("PUT", "/jobs"): "GET, POST", ("PUT", "/jobs/abc"): "DELETE, GET",
             ("DELETE", "/jobs/abc/artifacts/report.json"): "GET"}
    for (method, path), allowed in cases.items():
        response = client.request(method, path)
        assert response.status_code == 405, (method, path, response.text)
        assert response.headers["allow"] == allowed, (method, path, response.headers)


def test_every_response_says_nosniff_and_a_referrer_policy(service_factory, iris_zip) -> None:
    service = service_factory()
    service.start_server()
    client = service.client()
    responses = [client.get("/healthz"), client.get("/jobs"), client.get("/jobs/nope"), client.put("/jobs"),
                 client.post("/datasets", files={"file": ("iris.zip", iris_zip.read_bytes())}), client.get("/")]
    for response in responses:
        assert response.headers.get("x-content-type-options") == "nosniff", (response.url, response.headers)
        assert response.headers.get("referrer-policy") == "same-origin", (response.url, response.headers)


def test_the_embedded_broker_polls_at_its_setting(tmp_path) -> None:
    """kombu's filesystem channel looks for messages every ``embedded_poll_s`` (its own
    default, 1 s, put about half a second of waiting on every message of a small job)."""
    from worker.celery_app import ensure_broker_dirs, make_celery
    from worker.settings import Settings

    settings = Settings(data_dir=tmp_path, broker_url=None, embedded_poll_s=0.25)
    ensure_broker_dirs(settings)
    app = make_celery(settings)
    with app.connection_for_write() as connection:
        assert connection.transport.polling_interval == 0.25
    assert Settings(data_dir=tmp_path, broker_url=None).embedded_poll_s == 0.1


def test_the_submit_estimate_knows_a_stored_datasets_protocol(tmp_path) -> None:
    """An uploaded TRAIN/TEST archive is priced with its 1 test fold and k-fold CV selection,
    a UCI folder with 4 folds and one holdout (the defaults), and ``protocol: stratified``
    ignores predefined splits, as the run does."""
    import shutil
    import zipfile

    from app.service import estimate_job, ingest, parse_job_request
    from rntk_core.evaluation.config import parse_config
    from rntk_core.evaluation.cost import estimate_cost
    from tests.helpers import TS_DATA, UCI
    from worker.jobs import Store
    from worker.settings import Settings

    settings, store = Settings(data_dir=tmp_path / "data"), Store(tmp_path / "data")
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    archive = uploads / "GunPoint.zip"
    shutil.copy(TS_DATA / "GunPoint.zip", archive)
    iris = uploads / "iris.zip"
    with zipfile.ZipFile(iris, "w") as packed:
        for path in sorted((UCI / "iris").iterdir()):
            packed.write(path, f"iris/{path.name}")
    config = {"families": ["RNN", "RBF"], "sigma_u": [0.5], "sigma_b": [0.1], "layers": [1], "C": [1, 100]}
    for path, folds, selection in ((archive, 1, "cv"), (iris, 4, "holdout")):
        meta = ingest(store, settings, "anonymous", path, sha256="0" * 64, size=path.stat().st_size)
        assert (meta.test_folds, meta.selection) == (folds, selection)
        for protocol, expected_folds in (("auto", folds), ("stratified", 4)):
            job = parse_job_request({"dataset_id": meta.id, "config": {**config, "protocol": protocol}})
            cost = estimate_job(store, "anonymous", job)
            assert cost.test_fits == expected_folds * 2, (path.name, protocol)
            pairs = 1 if protocol == "stratified" or selection == "holdout" else parse_config(config).cv_folds
            uci = estimate_cost(meta.n_samples, meta.n_steps, parse_config(config))
            assert cost.validation_fits == pairs * uci.validation_fits
