"""``rntk submit``: upload DATA (a folder is zipped), submit a job, optionally follow it."""

from __future__ import annotations

import json
import sys
import tempfile
import time
import zipfile
from pathlib import Path, PurePosixPath
from typing import IO, Any, Sequence

from rntk_client.api import EXIT_OK, Api, ClientError, Parser, add_connection_options
from rntk_client.render import TERMINAL, describe, eta, job_exit, job_failure_line, overall_fraction, progress_text

__all__ = ["submit_main"]

MEDIA_TYPES = {".csv": "text/csv", ".npz": "application/octet-stream", ".zip": "application/zip",
               ".ts": "text/plain"}


def _payload(data: Path) -> tuple[str, IO[bytes], str]:
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
    if suffix not in MEDIA_TYPES:
        raise ClientError(f"{data}: expected a .csv, .npz, .ts or .zip file, or a dataset folder")
    return data.name, open(data, "rb"), MEDIA_TYPES[suffix]


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
            bar.set_postfix_str(eta((job.get("progress") or {}).get("eta_s"))
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


def _parser() -> Parser:
    parser = Parser(prog="rntk submit", description="Upload DATA, submit a job, print its id.")
    parser.add_argument("data", metavar="DATA",
                        help="a .csv, .npz, .ts or .zip file, or a UCI or .ts TRAIN/TEST folder (zipped for you)")
    parser.add_argument("--config", metavar="CONFIG",
                        help="the evaluation config: a JSON file (e.g. examples/config.json) "
                             "or inline JSON starting with '{'")
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
    add_connection_options(parser)
    return parser


def submit_main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(argv)
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
        print(json.dumps(job, indent=2) if args.json else describe(job), flush=True)
        line = job_failure_line(job)
        if line:
            print(f"rntk submit: {line}", file=sys.stderr)
        return job_exit(job)
    finally:
        api.close()
