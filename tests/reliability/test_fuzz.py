"""Fuzzing: schemathesis against /openapi.json with every check; 0 failures, cases counted."""

from __future__ import annotations

import glob
import json
import subprocess
import sys
from pathlib import Path

from tests.reliability.conftest import FULL, record_figures, scale

#: What OpenAPI cannot say about our POSTs (see the file's comments).
CONFIG = Path(__file__).with_name("schemathesis.toml")


def test_schemathesis_all_checks(service_factory, iris_zip, tmp_path) -> None:
    examples = scale(15, 150)
    key = "fuzz-key-1"
    service = service_factory(api_keys=key, max_upload_mb="1")
    service.start_server()
    client = service.client(key)  # one real dataset, so some submissions reach the config checks
    client.post("/datasets", files={"file": ("iris.zip", iris_zip.read_bytes())}).raise_for_status()
    reports = tmp_path / "schemathesis"
    command = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG), "run",
               f"{service.base}/openapi.json",
               "--checks", "all", "-H", f"Authorization: Bearer {key}", "-n", str(examples),
               "--seed", "20261126", "--generation-database", "none", "--no-color", "--workers", "2",
               "--request-timeout", "30", "--report", "json", "--report-dir", str(reports)]
    # its caches (.schemathesis, .hypothesis) land in the working directory: a temporary one
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    report = json.loads(open(sorted(glob.glob(str(reports / "*.json")))[-1]).read())
    failures = [(f["code"], f["title"], f["operations"]) for f in report["failures"]]
    tail = result.stdout[-6000:]
    assert report["operations"]["tested"] == report["operations"]["selected"] > 0, tail
    assert not failures and not report["errors"] and result.returncode == 0, (failures, report["errors"], tail)
    assert client.get("/healthz").status_code == 200
    record_figures("schemathesis", cases=report["test_cases"]["generated"], failures=0,
                   server_errors=0, operations=report["operations"]["tested"], max_examples=examples,
                   seconds=round(report["running_time"], 1), full=FULL)
