"""A job record (the API's JSON) as text: the progress line, the description, table cells."""

from __future__ import annotations

from typing import Any

from rntk_client.api import EXIT_JOB, EXIT_OK

__all__ = ["TERMINAL", "SHORT_ID", "short_id", "short_ids", "percent", "eta", "progress_text", "overall_fraction",
           "stopped_in", "describe", "job_exit", "job_failure_line", "cell"]

TERMINAL = ("succeeded", "failed", "cancelled")
#: Characters of an id shown where space is short. Ids begin with their creation time in
#: nanoseconds (hex), so 8 characters change only every 4.3 s; 12 change every 65 us.
SHORT_ID = 12


def short_id(job_id: str) -> str:
    """The first :data:`SHORT_ID` characters of a job id (every client command accepts them)."""
    return job_id[:SHORT_ID]


def short_ids(job_ids: list[str], minimum: int = SHORT_ID) -> dict[str, str]:
    """Each id's shortest prefix (at least ``minimum`` long) that tells these ids apart."""
    distinct = set(job_ids)
    for length in range(minimum, max(map(len, distinct), default=minimum) + 1):
        prefixes = {job_id: job_id[:length] for job_id in distinct}
        if len(set(prefixes.values())) == len(distinct):
            return prefixes
    return {job_id: job_id for job_id in distinct}


def percent(value: Any) -> str:
    return f"{100 * value:.1f}%" if isinstance(value, (int, float)) else "n/a"


def eta(seconds: Any) -> str:
    """``m:ss`` (or ``XhYYm`` past an hour); ``?`` when unknown."""
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
    """The job's overall progress in [0, 1]: 1 once it succeeded, where it stopped for a
    failed or cancelled job."""
    if job.get("state") == "succeeded":
        return 1.0
    value = (job.get("progress") or {}).get("overall")
    return min(max(float(value), 0.0), 1.0) if isinstance(value, (int, float)) else 0.0


def _summary_lines(job: dict) -> list[str]:
    summary = job.get("summary") or {}
    if not summary:
        return []
    width = max([len(str(name)) for name in summary] + [len("family")])
    lines = [f"  {'family':{width}s}  test accuracy"]
    ranked = sorted(summary.items(), key=lambda item: -((item[1] or {}).get("test_accuracy") or -1))
    for family, result in ranked:
        lines.append(f"  {family:{width}s}  {percent((result or {}).get('test_accuracy'))}")
    return lines


def stopped_in(job: dict) -> str:
    """`` (stopped in kernels 3/8)`` for a failed or cancelled job that had started a stage, else ``""``."""
    progress = job.get("progress") or {}
    stage = progress.get("stage") or ""
    if job.get("state") not in ("failed", "cancelled") or stage in ("", "done", "queued", "requeued", job.get("state")):
        return ""
    done, total = progress.get("done", 0), progress.get("total", 1)
    return f" (stopped in {stage}" + (f" {done}/{total})" if total and total > 1 else ")")


def describe(job: dict) -> str:
    """The job as ``rntk status`` prints it: state, progress, times, error, accuracy per family."""
    progress = job.get("progress") or {}
    overall = f"{100 * overall_fraction(job):.0f}%"
    eta_s = progress.get("eta_s")
    lines = [f"job {job['id']}: {job.get('state')}",
             f"  progress  {overall} {progress_text(job)}{stopped_in(job)}"
             + (f", ETA {eta(eta_s)}" if eta_s is not None and job.get("state") not in TERMINAL else ""),
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


def job_exit(job: dict) -> int:
    """1 for a failed or cancelled job, else 0."""
    return EXIT_JOB if job.get("state") in ("failed", "cancelled") else EXIT_OK


def job_failure_line(job: dict) -> str | None:
    if job.get("state") == "failed":
        error = job.get("error") or {}
        return f"job {job['id']} failed: {error.get('type', 'error')}: {error.get('message', '')}"
    if job.get("state") == "cancelled":
        return f"job {job['id']} was cancelled"
    return None


def cell(text: str, width: int) -> str:
    """``text`` in exactly ``width`` characters: padded, or cut with an ellipsis."""
    return f"{text[:width - 1] + '…' if len(text) > width else text:{width}s}"
