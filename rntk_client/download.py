"""``rntk download``: every artifact of a job into a folder, each checked against its sha256."""

from __future__ import annotations

import sys
from typing import Sequence

from rntk_client.api import EXIT_OK, one_job_parser
from rntk_client.client import Client

__all__ = ["download_main"]


def download_main(argv: Sequence[str]) -> int:
    parser = one_job_parser("rntk download", "Download every artifact of a job, checking sha256.")
    parser.add_argument("--out", metavar="DIR", help="the folder to write into (default: ./JOB, the full id)")
    parser.add_argument("--quiet", action="store_true", help="do not list the files written")
    args = parser.parse_args(argv)
    with Client(args.server, args.api_key) as client:
        job = client.job(args.job)
        out = args.out or job.id
        written = job.download(out)
    if not args.quiet:
        for path in written:
            print(path)
    total = sum(path.stat().st_size for path in written)
    print(f"{len(written)} artifact(s), {total} bytes, sha256 verified, in {out}", file=sys.stderr)
    return EXIT_OK
