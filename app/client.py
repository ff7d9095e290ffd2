"""``rntk submit | status | download | cancel | jobs``: a thin httpx client of the HTTP API.

The server comes from ``--server`` or ``RNTK_SERVER`` (default http://127.0.0.1:8000), the
key from ``--api-key`` or ``RNTK_API_KEY`` (sent as ``Authorization: Bearer``).

Exit codes: 0 when the command worked (for ``submit --wait`` and ``status``: the job
succeeded, or is still queued/running for ``status``); 1 when the job failed or was
cancelled; 2 for usage errors, HTTP errors and an unreachable server. Errors are one line
on stderr (``rntk submit: error: 422 ...``), never a traceback.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import tempfile
import time
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Sequence

import httpx

__all__ = ["COMMANDS", "run", "submit_main", "status_main", "download_main", "cancel_main", "jobs_main",
           "compare_main", "progress_text", "overall_fraction"]

DEFAULT_SERVER = "http://127.0.0.1:8000"
TERMINAL = ("succeeded", "failed", "cancelled")
EXIT_OK, EXIT_JOB, EXIT_ERROR = 0, 1, 2


class ClientError(Exception):
    """A failure reported as one line and exit code 2 (or ``code``)."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line plus usage, exit 2 (argparse's own convention)
        self.print_usage(sys.stderr)
        raise ClientError(message)


# ---------------------------------------------------------------- HTTP


def _server_url(value: str | None) -> str:
    url = (value or os.environ.get("RNTK_SERVER") or DEFAULT_SERVER).strip().rstrip("/")
    if "://" not in url:
        url = "http://" + url
    return url


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", text.splitlines()[0] if text else text)
    return text[:1].lower() + text[1:]


class Api:
    """The server with the caller's key; every failure becomes a :class:`ClientError`."""

    def __init__(self, server: str | None, key: str | None, timeout: float = 60) -> None:
        self.base = _server_url(server)
        key = key if key is not None else os.environ.get("RNTK_API_KEY")
        headers = {"User-Agent": "rntk-client"}
        if key:
            headers["Authorization"] = f"Bearer {key.strip()}"
        self.has_key = bool(key)
        self.http = httpx.Client(base_url=self.base, headers=headers,
                                 timeout=httpx.Timeout(timeout, connect=10))

    def close(self) -> None:
        self.http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.ConnectError as exc:
            raise ClientError(f"cannot reach {self.base}: {_reason(exc)}") from None
        except httpx.TimeoutException as exc:
            raise ClientError(f"{self.base} did not answer in time ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:
            raise ClientError(f"{method} {self.base}{path} failed: {_reason(exc)}") from None
        self.check(response)
        return response

    def check(self, response: httpx.Response) -> None:
        if response.status_code < 400:
            return
        try:
            detail = response.json().get("detail")
        except (ValueError, AttributeError):
            detail = None
        if not isinstance(detail, str):
            detail = json.dumps(detail) if detail is not None else (response.text.strip()[:200] or response.reason_phrase)
        detail = " ".join(detail.split())
        if response.status_code == 401:
            detail += " (pass --api-key or set RNTK_API_KEY)" if not self.has_key else ""
        raise ClientError(f"{response.status_code} {detail}")

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise ClientError(f"{self.base}{path} did not answer with JSON; is it an rntk server?") from None


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server", metavar="URL",
                        help=f"the rntk server (default: $RNTK_SERVER or {DEFAULT_SERVER})")
    parser.add_argument("--api-key", metavar="KEY", help="the API key (default: $RNTK_API_KEY)")


# ---------------------------------------------------------------- output


def _percent(value: Any) -> str:
    return f"{100 * value:.1f}%" if isinstance(value, (int, float)) else "n/a"


def _summary_lines(job: dict) -> list[str]:
    summary = job.get("summary") or {}
    if not summary:
        return []
    width = max([len(str(name)) for name in summary] + [len("family")])
    lines = [f"  {'family':{width}s}  test accuracy"]
    ranked = sorted(summary.items(), key=lambda item: -((item[1] or {}).get("test_accuracy") or -1))
    for family, result in ranked:
        lines.append(f"  {family:{width}s}  {_percent((result or {}).get('test_accuracy'))}")
    return lines


def _describe(job: dict) -> str:
    progress = job.get("progress") or {}
    overall = f"{100 * overall_fraction(job):.0f}%"
    eta = progress.get("eta_s")
    lines = [f"job {job['id']}: {job.get('state')}",
             f"  progress  {overall} {progress_text(job)}"
             + (f", ETA {_eta(eta)}" if eta is not None and job.get("state") not in TERMINAL else ""),
             f"  dataset   {job.get('dataset_name') or ''} ({str(job.get('dataset_id', ''))[:16]})",
             f"  created   {job.get('created_at') or ''}"]
    for key in ("started_at", "finished_at"):
        if job.get(key):
            lines.append(f"  {key.split('_')[0]:9s} {job[key]}")
    lines.append(f"  attempts  {job.get('attempts', 0)}")
    if job.get("cancel_requested") and job.get("state") not in TERMINAL:
        lines.append("  cancel requested")
    error = job.get("error")
    if error:
        lines.append(f"  error     {error.get('type', '')}: {error.get('message', '')}")
    lines.extend(_summary_lines(job))
    return "\n".join(lines)


def _job_exit(job: dict) -> int:
    return EXIT_JOB if job.get("state") in ("failed", "cancelled") else EXIT_OK


def _job_failure_line(job: dict) -> str | None:
    if job.get("state") == "failed":
        error = job.get("error") or {}
        return f"job {job['id']} failed: {error.get('type', 'error')}: {error.get('message', '')}"
    if job.get("state") == "cancelled":
        return f"job {job['id']} was cancelled"
    return None


# ---------------------------------------------------------------- submit


def _payload(data: Path) -> tuple[str, Any, str]:
    """(filename, file object, media type) to upload: a file as is, a folder zipped."""
    if data.is_dir():
        files = sorted(p for p in data.rglob("*") if p.is_file() and not p.name.startswith("."))
        if not files:
            raise ClientError(f"{data} is an empty folder")
        spool = tempfile.SpooledTemporaryFile(max_size=64 << 20)
        with zipfile.ZipFile(spool, "w", zipfile.ZIP_DEFLATED) as archive:
            for file in files:
                archive.write(file, str(PurePosixPath(data.name, *file.relative_to(data).parts)))
        spool.seek(0)
        return f"{data.name or 'data'}.zip", spool, "application/zip"
    if not data.is_file():
        raise ClientError(f"{data}: no such file or folder")
    suffix = data.suffix.lower()
    media_types = {".csv": "text/csv", ".npz": "application/octet-stream", ".zip": "application/zip",
                   ".ts": "text/plain"}
    if suffix not in media_types:
        raise ClientError(f"{data}: expected a .csv, .npz, .ts or .zip file, or a dataset folder")
    media = media_types[suffix]
    return data.name, open(data, "rb"), media


def _read_config(value: str | None) -> dict:
    """``--config``: inline JSON (a string starting with ``{``) or the path of a JSON file."""
    if not value:
        return {}
    inline = value.lstrip().startswith(("{", "["))
    text = value
    if not inline:
        path = Path(value)
        if not path.is_file():
            raise ClientError(f"--config {value!r}: no such file, and not inline JSON "
                              "(inline JSON starts with '{', e.g. --config '{\"families\": [\"RNN\"]}')")
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise ClientError(f"cannot read config {value}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ClientError(f"config {'(inline)' if inline else value} is not valid JSON: "
                          f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(config, dict):
        raise ClientError(f"config {'(inline)' if inline else value} must be a JSON object "
                          f"like {{\"families\": [\"RNN\"]}}, got {type(config).__name__}")
    return config


def _eta(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)) or seconds < 0:
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds < 3600 else f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def progress_text(job: dict) -> str:
    """One consistent line from one poll: ``kernels 3/8`` (stage, counts, never the state twice)."""
    progress = job.get("progress") or {}
    state, stage = job.get("state") or "", progress.get("stage") or ""
    if state in TERMINAL or not stage or stage == state:
        return state
    done, total = progress.get("done", 0), progress.get("total", 1)
    return f"{stage} {done}/{total}" if total and total > 1 else stage


def overall_fraction(job: dict) -> float:
    """The job's overall progress in [0, 1] (1 once it has ended)."""
    if job.get("state") in TERMINAL:
        return 1.0
    value = (job.get("progress") or {}).get("overall")
    return min(max(float(value), 0.0), 1.0) if isinstance(value, (int, float)) else 0.0


def _wait(api: Api, job_id: str, interval: float, timeout: float | None, show_bar: bool) -> dict:
    """Poll the job until it ends, with one overall bar on stderr (stage and ETA beside it)."""
    from tqdm import tqdm

    bar = tqdm(total=1000, file=sys.stderr, disable=not show_bar, dynamic_ncols=True, leave=True,
               bar_format="{desc} {percentage:3.0f}%|{bar}| {elapsed} elapsed, ETA {postfix}")
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while True:
            job = api.json("GET", f"/jobs/{job_id}")
            # stage, counts and fraction come from the same poll and are drawn in one refresh
            bar.set_description_str(f"{job_id[:8]} {progress_text(job)}", refresh=False)
            bar.set_postfix_str(_eta((job.get("progress") or {}).get("eta_s"))
                                if job.get("state") not in TERMINAL else "0:00", refresh=False)
            bar.n = round(1000 * overall_fraction(job))
            bar.refresh()
            if job.get("state") in TERMINAL:
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise ClientError(f"job {job_id} still {job.get('state')} after {timeout:g} s; "
                                  f"it goes on (see rntk status {job_id})")
            time.sleep(interval)
    finally:
        bar.close()


def submit_main(argv: Sequence[str]) -> int:
    parser = _Parser(prog="rntk submit", description="Upload DATA, submit a job, print its id.")
    parser.add_argument("data", metavar="DATA", help="a .csv, .npz, .ts or .zip file, or a UCI or .ts TRAIN/TEST folder (zipped for you)")
    parser.add_argument("--config", metavar="CONFIG",
                        help="the evaluation config: a JSON file (e.g. examples/config.json) or inline JSON starting with '{'")
    parser.add_argument("--gram", choices=("selected", "all", "none"), default=None,
                        help="Gram matrices to keep as artifacts (server default: selected)")
    parser.add_argument("--wait", action="store_true", help="follow the job with a progress bar until it ends")
    parser.add_argument("--interval", type=float, default=0.5, metavar="S", help="poll interval with --wait (0.5)")
    parser.add_argument("--timeout", type=float, default=None, metavar="S",
                        help="with --wait: give up waiting after S seconds (exit 2; the job goes on)")
    parser.add_argument("--no-progress", action="store_true", help="with --wait: no progress bar")
    parser.add_argument("--json", action="store_true", help="print the job record as JSON")
    parser.add_argument("--estimate", action="store_true",
                        help="upload DATA and print the expected kernels, fits and time; submit nothing")
    _common(parser)
    args = parser.parse_args(argv)
    config = _read_config(args.config)
    name, handle, media = _payload(Path(args.data))
    api = Api(args.server, args.api_key)
    try:
        with handle:
            dataset = api.json("POST", "/datasets", files={"file": (name, handle, media)})
        body: dict[str, Any] = {"dataset_id": dataset["id"], "config": config}
        if args.gram:
            body["artifacts"] = {"gram": args.gram}
        if args.estimate:
            estimate = api.json("POST", "/jobs/estimate", json=body)
            print(json.dumps(estimate, indent=2) if args.json else estimate["text"])
            return EXIT_OK
        job = api.json("POST", "/jobs", json=body)
        print(job["id"] if not args.json or args.wait else json.dumps(job, indent=2), flush=True)
        if (job.get("cost") or {}).get("text") and args.wait and not args.no_progress:
            print(f"estimate: {job['cost']['text']}", file=sys.stderr)  # above the bar
        if not args.wait:
            return EXIT_OK
        try:
            job = _wait(api, job["id"], max(args.interval, 0.05), args.timeout, not args.no_progress)
        except KeyboardInterrupt:
            raise ClientError(f"interrupted; job {job['id']} goes on (rntk status {job['id']})", 130) from None
        print(json.dumps(job, indent=2) if args.json else _describe(job), flush=True)
        line = _job_failure_line(job)
        if line:
            print(f"rntk submit: {line}", file=sys.stderr)
        return _job_exit(job)
    finally:
        api.close()


# ---------------------------------------------------------------- status, cancel, jobs


def _one_job_parser(prog: str, description: str) -> _Parser:
    parser = _Parser(prog=prog, description=description)
    parser.add_argument("job", metavar="JOB", help="the job id")
    _common(parser)
    return parser


def _job_path(job_id: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,128}", job_id):
        raise ClientError(f"{job_id!r} is not a job id")
    return f"/jobs/{job_id}"


def status_main(argv: Sequence[str]) -> int:
    parser = _one_job_parser("rntk status", "A job's state, progress, error and summary.")
    parser.add_argument("--json", action="store_true", help="print the job record as JSON")
    args = parser.parse_args(argv)
    api = Api(args.server, args.api_key)
    try:
        job = api.json("GET", _job_path(args.job))
    finally:
        api.close()
    print(json.dumps(job, indent=2) if args.json else _describe(job))
    return _job_exit(job)


def cancel_main(argv: Sequence[str]) -> int:
    parser = _one_job_parser("rntk cancel", "Cancel a queued or running job.")
    args = parser.parse_args(argv)
    api = Api(args.server, args.api_key)
    try:
        job = api.json("POST", _job_path(args.job) + "/cancel")
    finally:
        api.close()
    if job.get("state") == "cancelled":
        print(f"job {job['id']} cancelled")
    else:
        print(f"job {job['id']} is {job.get('state')}: cancel requested; it stops at the next tile or fit")
    return EXIT_OK


def jobs_main(argv: Sequence[str]) -> int:
    parser = _Parser(prog="rntk jobs", description="Your jobs, newest first.")
    parser.add_argument("--state", choices=("queued", "running", "succeeded", "failed", "cancelled"))
    parser.add_argument("--limit", type=int, default=20, metavar="N", help="at most N jobs (20)")
    parser.add_argument("--json", action="store_true", help="print the job records as JSON")
    _common(parser)
    args = parser.parse_args(argv)
    if not 1 <= args.limit <= 1000:
        raise ClientError("--limit must be between 1 and 1000")
    params: dict[str, Any] = {"limit": args.limit}
    if args.state:
        params["state"] = args.state
    api = Api(args.server, args.api_key)
    try:
        jobs = api.json("GET", "/jobs", params=params)
    finally:
        api.close()
    if args.json:
        print(json.dumps(jobs, indent=2))
        return EXIT_OK
    if not jobs:
        print("no jobs" + (f" {args.state}" if args.state else ""))
        return EXIT_OK
    columns = (("job", 32), ("dataset", 16), ("state", 9), ("progress", 24), ("created", 19))
    print("  ".join(f"{name:{width}s}" for name, width in columns) + "  test accuracy")
    for job in jobs:
        progress = f"{100 * overall_fraction(job):3.0f}% {progress_text(job)}"
        summary = " ".join(f"{family}={_percent((result or {}).get('test_accuracy'))}"
                           for family, result in (job.get("summary") or {}).items())
        created = (job.get("created_at") or "")[:19].replace("T", " ")
        cells = (job["id"], job.get("dataset_name") or str(job.get("dataset_id", ""))[:12],
                 job.get("state", ""), progress, created)
        # fixed widths, long values cut: the columns never shift while progress text grows
        print("  ".join(_cell(str(value), width) for value, (_, width) in zip(cells, columns))
              + "  " + summary)
    return EXIT_OK


def _cell(text: str, width: int) -> str:
    return f"{text[:width - 1] + '…' if len(text) > width else text:{width}s}"


def compare_main(argv: Sequence[str]) -> int:
    parser = _Parser(prog="rntk compare", description="Several jobs' test accuracy per family, side by side.")
    parser.add_argument("jobs", nargs="+", metavar="JOB", help="job ids")
    parser.add_argument("--json", action="store_true", help="print {family: {job: accuracy}} as JSON")
    _common(parser)
    args = parser.parse_args(argv)
    api = Api(args.server, args.api_key)
    try:
        jobs = [api.json("GET", _job_path(job_id)) for job_id in args.jobs]
        reports = [_report(api, job) for job in jobs]
    finally:
        api.close()
    families: list[str] = []
    for job in jobs:
        families += [name for name in (job.get("summary") or {}) if name not in families]
    table = {family: {job["id"]: _family_result(job, report, family) for job, report in zip(jobs, reports)}
             for family in families}
    if args.json:
        print(json.dumps(table, indent=2))
        return EXIT_OK
    width = max([len(f) for f in families] + [len("family")])
    heads = [f"{job['id'][:8]} {job.get('dataset_name') or ''}".strip()[:20] for job in jobs]
    print(f"{'family':{width}s}  " + "  ".join(f"{head:>20s}" for head in heads))
    for family in families:
        cells = []
        for job in jobs:
            result = table[family][job["id"]]
            text = "-" if result is None else _percent(result["test_accuracy"])
            if result is not None and result.get("std") is not None:
                text += f" ± {100 * result['std']:.1f}"
            cells.append(f"{text:>20s}")
        print(f"{family:{width}s}  " + "  ".join(cells))
    states = [job.get("state") for job in jobs]
    if any(state != "succeeded" for state in states):
        print("(jobs not succeeded: " + ", ".join(f"{j['id'][:8]} {j.get('state')}" for j in jobs
                                                  if j.get("state") != "succeeded") + ")", file=sys.stderr)
    return EXIT_OK


def _report(api: Api, job: dict) -> dict:
    """The job's report.json (fold accuracies for the std), or {} when it has none."""
    if job.get("state") != "succeeded":
        return {}
    try:
        report = api.json("GET", f"/jobs/{job['id']}/artifacts/report.json")
    except ClientError:
        return {}
    return report if isinstance(report, dict) else {}


def _family_result(job: dict, report: dict, family: str) -> dict | None:
    result = (job.get("summary") or {}).get(family)
    if result is None:
        return None
    folds = ((report.get("families") or {}).get(family) or {}).get("fold_accuracies") or []
    folds = [f for f in folds if isinstance(f, (int, float))]
    std = None
    if len(folds) >= 2:
        mean = sum(folds) / len(folds)
        std = (sum((f - mean) ** 2 for f in folds) / len(folds)) ** 0.5
    return {"test_accuracy": result.get("test_accuracy"), "std": std}


# ---------------------------------------------------------------- download


def _target(out: Path, name: str) -> Path:
    """Where artifact ``name`` goes under ``out``; refuses names that would leave it."""
    parts = PurePosixPath(name).parts
    if not parts or name.startswith("/") or any(p in ("", ".", "..") or "\\" in p for p in parts):
        raise ClientError(f"refusing artifact name {name!r}")
    return out.joinpath(*parts)


def download_main(argv: Sequence[str]) -> int:
    parser = _one_job_parser("rntk download", "Download every artifact of a job, checking sha256.")
    parser.add_argument("--out", metavar="DIR", help="the folder to write into (default: ./JOB)")
    parser.add_argument("--quiet", action="store_true", help="do not list the files written")
    args = parser.parse_args(argv)
    out = Path(args.out or args.job)
    api = Api(args.server, args.api_key)
    try:
        listing = api.json("GET", _job_path(args.job) + "/artifacts")
        if not listing:
            job = api.json("GET", _job_path(args.job))
            raise ClientError(f"job {args.job} has no artifacts (it is {job.get('state')})",
                              EXIT_JOB if job.get("state") in ("failed", "cancelled") else EXIT_ERROR)
        total = 0
        for entry in listing:
            target = _target(out, entry["name"])
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.name + ".part")
            digest = hashlib.sha256()
            try:
                with api.http.stream("GET", entry.get("url") or f"/jobs/{args.job}/artifacts/{entry['name']}") as response:
                    api.check(response)
                    with open(partial, "wb") as handle:
                        for chunk in response.iter_bytes(1 << 20):
                            digest.update(chunk)
                            handle.write(chunk)
            except httpx.HTTPError as exc:
                partial.unlink(missing_ok=True)
                raise ClientError(f"downloading {entry['name']} from {api.base} failed: {_reason(exc)}") from None
            except BaseException:
                partial.unlink(missing_ok=True)
                raise
            if entry.get("sha256") and digest.hexdigest() != entry["sha256"]:
                partial.unlink(missing_ok=True)
                raise ClientError(f"{entry['name']}: sha256 {digest.hexdigest()} does not match "
                                  f"the server's {entry['sha256']}")
            os.replace(partial, target)
            total += target.stat().st_size
            if not args.quiet:
                print(target)
    except OSError as exc:
        raise ClientError(f"cannot write under {out}: {exc.strerror or exc}") from None
    finally:
        api.close()
    print(f"{len(listing)} artifact(s), {total} bytes, sha256 verified, in {out}", file=sys.stderr)
    return EXIT_OK


# ---------------------------------------------------------------- dispatch

COMMANDS: dict[str, tuple[Callable[[Sequence[str]], int], str]] = {
    "submit": (submit_main, "upload DATA and submit a job (--wait: follow it with a progress bar)"),
    "status": (status_main, "a job's state, progress and summary (exit 1 if it failed or was cancelled)"),
    "download": (download_main, "download a job's artifacts, checking sha256"),
    "cancel": (cancel_main, "cancel a queued or running job"),
    "jobs": (jobs_main, "list your jobs"),
    "compare": (compare_main, "several jobs' test accuracy per family side by side"),
}


def run(command: str, argv: Sequence[str]) -> int:
    """Run one client command: its exit code, with every error as one line on stderr."""
    function = COMMANDS[command][0]
    try:
        return function(list(argv))
    except ClientError as exc:
        print(f"rntk {command}: error: {exc}", file=sys.stderr)
        return exc.code
    except BrokenPipeError:
        raise  # the reader went away: app.cli ends quietly
    except KeyboardInterrupt:
        print(f"rntk {command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # never a traceback: one line with the exception's type
        print(f"rntk {command}: error: {type(exc).__name__}: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_ERROR
