"""The tasks of a fanned-out job (:mod:`worker.fanout`): ``rntk.block``, one K(X, Z) row
block into its zarr chunk, and ``rntk.continue_job``, the chord's body that resumes the job.
Apart from :mod:`worker.fanout` so that :mod:`worker.tasks` can send them without an import
cycle (they call back into it)."""

from __future__ import annotations

import logging
import socket
from typing import Any

from worker.celery_app import celery_app
from worker.fanout import drop_work, work_dir
from worker.jax_env import prepare_jax
from worker.jobs import JobError, JobRecord, JobState, Store
from worker.logs import job_context
from worker.queue import Heartbeat, StallWatch
from worker.settings import BLOCK_TASK_NAME, CONTINUE_TASK_NAME, get_settings
from worker.tasks import blocks_progress, execute, fail_stalled, scrub

__all__ = ["continue_job", "run_block"]

log = logging.getLogger("rntk.fanout")


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
            rec.progress = blocks_progress(rec, max(done, rec.progress.done), total)

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
        prepare_jax(settings)
        try:
            with Heartbeat(store, job_id, settings.heartbeat_s, {"block": f"{name}@{start}", "message_id": message_id}):
                from rntk_core.evaluation.scale.blocks import compute_stored_block

                result["computed"] = compute_stored_block(work_dir(store, job_id) / name, int(start),
                                                          memory_budget=settings.memory_budget_bytes)
            _count_blocks(store, job_id, message_id)
        except Exception as exc:  # the job's failure, reported once; the chord still completes
            if _current(store, job_id, message_id) is not None:
                log.exception("job %s: block %s@%s failed", job_id, name, start)
                _stop(store, job_id, message_id, JobState.failed, JobError(
                    type=type(exc).__name__, message=f"block {name}@{start}: " + (scrub(str(exc), store) or "")))
        return result


@celery_app.task(name=CONTINUE_TASK_NAME, bind=True)
def continue_job(self: Any, results: list, job_id: str, message_id: str) -> str:
    """The chord's body: the job's evaluation again, resumed from its work folder."""
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
