"""``rntk submit``: upload DATA (a folder is zipped), submit a job, optionally follow it."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Sequence

from rntk_client.api import EXIT_OK, ClientError, Parser, add_connection_options
from rntk_client.client import Client
from rntk_client.data import load_config
from rntk_client.render import describe, job_exit, job_failure_line

__all__ = ["submit_main"]


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
    config = load_config(args.config, "--config")
    data = Path(args.data)
    with Client(args.server, args.api_key) as client:
        if args.estimate:
            estimate = client.estimate(data, config, gram=args.gram)
            print(json.dumps(estimate, indent=2) if args.json else estimate["text"])
            return EXIT_OK
        job = client.submit(data, config, gram=args.gram)
        print(job.id if not args.json or args.wait else json.dumps(job.record, indent=2), flush=True)
        if (job.record.get("cost") or {}).get("text") and args.wait and not args.no_progress:
            print(f"estimate: {job.record['cost']['text']}", file=sys.stderr)  # above the bar
        if not args.wait:
            return EXIT_OK
        try:
            job.wait(args.timeout, interval=max(args.interval, 0.05), progress=not args.no_progress,
                     file=sys.stderr)
        except KeyboardInterrupt:
            raise ClientError(f"interrupted; job {job.id} goes on (rntk status {job.id})", 130) from None
        print(json.dumps(job.record, indent=2) if args.json else describe(job.record), flush=True)
        line = job_failure_line(job.record)
        if line:
            print(f"rntk submit: {line}", file=sys.stderr)
        return job_exit(job.record)
