"""One landmark job over every worker: its K(X, Z) row blocks as a Celery chord. A dense
job whose recurrent grids would take one worker longer than ``fan_out_dense_s``
(:func:`dense_fans_out`) runs its grids' row blocks the same way (``Z = X``).

    run_job ──(selection, then)── chord(group(rntk.block × B), rntk.continue_job) ── returns
    (the two tasks are in :mod:`worker.block_tasks`)
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
import shutil
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Sequence

from worker.celery_app import celery_app
from worker.jobs import JobRecord, JobState, Progress, Store
from worker.queue import fan_out_task_id
from worker.settings import BLOCK_TASK_NAME, CONTINUE_TASK_NAME, Settings

__all__ = ["ChordRunner", "dense_fans_out", "drop_work", "work_dir"]

log = logging.getLogger("rntk.fanout")


def work_dir(store: Store, job_id: str) -> Path:
    """The job's blocks and their inputs, kept across its tasks (and its attempts)."""
    return store.job_dir(job_id) / "work"


def drop_work(store: Store, job_id: str) -> None:
    shutil.rmtree(work_dir(store, job_id), ignore_errors=True)


def dense_fans_out(n_samples: int, steps: int, config: Any, settings: Settings) -> bool:
    """Whether a dense job's recurrent grids run as row blocks over the workers: their
    estimated seconds (:func:`rntk_core.evaluation.cost.grid_seconds`) pass ``fan_out_dense_s``."""
    from rntk_core.evaluation.cost import grid_seconds

    limit = settings.fan_out_dense_s
    return settings.fan_out_blocks and limit > 0 and not config.landmarks \
        and grid_seconds(n_samples, steps, config) > limit


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
            if on_block is not None:  # the attempt's own progress: overall fraction and ETA
                on_block(total - len(missing), total)
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
                                        overall=rec.progress.overall, eta_s=rec.progress.eta_s)

        self.store.update_job(job_id, fanned)
        app = self.celery
        header = group(app.signature(BLOCK_TASK_NAME, (job_id, message_id, name, start), immutable=True)
                       .set(task_id=fan_out_task_id(message_id, index))
                       for index, (name, start) in enumerate(missing))
        body = app.signature(CONTINUE_TASK_NAME, (job_id, message_id)).set(
            task_id=fan_out_task_id(message_id, "continue"))
        chord(header, app=app)(body)
        log.info("job %s: %d of %d blocks sent to the workers", job_id, len(missing), total,
                 extra={"job_id": job_id})
