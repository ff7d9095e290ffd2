"""Run one job: record -> evaluation -> artifacts -> record.

JAX is imported only here, inside the task, i.e. in the prefork pool's child process (the
worker runs ``--pool=prefork --concurrency=1``; the main process never imports JAX). The
child stays warm for ``child_tasks`` tasks or until its RSS passes ``child_memory_mb``, then
a fresh one replaces it and device memory goes back to the system. A forked child never
forks again, so no JAX runtime is ever copied across a fork.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import mimetypes
import os
import re
import shutil
import socket
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from celery.exceptions import SoftTimeLimitExceeded

from rntk_core.evaluation.cancel import Cancelled
from rntk_core.evaluation.files import atomic_write_json
from worker import calibration
from worker.celery_app import celery_app
from worker.fanout import ChordRunner, dense_fans_out, drop_work, work_dir
from worker.jax_env import prepare_jax
from worker.jobs import FamilySummary, JobCost, JobError, JobRecord, JobState, Progress, Store, now
from worker.logs import job_context
from worker.queue import Heartbeat, StallWatch, heartbeat_age
from worker.settings import TASK_NAME, Settings, get_settings

if TYPE_CHECKING:  # the worker's main process must not import JAX (nor what might bring it)
    from rntk_core.evaluation.report.model import Report

__all__ = ["run_job", "claim", "execute", "fail_stalled", "own_estimate", "scrub"]

log = logging.getLogger("rntk.tasks")


def scrub(message: str, store: Store) -> str:
    """Strip server paths from an error message (keep only file names)."""
    message = message.replace(str(store.root) + os.sep, "").replace(str(store.root), "<data>")
    return re.sub(r"(?<![\w.])/(?:[^\s'\":,;()]+/)+([^\s'\":,;()/]+)", r"\1", message)[:2000]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _holder_alive(store: Store, record: JobRecord, dead_after_s: float) -> bool:
    """Whether the attempt that marked this job running may still be alive."""
    beat = store.read_heartbeat(record.id) or {}
    if heartbeat_age(store, record, beat) > dead_after_s:
        return False
    # a pool child of this very worker process that has died: certainly dead
    if beat.get("ppid") == os.getppid() and beat.get("pid") != os.getpid() and not _pid_alive(int(beat.get("pid", 0))):
        return False
    return True


def claim(store: Store, job_id: str, message_id: str, max_attempts: int, dead_after_s: float) -> JobRecord | None:
    """Mark the job running for this message, or return None when this message must do nothing."""
    outcome: dict[str, JobRecord] = {}

    def change(rec: JobRecord) -> None:
        if rec.deleted or rec.state.terminal:
            return
        if rec.message_id != message_id:
            return  # a superseded message (the job was requeued with a new one)
        if rec.state == JobState.running:
            if _holder_alive(store, rec, dead_after_s):
                return  # a duplicate delivery while the first one runs
            # the attempt that held it died before the sweep noticed: this delivery takes over
            rec.move_to(JobState.queued)
        if rec.cancel_requested or store.cancel_requested(job_id):
            rec.move_to(JobState.cancelled)
            return
        rec.attempts += 1
        if rec.attempts > max_attempts:
            rec.move_to(JobState.failed, error=JobError(
                type="WorkerLost",
                message=f"the job's worker died during each of its {rec.attempts - 1} attempts; "
                        f"giving up after {max_attempts} attempts"))
            return
        rec.move_to(JobState.running, started_at=now(), finished_at=None, error=None,
                    worker=socket.gethostname(), progress=Progress(stage="starting"), phase_seconds={})
        outcome["record"] = rec.model_copy(deep=True)

    store.update_job(job_id, change)
    return outcome.get("record")


def _manifest(folder: Path) -> list[dict]:
    entries = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        name = path.relative_to(folder).as_posix()
        media = "application/octet-stream" if name.endswith(".npy") else (
            mimetypes.guess_type(name)[0] or "application/octet-stream")
        entries.append({"name": name, "size": path.stat().st_size, "sha256": digest.hexdigest(),
                        "media_type": media})
    return entries


def _install_artifacts(store: Store, job_id: str, staged: Path) -> list[dict]:
    """Replace the job's artifacts with ``staged`` (one rename), so one set ever exists."""
    manifest = _manifest(staged)
    final = store.artifacts_dir(job_id)
    if final.exists():
        trash = final.with_name(f".artifacts.trash.{uuid.uuid4().hex}")
        os.rename(final, trash)
        shutil.rmtree(trash, ignore_errors=True)
    os.rename(staged, final)
    atomic_write_json(store.job_dir(job_id) / "manifest.json", manifest)
    return manifest


class PhaseClock:
    """Seconds spent in each progress stage of one attempt (``loading``, ``kernels``, ...),
    from ``earlier`` totals (a fanned-out job's first part) on."""

    def __init__(self, earlier: dict[str, float] | None = None) -> None:
        self._totals: dict[str, float] = dict(earlier or {})
        self._stage: str | None = None
        self._since = time.monotonic()

    def enter(self, stage: str) -> bool:
        """Switch to ``stage`` (charging the time since the last switch); True if it changed."""
        if stage == self._stage:
            return False
        self._charge()
        self._stage = stage
        return True

    def _charge(self) -> None:
        moment = time.monotonic()
        if self._stage is not None:
            self._totals[self._stage] = self._totals.get(self._stage, 0.0) + moment - self._since
        self._since = moment

    def seconds(self) -> dict[str, float]:
        """The totals so far, the current stage included."""
        self._charge()
        return {stage: round(value, 3) for stage, value in self._totals.items()}

    def stop(self) -> dict[str, float]:
        """The final totals; no stage is running afterwards."""
        totals = self.seconds()
        self._stage = None
        return totals


def summarise(report: Report) -> dict[str, FamilySummary]:
    """Per family: the test accuracy and the chosen configuration(s)."""
    return {family: FamilySummary(test_accuracy=result.test_accuracy,
                                  chosen=[c.model_dump(mode="json", exclude_unset=True) for c in result.chosen])
            for family, result in report.families.items()}


def own_estimate(record: JobRecord) -> JobCost | None:
    """The estimate a job's ETAs weigh by: the record's ``run_cost`` once a worker has loaded
    its dataset, else the submit-time one made again with this worker's own rates (its
    calibration), else the submit-time one itself (the slowest worker's)."""
    if record.run_cost is not None:
        return record.run_cost
    constants = calibration.local_constants()
    if record.cost is None or constants is None:
        return record.cost
    from rntk_core.evaluation.config import parse_config
    from rntk_core.evaluation.cost import estimate_cost

    try:
        config = parse_config(record.config.model_dump())
        cost = estimate_cost(record.cost.n_samples, record.cost.steps, config, constants=constants)
    except (ValueError, TypeError):  # a record older than today's config bounds
        return record.cost
    return JobCost.model_validate(cost.as_dict())


class OverallProgress:
    """The job's overall fraction and ETA from the stage counts, weighted by the estimate.
    A job resumed after its fanned-out blocks (``resumed``: its record) goes on from the
    record's fraction, with its ETA's elapsed time counted from the job's start."""

    def __init__(self, estimate: JobCost | None, resumed: JobRecord | None = None) -> None:
        self.started = time.monotonic()
        self.weights = estimate.stage_seconds if estimate is not None else {}
        self.expected = float(estimate.seconds or 0.0) if estimate is not None else 0.0
        self.fraction = resumed.progress.overall if resumed is not None else 0.0
        before = time.time() - resumed.started_at if resumed is not None and resumed.started_at else 0.0
        self.origin = self.started - max(before, 0.0)

    def reweigh(self, estimate: JobCost) -> None:
        """Weights and expected seconds from a better estimate; the fraction never goes back."""
        self.weights, self.expected = estimate.stage_seconds, float(estimate.seconds or 0.0)

    def update(self, stage: str, done: int, total: int) -> tuple[float, float]:
        from rntk_core.evaluation.cost import eta_seconds, overall_fraction

        if self.weights:  # never backwards: a stage outside the plan keeps the last value
            self.fraction = max(self.fraction, overall_fraction(self.weights, stage, done, total))
        elapsed = time.monotonic() - self.origin
        return round(self.fraction, 4), eta_seconds(elapsed, self.fraction, self.expected)


def blocks_progress(record: JobRecord, done: int, total: int) -> Progress:
    """A fanned-out job's progress while its block tasks write chunks: ``done`` of ``total``
    blocks, with the overall fraction and ETA the job's own attempt would report."""
    fraction, eta = OverallProgress(own_estimate(record), resumed=record).update("blocks", done, total)
    return Progress(stage="blocks", done=done, total=total, overall=fraction, eta_s=eta)


class Attempt:
    """One attempt's bookkeeping: progress into the record (at most every 0.5 s within a
    stage), seconds per stage, and the cancel and deadline checks.

    Celery's soft limit is a signal, and an import in flight (JAX's) can swallow it; the
    deadline, checked between tiles, fits and phases, enforces the limit regardless.
    ``watch`` hears of every progress step (the heartbeat's stall watchdog reads it).
    """

    def __init__(self, store: Store, record: JobRecord, settings: Settings, watch: StallWatch | None,
                 resumed: bool = False) -> None:
        self.store, self.job_id, self.watch, self.message_id = store, record.id, watch, record.message_id
        self.phases = PhaseClock(record.phase_seconds if resumed else None)
        self.overall = OverallProgress(own_estimate(record), resumed=record if resumed else None)
        self.deadline = time.monotonic() + settings.job_time_limit_s
        self._last_write = 0.0

    def set_progress(self, stage: str, done: int, total: int, force: bool = False) -> None:
        if self.watch is not None:
            self.watch.moved(stage, done, total)
        changed = self.phases.enter(stage)
        if not force and not changed and done < total and time.monotonic() - self._last_write < 0.5:
            return
        self._last_write = time.monotonic()
        fraction, eta = self.overall.update(stage, done, total)
        phases = self.phases

        def report_progress(rec: JobRecord) -> None:
            # one assignment: stage, counts, fraction and ETA always change together
            rec.progress = Progress(stage=stage, done=int(done), total=int(total), overall=fraction, eta_s=eta)
            rec.phase_seconds = phases.seconds()

        self.store.update_job(self.job_id, report_progress)

    def refine_estimate(self, dataset: Any, config: Any) -> None:
        """The estimate again, now that the dataset is loaded: its protocol's test folds and
        selection pairs (a TRAIN/TEST archive has 1 fold and a CV, not the UCI protocol's 4
        folds and one holdout) at this worker's rates. Weighs this attempt's progress and
        goes into the record (``run_cost``) for the job's block tasks and continuation."""
        from rntk_core.evaluation.cost import DEFAULT_CONSTANTS, estimate_cost
        from rntk_core.evaluation.protocol import protocol_shape

        try:
            shape = protocol_shape(dataset, config)
            cost = estimate_cost(dataset.n_samples, dataset.n_steps, config, lengths=dataset.lengths,
                                 constants=calibration.local_constants() or DEFAULT_CONSTANTS, **shape)
        except (ValueError, TypeError):  # a dataset the protocol refuses: the evaluation says why
            return
        refined = JobCost.model_validate(cost.as_dict())
        self.overall.reweigh(refined)

        def note(rec: JobRecord) -> None:
            if rec.message_id == self.message_id:
                rec.run_cost = refined

        self.store.update_job(self.job_id, note)

    def should_cancel(self) -> bool:
        if time.monotonic() > self.deadline:
            raise SoftTimeLimitExceeded()
        return self.store.cancel_requested(self.job_id)

    def check_cancel(self) -> None:
        if self.should_cancel():
            raise Cancelled()


def _evaluate(store: Store, record: JobRecord, settings: Settings, attempt: Attempt, staged: Path,
              runner: Any = None) -> Report:
    """Load the job's dataset and evaluate it into ``staged``; the typed report. ``runner``:
    where the blocks of a landmark job, or of a dense job's slow grids, run
    (:class:`worker.fanout.ChordRunner`)."""
    attempt.set_progress("loading", 0, 1, force=True)
    prepare_jax(settings)  # JAX arrives with rntk_core: only here, in the pool child
    from rntk_core.evaluation.config import parse_config
    from rntk_core.evaluation.datasets import DatasetLimits, load_for_job
    from rntk_core.evaluation.evaluate import RunOptions, evaluate
    from rntk_core.evaluation.progress import Progress as Hooks

    # validated again: a record older than one of today's bounds holds its config unchecked
    config = parse_config(record.config.model_dump())
    path = store.dataset_file(record.owner, record.dataset_id)
    if path is None:
        raise FileNotFoundError("the job's dataset no longer exists")
    limits = DatasetLimits(max_samples=settings.max_samples, max_steps=settings.max_steps)
    dataset = load_for_job(path, features_per_step=config.features_per_step, limits=limits)
    attempt.check_cancel()
    attempt.refine_estimate(dataset, config)
    gram_mode = record.artifacts.gram
    started = attempt.overall.started
    dense_blocks = runner is not None and dense_fans_out(dataset.n_samples, dataset.n_steps, config, settings)
    blocks = runner is not None and (config.landmarks > 0 or dense_blocks)
    # "loading" (JAX's import included) is the report's timings.load, and the report's
    # total runs from the attempt's start (a resumed one's from its first part's): the
    # record and the report agree
    run = RunOptions(
        progress=Hooks(on_progress=attempt.set_progress, should_cancel=attempt.should_cancel),
        memory_budget=settings.memory_budget_bytes, grid_memory=settings.grid_memory_bytes,
        load_seconds=time.monotonic() - started,
        started_at=record.started_at if blocks and record.started_at else time.time() - (time.monotonic() - started),
        block_runner=runner if blocks else None,
        work_dir=work_dir(store, record.id) if blocks else None, dense_blocks=dense_blocks,
        provenance={"dataset_sha256": record.dataset_id, "job_id": record.id,
                    "request": record.model_dump(mode="json", include={"dataset_id", "config", "artifacts"})})
    return evaluate(dataset, config, out_dir=staged, grams=gram_mode, run=run)


def execute(store: Store, record: JobRecord, settings: Settings, watch: StallWatch | None = None, *,
            resumed: list | None = None, worker: str | None = None) -> None:
    """Evaluate the job's dataset into a staged folder and install it; update the record.
    ``watch`` hears of every progress step (the heartbeat's stall watchdog reads it).

    A landmark job's blocks, and a slow dense job's grid blocks, fan out over the workers
    (:mod:`worker.fanout`): the first call returns once they are sent, with the job still
    running; the chord's continuation calls again with the blocks' ``resumed`` results, and
    that call finishes the job.
    ``worker``: this worker's name, for the report's blocks per worker."""
    from rntk_core.evaluation.scale.blocks import FannedOut

    job_id = record.id
    attempt = Attempt(store, record, settings, watch, resumed=resumed is not None)
    drop_staged(store, job_id)  # a killed earlier attempt may have left its staged folder
    staged = store.job_dir(job_id) / f".artifacts.{record.attempts}.{uuid.uuid4().hex[:8]}"
    runner = ChordRunner(store, record, settings, worker or socket.gethostname(), resumed) \
        if settings.fan_out_blocks else None
    finished = True
    try:
        report = _evaluate(store, record, settings, attempt, staged, runner)
        attempt.check_cancel()  # also the deadline, so a late report is never installed
        attempt.set_progress("writing", 0, 1, force=True)
        manifest = _install_artifacts(store, job_id, staged)
        summary = summarise(report)
        phase_seconds = attempt.phases.stop()

        def succeed(rec: JobRecord) -> None:
            if rec.message_id != record.message_id or rec.state != JobState.running:
                return
            rec.move_to(JobState.succeeded, summary=summary, error=None,
                        artifact_count=len(manifest), phase_seconds=phase_seconds,
                        timings=report.timings,
                        progress=Progress(stage="done", done=1, total=1, overall=1.0, eta_s=0.0))

        final = store.update_job(job_id, succeed)
        if final is not None and final.deleted:
            store.remove_artifacts(job_id)
    except FannedOut as sent:  # the chord's continuation finishes the job
        finished = False
        phase_seconds = attempt.phases.stop()

        def note(rec: JobRecord) -> None:
            if rec.message_id == record.message_id and rec.state == JobState.running:
                rec.phase_seconds = phase_seconds

        store.update_job(job_id, note)
        log.info("job %s: %d block(s) fanned out", job_id, sent.blocks, extra={"job_id": job_id})
    except Cancelled:
        _finish(store, record, JobState.cancelled, None, attempt.phases.stop(), staged)
    except SoftTimeLimitExceeded:
        _finish(store, record, JobState.failed, JobError(
            type="TimeLimitExceeded",
            message=f"the job ran past its time limit of {settings.job_time_limit_s:g} s"),
            attempt.phases.stop(), staged)
    except Exception as exc:  # every other failure is the job's, reported without traceback
        if disk_full(exc, store):
            _fail_disk_full(store, record, staged, attempt.phases.stop())
            return
        log.exception("job %s failed", job_id)
        kind = type(exc).__name__
        message = "out of memory" if isinstance(exc, MemoryError) else (scrub(str(exc), store) or kind)
        _finish(store, record, JobState.failed, JobError(type=kind, message=message), attempt.phases.stop(), staged)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
        if finished:
            drop_work(store, job_id)


#: Below this much free space on the data volume, a write error is taken for a full disk.
_NEARLY_FULL_BYTES = 1 << 20


def disk_full(exc: BaseException, store: Store) -> bool:
    """Whether ``exc`` (or what caused it) comes from a full data volume: ENOSPC or EDQUOT,
    or an OSError without errno (numpy's short writes: "22500 requested and 21472 written")
    while the volume is nearly full."""
    while exc is not None:
        if isinstance(exc, OSError):
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                return True
            if exc.errno is None:
                try:
                    stats = os.statvfs(store.root)
                except OSError:
                    return False
                return stats.f_bavail * stats.f_frsize < _NEARLY_FULL_BYTES
        exc = exc.__cause__ or exc.__context__
    return False


def _fail_disk_full(store: Store, record: JobRecord, staged: Path, phase_seconds: dict[str, float]) -> None:
    """Fail the job once as ``DiskFull``: its files go first, so the record fits on the disk.

    Retrying could not help (the next attempt meets the same full disk), so this is final;
    if even the record cannot be written, a few short waits give other jobs' clean-up a chance.
    """
    log.error("job %s: the data volume is full", record.id, extra={"job_id": record.id})
    shutil.rmtree(staged, ignore_errors=True)
    store.remove_artifacts(record.id)
    error = JobError(type="DiskFull", message="no space left on the service's data volume while writing the "
                                              "job's results; its partial files were removed. Free space "
                                              "(or ask the operator to) and submit the job again.")
    for wait in (0.0, 0.5, 1.0, 2.0, 4.0):
        time.sleep(wait)
        try:
            _finish(store, record, JobState.failed, error, phase_seconds)
            return
        except OSError as exc:
            if not disk_full(exc, store):
                raise
    raise OSError(errno.ENOSPC, "the data volume is full: cannot even record the job's failure")


def _finish(store: Store, record: JobRecord, state: JobState, error: JobError | None,
            phase_seconds: dict[str, float], staged: Path | None = None) -> None:
    """Record the attempt's end; a full disk while doing so fails the job as ``DiskFull``."""
    def change(rec: JobRecord) -> None:
        if rec.message_id != record.message_id or rec.state != JobState.running:
            return
        rec.move_to(state, error=error, phase_seconds=phase_seconds)

    try:
        store.update_job(record.id, change)
    except OSError as exc:
        if staged is None or not disk_full(exc, store):
            raise
        _fail_disk_full(store, record, staged, phase_seconds)


def drop_staged(store: Store, job_id: str) -> None:
    """Remove every staged (not installed) artifacts folder of the job."""
    for leftover in store.job_dir(job_id).glob(".artifacts.*"):
        shutil.rmtree(leftover, ignore_errors=True)


def fail_stalled(store: Store, record: JobRecord, stage: str, seconds: float, *, exit: bool) -> None:
    """The watchdog's verdict: fail the job as ``Stalled``, naming its stage, drop its staged
    files, and (``exit``) end this pool child, whose main thread is stuck where Python cannot
    interrupt it (a native wait), so the worker's slot is freed for the next job. Celery
    requeues the message (the child was lost under it), and the redelivery finds the job
    failed and does nothing."""
    error = JobError(type="Stalled", message=(
        f"the job made no progress for {seconds:.0f} s in stage '{stage}' while its worker was alive "
        f"(a hang); it was stopped. Resubmit it; if it stalls again at the same stage, report it."))
    def change(rec: JobRecord) -> None:
        if rec.message_id == record.message_id and rec.state == JobState.running:
            rec.move_to(JobState.failed, error=error)

    try:
        store.update_job(record.id, change)
        drop_staged(store, record.id)
    finally:
        if exit:
            logging.shutdown()
            os._exit(75)


@celery_app.task(name=TASK_NAME, bind=True)
def run_job(self: Any, job_id: str) -> str:
    """The Celery entry point: claim the job for this message, run it with a heartbeat."""
    with job_context(job_id):  # every log line of this job carries its id
        settings = get_settings()
        store = Store(settings.data_dir)
        message_id = self.request.id
        record = claim(store, job_id, message_id, settings.max_attempts, settings.dead_after_s)
        if record is None:
            log.info("job %s: nothing to do for message %s", job_id, message_id)
            return "skipped"
        log.info("job %s: attempt %s", job_id, record.attempts, extra={"attempt": record.attempts})
        watch = StallWatch()
        with Heartbeat(store, job_id, settings.heartbeat_s,
                       {"attempt": record.attempts, "message_id": message_id},
                       watch=watch, stall_after_s=settings.stall_after_s,
                       on_stall=lambda stage, seconds: fail_stalled(store, record, stage, seconds, exit=True)):
            execute(store, record, settings, watch)
        final = store.read_job(job_id)
        state = final.state.value if final else "gone"
        log.info("job %s: %s", job_id, state, extra={"state": state})
        return state
