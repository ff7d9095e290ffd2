"""One landmark job over every worker: its K(X, Z) row blocks as a Celery chord.

    run_job ──(selection, then)── chord(group(rntk.block × B), rntk.continue_job) ── returns
    rntk.block  (any worker): one zarr chunk per kernel, from memory-mapped rows
    rntk.continue_job (any worker): the same evaluation again, resumed: the scores and the
                                    blocks are on disk, so it fits, tests and reports

- No slot waits on its children: ``run_job`` returns once the chord is sent, and the
  continuation is a task of its own that the chord sends when the last block is stored (a
  counter in the result backend: Redis, or :mod:`worker.results` in the embedded mode).
- The blocks' inputs and stores live in ``jobs/<id>/work/`` on the data volume (the shared
  storage of a multi-host cluster). A block is idempotent: run twice (a redelivery after a
  killed worker), it writes the same chunk, and it skips a chunk that exists.
- Every message of a fan-out carries the job's ``message_id``: a block or continuation of
  a superseded attempt (the sweep re-ran the job) does nothing, and the sweep keeps a job
  alive while any of its blocks beats or waits in the broker's queue
  (:func:`worker.queue.fan_out_waiting`).
- A block that fails fails the job; a cancelled job's blocks do nothing (and the API
  revokes them where the broker has remote control).
- The continuation fills in any block that is still missing (a header counted twice, a
  lost one) in its own process, so it never loops or waits.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Sequence

from worker.celery_app import celery_app
from worker.jobs import JobError, JobRecord, JobState, Progress, Store
from worker.logs import job_context
from worker.queue import Heartbeat, StallWatch, fan_out_task_id
from worker.settings import BLOCK_TASK_NAME, CONTINUE_TASK_NAME, Settings, get_settings

__all__ = ["ChordRunner", "drop_work", "run_block", "continue_job", "work_dir"]

log = logging.getLogger("rntk.fanout")


def work_dir(store: Store, job_id: str) -> Path:
    """The job's blocks and their inputs, kept across its tasks (and its attempts)."""
    return store.job_dir(job_id) / "work"


def drop_work(store: Store, job_id: str) -> None:
    shutil.rmtree(work_dir(store, job_id), ignore_errors=True)


class ChordRunner:
    """A :class:`~rntk_core.evaluation.scale.blocks.BlockRunner` that sends the missing
    blocks as a chord and ends the calling task (``FannedOut``); resumed (``results``: the
    blocks' return values), it counts them per worker and computes what is still missing."""

    needs_files = True

    def __init__(self, store: Store, record: JobRecord, settings: Settings, worker: str,
                 results: Sequence[Any] | None = None, celery: Any = None) -> None:
        self.store, self.record, self.settings, self.worker = store, record, settings, worker
        self.results, self.celery = results, celery or celery_app

    def run(self, jobs: Sequence[Any], inputs: Any, *, on_block: Callable[[int, int], None] | None = None,
            check_cancel: Callable[[], None] | None = None) -> dict[str, int]:
        from rntk_core.evaluation.scale.blocks import FannedOut, run_here

        missing = [(job.store.path.name, start) for job in jobs for start, _ in job.store.missing()]
        total = sum(len(job.store.plan.blocks(job.store.n_rows)) for job in jobs)
        if self.results is None and len(missing) > 1:
            self._send(missing, total)
            raise FannedOut(len(missing))
        by_worker = Counter(result["worker"] for result in self.results or []
                            if isinstance(result, dict) and result.get("computed"))
        here = run_here(jobs, inputs, on_block=on_block, check_cancel=check_cancel)
        if here:
            by_worker[self.worker] += here
        return dict(by_worker)

    def _send(self, missing: list[tuple[str, int]], total: int) -> None:
        from celery import chord, group

        job_id, message_id = self.record.id, self.record.message_id

        def fanned(rec: JobRecord) -> None:  # before the send: a fast block's count comes after
            if rec.state == JobState.running and rec.message_id == message_id:
                rec.progress = Progress(stage="blocks", done=total - len(missing), total=total,
                                        overall=rec.progress.overall, eta_s=None)

        self.store.update_job(job_id, fanned)
        header = group(run_block.si(job_id, message_id, name, start).set(task_id=fan_out_task_id(message_id, index))
                       for index, (name, start) in enumerate(missing))
        body = continue_job.s(job_id, message_id).set(task_id=fan_out_task_id(message_id, "continue"))
        chord(header, app=self.celery)(body)
        log.info("job %s: %d of %d blocks sent to the workers", job_id, len(missing), total,
                 extra={"job_id": job_id})


def _current(store: Store, job_id: str, message_id: str) -> JobRecord | None:
    """The job's record if this attempt still runs it, else None."""
    record = store.read_job(job_id)
    if record is None or record.deleted or record.state != JobState.running or record.message_id != message_id:
        return None
    return record


def _count_blocks(store: Store, job_id: str, message_id: str) -> None:
    """The job's progress: blocks written (chunks that exist) over all its blocks."""
    from rntk_core.evaluation.scale.blocks import BlockStore

    done = total = 0
    for path in sorted(work_dir(store, job_id).glob("*.zarr")):
        blocks = BlockStore.open(path)
        done += blocks.blocks_done()
        total += len(blocks.plan.blocks(blocks.n_rows))

    def counted(rec: JobRecord) -> None:
        if rec.state == JobState.running and rec.message_id == message_id and rec.progress.stage == "blocks":
            rec.progress = Progress(stage="blocks", done=max(done, rec.progress.done), total=total,
                                    overall=rec.progress.overall, eta_s=None)

    store.update_job(job_id, counted)


def _stop(store: Store, job_id: str, message_id: str, state: JobState, error: JobError | None = None) -> None:
    def change(rec: JobRecord) -> None:
        if rec.state == JobState.running and rec.message_id == message_id:
            rec.move_to(state, error=error, progress=rec.progress.model_copy(
                update={"stage": "cancelled" if state == JobState.cancelled else rec.progress.stage}))

    store.update_job(job_id, change)


@celery_app.task(name=BLOCK_TASK_NAME, bind=True, ignore_result=False)
def run_block(self: Any, job_id: str, message_id: str, name: str, start: int) -> dict:
    """One block of a fanned-out job: rows ``[start, start + block_rows)`` of the store
    ``work/<name>``. Returns the worker's name and whether it computed the block."""
    settings = get_settings()
    store = Store(settings.data_dir)
    result = {"worker": self.request.hostname or socket.gethostname(), "computed": False}
    with job_context(job_id):
        record = _current(store, job_id, message_id)
        if record is None:
            return result
        if record.cancel_requested or store.cancel_requested(job_id):
            _stop(store, job_id, message_id, JobState.cancelled)
            return result
        from worker.tasks import use_compile_cache

        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
        use_compile_cache(settings)
        try:
            with Heartbeat(store, job_id, settings.heartbeat_s, {"block": f"{name}@{start}", "message_id": message_id}):
                from rntk_core.evaluation.scale.blocks import compute_stored_block

                result["computed"] = compute_stored_block(work_dir(store, job_id) / name, int(start),
                                                          memory_budget=settings.memory_budget_bytes)
            _count_blocks(store, job_id, message_id)
        except Exception as exc:  # the job's failure, reported once; the chord still completes
            if _current(store, job_id, message_id) is not None:
                from worker.tasks import scrub

                log.exception("job %s: block %s@%s failed", job_id, name, start)
                _stop(store, job_id, message_id, JobState.failed, JobError(
                    type=type(exc).__name__, message=f"block {name}@{start}: " + (scrub(str(exc), store) or "")))
        return result


@celery_app.task(name=CONTINUE_TASK_NAME, bind=True)
def continue_job(self: Any, results: list, job_id: str, message_id: str) -> str:
    """The chord's body: the job's evaluation again, resumed from its work folder."""
    from worker.tasks import execute, fail_stalled

    settings = get_settings()
    store = Store(settings.data_dir)
    with job_context(job_id):
        record = _current(store, job_id, message_id)
        if record is None:
            final = store.read_job(job_id)
            if final is None or final.state.terminal:
                drop_work(store, job_id)
            return "skipped"
        watch = StallWatch()
        with Heartbeat(store, job_id, settings.heartbeat_s, {"attempt": record.attempts, "message_id": message_id},
                       watch=watch, stall_after_s=settings.stall_after_s,
                       on_stall=lambda stage, seconds: fail_stalled(store, record, stage, seconds, exit=True)):
            execute(store, record, settings, watch, resumed=list(results or []),
                    worker=self.request.hostname or socket.gethostname())
        final = store.read_job(job_id)
        return final.state.value if final else "gone"
