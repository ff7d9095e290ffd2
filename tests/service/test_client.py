"""The `rntk` client (rntk_client/) as a user runs it: subprocesses against a real server."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from .conftest import IRIS, LONGER_CONFIG, REPO, SMALL_CONFIG, free_port

FAILING_CONFIG = {"families": ["RNN-P"], "rnnp_orders": [[0, 2, 1]], "sigma_u": [0.5], "sigma_b": [0.1],
                  "layers": [1], "C": [1]}


def rntk(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """``rntk ARGS`` (as ``python -m rntk_launcher``) with a clean RNTK_* environment plus ``env``; bounded."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("RNTK_")}
    base.update(env or {})
    return subprocess.run([sys.executable, "-m", "rntk_launcher", *args], cwd=REPO, env=base,
                          capture_output=True, text=True, timeout=timeout)


def one_error_line(result: subprocess.CompletedProcess, command: str) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr and len(lines) == 1, result.stderr
    assert lines[0].startswith(f"rntk {command}: "), lines
    return lines[0]


def test_client_end_to_end_with_key_from_env(service_factory, tmp_path: Path) -> None:
    service = service_factory(api_keys="alice-key-123")
    service.start_server()
    env = {"RNTK_SERVER": service.base, "RNTK_API_KEY": "alice-key-123"}
    config = tmp_path / "config.json"
    config.write_text(json.dumps(SMALL_CONFIG))

    # no key: 401, one line with a hint
    denied = rntk("jobs", env={"RNTK_SERVER": service.base})
    assert denied.returncode == 2
    assert "401" in one_error_line(denied, "jobs") and "RNTK_API_KEY" in denied.stderr

    # submit the iris folder (zipped by the client) and wait, with the progress bar on stderr
    started = time.monotonic()
    result = rntk("submit", str(IRIS), "--config", str(config), "--wait", "--timeout", "150",
                  env=env, timeout=180)
    print(f"submit --wait took {time.monotonic() - started:.1f} s")
    assert result.returncode == 0, (result.stdout, result.stderr, service.log_tail())
    job_id = result.stdout.splitlines()[0].strip()
    assert len(job_id) == 32 and f"job {job_id}: succeeded" in result.stdout
    assert "RNN" in result.stdout and "RBF" in result.stdout and "%" in result.stdout
    assert "100%|" in result.stderr and "Traceback" not in result.stderr  # tqdm's final bar
    # one overall bar: its label never repeats the state ("queued queued"), it has an ETA
    assert "queued queued" not in result.stderr and "elapsed, ETA " in result.stderr
    assert "ETA ," not in result.stderr and f"{job_id[:12]} " in result.stderr  # the prefix `status` takes
    assert "estimate: N=150, T=4" in result.stderr

    # the folder zipped by the client and by `python -m zipfile -c` is one dataset
    by_zipfile = tmp_path / "by-zipfile.zip"
    subprocess.run([sys.executable, "-m", "zipfile", "-c", str(by_zipfile), str(IRIS)], check=True)
    uploaded = service.client("alice-key-123").post(
        "/datasets", files={"file": ("iris.zip", by_zipfile.read_bytes())}).json()
    submitted_record = json.loads(rntk("status", job_id, "--json", env=env).stdout)
    assert uploaded["id"] == submitted_record["dataset_id"] and uploaded["name"] == "iris"
    assert submitted_record["dataset_name"] == "iris"
    # the record keeps the settings of the families that ran, and its times agree
    assert "rbf_gamma" in submitted_record["config"] and "mlp_layers" not in submitted_record["config"]
    timings, phases = submitted_record["timings"], submitted_record["phase_seconds"]
    assert abs(timings["load"] - phases["loading"]) < 0.05, (timings, phases)
    stages = ("loading", "kernels", "validation fits", "test folds", "report")
    assert abs(timings["total"] - sum(phases[s] for s in stages)) < 0.2, (timings, phases)

    # a cost estimate without submitting
    estimate = rntk("submit", str(IRIS), "--config", json.dumps(SMALL_CONFIG), "--estimate", env=env)
    assert estimate.returncode == 0 and "SVM fit(s)" in estimate.stdout, estimate.stderr

    # status: text and JSON, exit 0 for a succeeded job
    status = rntk("status", job_id, env=env)
    assert status.returncode == 0 and f"job {job_id}: succeeded" in status.stdout
    assert rntk("status", job_id[:12], env=env).stdout == status.stdout  # any unique prefix
    unknown = rntk("status", "f" * 12, env=env)
    assert unknown.returncode == 2 and "no job of yours" in one_error_line(unknown, "status")
    record = json.loads(rntk("status", job_id, "--json", env=env).stdout)
    assert record["state"] == "succeeded" and set(record["summary"]) == {"RNN", "RBF"}
    for family in ("RNN", "RBF"):
        accuracy = record["summary"][family]["test_accuracy"]
        assert 0.8 < accuracy <= 1 and f"{100 * accuracy:.1f}%" in status.stdout

    # jobs: filter by state, limit, JSON; fixed-width columns
    listed = rntk("jobs", "--state", "succeeded", env=env)
    assert listed.returncode == 0 and job_id in listed.stdout and "RNN=" in listed.stdout
    header, row = listed.stdout.splitlines()[:2]
    assert row[header.index("dataset"):].startswith("iris ")
    assert row[header.index("state"):].startswith("succeeded ")
    assert row[header.index("progress"):].startswith("100% succeeded")
    assert job_id not in rntk("jobs", "--state", "queued", env=env).stdout
    assert [j["id"] for j in json.loads(rntk("jobs", "--limit", "1", "--json", env=env).stdout)] == [job_id]

    # download: every artifact, sub-paths kept, sha256 as listed by the server
    out = tmp_path / "downloaded"
    download = rntk("download", job_id, "--out", str(out), env=env)
    assert download.returncode == 0, download.stderr
    listing = service.client("alice-key-123").get(f"/jobs/{job_id}/artifacts").json()
    assert any(entry["name"].startswith("gram/") for entry in listing)
    for entry in listing:
        path = out / entry["name"]
        assert path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"], entry
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == sorted(entry["name"] for entry in listing)  # no .part files left

    # a reader that goes away (`rntk jobs | head`) ends the output quietly
    reader = subprocess.Popen([sys.executable, "-m", "rntk_launcher", "jobs", "--json"], cwd=REPO,
                              env={**{k: v for k, v in os.environ.items() if not k.startswith("RNTK_")}, **env},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    reader.stdout.close()  # before the client writes a byte
    _, errors = reader.communicate(timeout=60)
    assert reader.returncode == 0 and b"BrokenPipe" not in errors and b"Traceback" not in errors, errors

    # compare: families side by side, the std over folds from each report
    compared = rntk("compare", job_id[:12], job_id, env=env)
    assert compared.returncode == 0, compared.stderr
    rnn_row = next(line for line in compared.stdout.splitlines() if line.startswith("RNN "))
    accuracy = f"{100 * record['summary']['RNN']['test_accuracy']:.1f}%"
    assert rnn_row.count(accuracy) == 2 and "±" in rnn_row
    assert "configs: the same" in compared.stdout
    table = json.loads(rntk("compare", job_id, "--json", env=env).stdout)
    assert set(table) == {"RNN", "RBF"} and table["RBF"][job_id]["std"] >= 0

    # cancelling a finished job is a client error (409), one line
    late = rntk("cancel", job_id, env=env)
    assert late.returncode == 2 and "409" in one_error_line(late, "cancel")

    # a job that fails: --wait exits 1 and says why in one line
    failing = rntk("submit", str(IRIS), "--config", json.dumps(FAILING_CONFIG), "--wait", "--no-progress",
                   "--timeout", "150", env=env, timeout=180)
    assert failing.returncode == 1, (failing.stdout, failing.stderr)
    assert "failed: ValueError" in one_error_line(failing, "submit")
    failed_id = failing.stdout.splitlines()[0].strip()
    assert rntk("status", failed_id, env=env).returncode == 1
    nothing = rntk("download", failed_id, "--out", str(tmp_path / "none"), env=env)
    assert nothing.returncode == 1 and "no artifacts" in one_error_line(nothing, "download")
    # compare names the config fields in which two jobs differ, each job's value
    differing = rntk("compare", job_id, failed_id, env=env)
    assert differing.returncode == 0 and "configs: they differ in" in differing.stdout, differing.stdout
    rows = {line.split(":")[0].strip(): line for line in differing.stdout.split("configs:")[1].splitlines()[1:]}
    assert {"families", "C", "rnnp_orders"} <= set(rows) and "seed" not in rows, rows
    assert '=["RNN-P"]' in rows["families"] and "=-" in rows["rnnp_orders"], rows  # "-": not in that config

    # cancel: a queued or running job ends cancelled; status then exits 1
    submitted = rntk("submit", str(IRIS), "--config", json.dumps(LONGER_CONFIG), env=env)
    assert submitted.returncode == 0, submitted.stderr
    long_id = submitted.stdout.strip()
    cancel = rntk("cancel", long_id, env=env)
    assert cancel.returncode == 0 and long_id in cancel.stdout, cancel.stderr
    deadline = time.monotonic() + 90
    while (state := json.loads(rntk("status", long_id, "--json", env=env).stdout)["state"]) != "cancelled":
        assert state in ("queued", "running") and time.monotonic() < deadline, state
        time.sleep(0.5)
    stopped = rntk("status", long_id, env=env)
    assert stopped.returncode == 1 and "100%" not in stopped.stdout  # where it stopped, not 100%

    # --api-key beats the environment; another key sees none of alice's jobs
    wrong = rntk("status", job_id, "--api-key", "nope", env=env)
    assert wrong.returncode == 2 and "401" in one_error_line(wrong, "status")
    assert rntk("status", "0" * 32, env=env).returncode == 2


def test_client_errors_without_a_server(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    for args, env in ((["status", "0" * 32, "--server", url], {}),
                      (["jobs"], {"RNTK_SERVER": url}),
                      (["submit", str(IRIS), "--wait"], {"RNTK_SERVER": url}),
                      (["download", "0" * 32], {"RNTK_SERVER": url})):
        result = rntk(*args, env=env, timeout=30)
        assert result.returncode == 2, (args, result.stderr)
        line = one_error_line(result, args[0])
        assert f"cannot reach {url}" in line and "refused" in line, line

    # usage errors: exit 2, the message on one line after argparse's usage
    missing = rntk("submit", str(tmp_path / "nope.csv"))
    assert missing.returncode == 2 and "no such file" in one_error_line(missing, "submit")
    bad_config = rntk("submit", str(IRIS), "--config", "{oops")
    assert bad_config.returncode == 2 and "not valid JSON" in one_error_line(bad_config, "submit")
    not_object = rntk("submit", str(IRIS), "--config", "[1]")
    assert not_object.returncode == 2 and "must be a JSON object" in one_error_line(not_object, "submit")
    no_file = rntk("submit", str(IRIS), "--config", "configs.json")
    assert no_file.returncode == 2 and "no such file, and not inline JSON" in one_error_line(no_file, "submit")
    example = rntk("submit", str(IRIS), "--config", "examples/config.json", "--server", url)
    assert "cannot reach" in one_error_line(example, "submit")  # the example config was read
    no_args = rntk("status")
    assert no_args.returncode == 2 and "Traceback" not in no_args.stderr
    assert "the following arguments are required: JOB" in no_args.stderr.splitlines()[-1]

    helped = rntk("--help")
    assert helped.returncode == 0
    for command in ("submit", "status", "download", "cancel", "jobs", "compare", "serve", "worker"):
        assert f"  {command} " in helped.stdout


def test_progress_line_and_fixed_columns() -> None:
    from rntk_client.render import cell, overall_fraction, progress_text

    queued = {"state": "queued", "progress": {"stage": "queued", "done": 0, "total": 1}}
    assert progress_text(queued) == "queued" and overall_fraction(queued) == 0.0
    running = {"state": "running",
               "progress": {"stage": "validation fits", "done": 12, "total": 345, "overall": 0.42}}
    assert progress_text(running) == "validation fits 12/345" and overall_fraction(running) == 0.42
    done = {"state": "succeeded", "progress": {"stage": "done", "done": 1, "total": 1, "overall": 0.97}}
    assert progress_text(done) == "succeeded" and overall_fraction(done) == 1.0
    cancelled = {"state": "cancelled", "progress": {"stage": "kernels", "done": 1, "total": 8, "overall": 0.19}}
    assert progress_text(cancelled) == "cancelled" and overall_fraction(cancelled) == 0.19
    assert [len(cell(text, 24)) for text in ("abc", "x" * 24, "y" * 40)] == [24, 24, 24]


def test_config_differences_name_each_differing_field_once_in_order() -> None:
    from rntk_core.evaluation.report.compare import config_differences

    a = {"families": ["RNN"], "C": [1, 100], "seed": 0}
    b = {"families": ["RNN"], "C": [1], "seed": 0, "landmarks": 64}
    assert config_differences([a, b, None]) == [
        ("families", ['["RNN"]', '["RNN"]', "-"]), ("C", ["[1,100]", "[1]", "-"]), ("seed", ["0", "0", "-"]),
        ("landmarks", ["-", "64", "-"])]
    assert config_differences([a, dict(a)]) == []
