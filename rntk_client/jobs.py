"""``rntk status | cancel | jobs | compare``: read and steer jobs already submitted.

JOB is an id or any unique prefix of one (resolved with ``GET /jobs``, see :meth:`Client.resolve`).
"""

from __future__ import annotations

import json
import sys
from typing import Sequence

from rntk_client.api import EXIT_OK, ClientError, Parser, add_connection_options, one_job_parser
from rntk_client.client import Client, Job
from rntk_client.render import cell, describe, job_exit, overall_fraction, percent, progress_text, short_ids

__all__ = ["status_main", "cancel_main", "jobs_main", "compare_main"]


def status_main(argv: Sequence[str]) -> int:
    parser = one_job_parser("rntk status", "A job's state, progress, error and summary.")
    parser.add_argument("--json", action="store_true", help="print the job record as JSON")
    args = parser.parse_args(argv)
    with Client(args.server, args.api_key) as client:
        job = client.job(args.job).record
    print(json.dumps(job, indent=2) if args.json else describe(job))
    return job_exit(job)


def cancel_main(argv: Sequence[str]) -> int:
    parser = one_job_parser("rntk cancel", "Cancel a queued or running job.")
    args = parser.parse_args(argv)
    with Client(args.server, args.api_key) as client:
        job = Job(client, {"id": client.resolve(args.job)}).cancel().record
    if job.get("state") == "cancelled":
        print(f"job {job['id']} cancelled")
    else:
        print(f"job {job['id']} is {job.get('state')}: cancel requested; it stops at the next tile or fit")
    return EXIT_OK


JOB_COLUMNS = (("job", 32), ("dataset", 16), ("state", 9), ("progress", 24), ("created", 19))


def _job_row(job: dict) -> str:
    progress = f"{100 * overall_fraction(job):3.0f}% {progress_text(job)}"
    summary = " ".join(f"{family}={percent((result or {}).get('test_accuracy'))}"
                       for family, result in (job.get("summary") or {}).items())
    created = (job.get("created_at") or "")[:19].replace("T", " ")
    cells = (job["id"], job.get("dataset_name") or str(job.get("dataset_id", ""))[:12],
             job.get("state", ""), progress, created)
    # fixed widths, long values cut: the columns never shift while progress text grows
    return "  ".join(cell(str(value), width) for value, (_, width) in zip(cells, JOB_COLUMNS)) + "  " + summary


def jobs_main(argv: Sequence[str]) -> int:
    parser = Parser(prog="rntk jobs", description="Your jobs, newest first.")
    parser.add_argument("--state", choices=("queued", "running", "succeeded", "failed", "cancelled"))
    parser.add_argument("--limit", type=int, default=20, metavar="N", help="at most N jobs (20)")
    parser.add_argument("--json", action="store_true", help="print the job records as JSON")
    add_connection_options(parser)
    args = parser.parse_args(argv)
    if not 1 <= args.limit <= 1000:
        raise ClientError("--limit must be between 1 and 1000")
    with Client(args.server, args.api_key) as client:
        jobs = [job.record for job in client.jobs(args.state, args.limit)]
    if args.json:
        print(json.dumps(jobs, indent=2))
        return EXIT_OK
    if not jobs:
        print("no jobs" + (f" {args.state}" if args.state else ""))
        return EXIT_OK
    print("  ".join(f"{name:{width}s}" for name, width in JOB_COLUMNS) + "  test accuracy")
    for job in jobs:
        print(_job_row(job))
    return EXIT_OK


def _report(job: Job) -> dict:
    """The job's report.json (fold accuracies for the std), or {} when it has none."""
    if job.record.get("state") != "succeeded":
        return {}
    try:
        return job.report_json()
    except ClientError:
        return {}


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


def _print_comparison(jobs: list[dict], families: list[str], table: dict) -> None:
    width = max([len(f) for f in families] + [len("family")])
    names = short_ids([job["id"] for job in jobs])
    heads = [f"{names[job['id']]} {job.get('dataset_name') or ''}".strip()[:20] for job in jobs]
    print(f"{'family':{width}s}  " + "  ".join(f"{head:>20s}" for head in heads))
    for family in families:
        cells = []
        for job in jobs:
            result = table[family][job["id"]]
            text = "-" if result is None else percent(result["test_accuracy"])
            if result is not None and result.get("std") is not None:
                text += f" ± {100 * result['std']:.1f}"
            cells.append(f"{text:>20s}")
        print(f"{family:{width}s}  " + "  ".join(cells))
    from rntk_core.evaluation.report.compare import config_differences  # standard library only

    differences = config_differences([job.get("config") for job in jobs])
    if len(jobs) > 1:
        print("\nconfigs: " + ("the same" if not differences else "they differ in"))
        for key, values in differences:
            print(f"  {key}: " + "  ".join(f"{names[job['id']]}={value}" for job, value in zip(jobs, values)))


def compare_main(argv: Sequence[str]) -> int:
    parser = Parser(prog="rntk compare", description="Several jobs' test accuracy per family, side by side.")
    parser.add_argument("jobs", nargs="+", metavar="JOB", help="job ids, or unique prefixes of them")
    parser.add_argument("--json", action="store_true", help="print {family: {job: accuracy}} as JSON")
    add_connection_options(parser)
    args = parser.parse_args(argv)
    with Client(args.server, args.api_key) as client:
        handles = [client.job(job_id) for job_id in args.jobs]
        reports = [_report(job) for job in handles]
    jobs = [job.record for job in handles]
    families: list[str] = []
    for job in jobs:
        families += [name for name in (job.get("summary") or {}) if name not in families]
    table = {family: {job["id"]: _family_result(job, report, family) for job, report in zip(jobs, reports)}
             for family in families}
    if args.json:
        print(json.dumps(table, indent=2))
        return EXIT_OK
    _print_comparison(jobs, families, table)
    if any(job.get("state") != "succeeded" for job in jobs):
        names = short_ids([job["id"] for job in jobs])
        print("(jobs not succeeded: " + ", ".join(f"{names[j['id']]} {j.get('state')}" for j in jobs
                                                  if j.get("state") != "succeeded") + ")", file=sys.stderr)
    return EXIT_OK
