"""``rntk download``: every artifact of a job into a folder, each checked against its sha256."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path, PurePosixPath
from typing import Sequence

import httpx

from rntk_client.api import EXIT_ERROR, EXIT_JOB, EXIT_OK, Api, ClientError, job_path, one_job_parser, reason

__all__ = ["download_main"]


def _target(out: Path, name: str) -> Path:
    """Where artifact ``name`` goes under ``out``; refuses names that would leave it."""
    parts = PurePosixPath(name).parts
    if not parts or name.startswith("/") or any(p in ("", ".", "..") or "\\" in p for p in parts):
        raise ClientError(f"refusing artifact name {name!r}")
    return out.joinpath(*parts)


def _download_one(api: Api, job_id: str, entry: dict, target: Path) -> None:
    """Stream one artifact to ``target.part``, check its sha256, then rename it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    digest = hashlib.sha256()
    try:
        with api.http.stream("GET", entry.get("url") or f"/jobs/{job_id}/artifacts/{entry['name']}") as response:
            api.check(response)
            with open(partial, "wb") as handle:
                for chunk in response.iter_bytes(1 << 20):
                    digest.update(chunk)
                    handle.write(chunk)
    except httpx.HTTPError as exc:
        partial.unlink(missing_ok=True)
        raise ClientError(f"downloading {entry['name']} from {api.base} failed: {reason(exc)}") from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    if entry.get("sha256") and digest.hexdigest() != entry["sha256"]:
        partial.unlink(missing_ok=True)
        raise ClientError(f"{entry['name']}: sha256 {digest.hexdigest()} does not match "
                          f"the server's {entry['sha256']}")
    os.replace(partial, target)


def download_main(argv: Sequence[str]) -> int:
    parser = one_job_parser("rntk download", "Download every artifact of a job, checking sha256.")
    parser.add_argument("--out", metavar="DIR", help="the folder to write into (default: ./JOB)")
    parser.add_argument("--quiet", action="store_true", help="do not list the files written")
    args = parser.parse_args(argv)
    out = Path(args.out or args.job)
    api = Api(args.server, args.api_key)
    try:
        listing = api.json("GET", job_path(args.job) + "/artifacts")
        if not listing:
            job = api.json("GET", job_path(args.job))
            raise ClientError(f"job {args.job} has no artifacts (it is {job.get('state')})",
                              EXIT_JOB if job.get("state") in ("failed", "cancelled") else EXIT_ERROR)
        total = 0
        for entry in listing:
            target = _target(out, entry["name"])
            _download_one(api, args.job, entry, target)
            total += target.stat().st_size
            if not args.quiet:
                print(target)
    except OSError as exc:
        raise ClientError(f"cannot write under {out}: {exc.strerror or exc}") from None
    finally:
        api.close()
    print(f"{len(listing)} artifact(s), {total} bytes, sha256 verified, in {out}", file=sys.stderr)
    return EXIT_OK
