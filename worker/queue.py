"""Heartbeats, enqueueing, and the sweep that re-runs dead jobs and re-sends lost messages.

A running job's worker refreshes ``jobs/<id>/heartbeat.json`` every ``heartbeat_s``. The
sweep runs every ``sweep_s`` in the API process and in every worker's main process (so
recovery does not depend on the API), one at a time under :class:`SweepLock`; it then:

(a) re-enqueues a ``running`` job whose heartbeat is older than ``dead_after_s`` (its worker
    was killed, even with kill -9 of the whole process tree), with a new message id; once
    ``attempts`` reached ``max_attempts`` it fails the job with a clear error instead;
(b) re-sends a ``queued`` job whose message was never accepted by the broker
    (``enqueued_at`` is null, e.g. it was submitted while the broker was down);
(c) re-sends, with a new message id, a ``queued`` job whose message is no longer waiting in
    the broker's queue, sent and delivered (``enqueued_at``, ``delivered_at``: stamped by the
    worker's main process on receipt) over ``unclaimed_after_s`` ago, and still not claimed:
    its worker died between delivery and claim, and Redis would hold the message unacked for
    hours (the visibility timeout is longer than the job time limit).

Exactly once: every send carries the record's current ``message_id`` as the Celery task id;
a task whose id is not the record's (a superseded message that the broker redelivers
later), or whose job already finished, does nothing (see :func:`worker.tasks.claim`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

from rntk_core.devices import device_memory
from worker.jobs import JobError, JobRecord, JobState, Progress, Requeue, Store, file_lock, now
from worker.settings import TASK_NAME, Settings

__all__ = ["enqueue", "fan_out_task_id", "fan_out_waiting", "heartbeat_age", "sweep", "waiting_message_ids", "Heartbeat", "StallWatch",
           "SweepLock", "Sweeper"]

log = logging.getLogger("rntk.recovery")

#: A temporary upload or commit folder untouched this long belongs to no live request.
STALE_TMP_S = 3600.0
#: How often the embedded mode's result files are cleaned of expired entries.
RESULTS_CLEANUP_S = 3600.0


def enqueue(store: Store, celery: Any, settings: Settings, job_id: str) -> bool:
    """Send the job's current message; record ``enqueued_at`` or the send error. True if sent."""
    record = store.read_job(job_id)
    if record is None or record.state != JobState.queued:
        return False
    message_id = record.message_id
    try:
        celery.send_task(TASK_NAME, args=[job_id], task_id=message_id, queue=settings.queue,
                         retry=False)
    except Exception as exc:  # broker down: the sweep re-sends it later
        log.warning("could not enqueue job %s: %s", job_id, exc)
        error = f"{type(exc).__name__}: {exc}"[:500]

        def failed(rec: JobRecord) -> None:
            rec.enqueue_error = error

        store.update_job(job_id, failed)
        return False

    def sent(rec: JobRecord) -> None:
        if rec.message_id == message_id:
            rec.enqueued_at = now()
            rec.enqueue_error = None

    store.update_job(job_id, sent)
    return True


def heartbeat_age(store: Store, record: JobRecord, beat: dict | None = None) -> float:
    """Seconds since the running job last showed life: its heartbeat (``beat`` when the caller
    has read it) or its start, whichever is later (a re-claimed job starts before its first
    beat replaces the dead attempt's)."""
    beat = store.read_heartbeat(record.id) if beat is None else beat
    return now() - max(float((beat or {}).get("at") or 0.0), float(record.started_at or record.created_at or 0.0))


def sweep(store: Store, celery: Any, settings: Settings) -> dict[str, list[str]]:
    """One pass over the active job records; returns the ids it requeued, failed, re-sent and
    redelivered."""
    actions: dict[str, list[str]] = {"requeued": [], "failed": [], "resent": [], "redelivered": []}
    actions["tmp_removed"] = store.sweep_tmp(STALE_TMP_S)
    if actions["tmp_removed"]:
        log.warning("removed %d stale temporary upload(s) from tmp/", len(actions["tmp_removed"]))
    unclaimed: list[JobRecord] = []
    waiting: set[str] | None = None
    for record in list(store.active_jobs()):
        job_id = record.id
        if record.deleted:
            continue
        stale = record.state == JobState.running and heartbeat_age(store, record) > settings.dead_after_s
        if stale and record.progress.stage == "blocks":
            # fanned out (worker.fanout): alive while a block or its continuation waits in
            # line behind other jobs; an unreadable broker is no proof of death either
            waiting = waiting_message_ids(celery, settings) if waiting is None else waiting
            if waiting is None or fan_out_waiting(record.message_id, waiting):
                continue
        if stale:
            outcome: dict[str, str] = {}

            def revive(rec: JobRecord) -> None:
                if rec.state != JobState.running or heartbeat_age(store, rec) <= settings.dead_after_s:
                    return  # it moved on meanwhile
                if rec.attempts >= settings.max_attempts:
                    rec.move_to(JobState.failed, error=JobError(
                        type="WorkerLost",
                        message=f"the job's worker died during each of its {rec.attempts} attempts "
                                "(killed, out of memory, or crashed); giving up after "
                                f"{settings.max_attempts} attempts"))
                    outcome["action"] = "failed"
                else:
                    rec.move_to(JobState.queued, message_id=uuid.uuid4().hex, enqueued_at=None,
                                progress=Progress(stage="requeued"))
                    rec.requeues = [*rec.requeues, Requeue(
                        at=now(), reason=f"no heartbeat for over {settings.dead_after_s:g} s")]
                    outcome["action"] = "requeued"

            store.update_job(job_id, revive)
            if outcome.get("action") == "requeued":
                log.warning("job %s: worker lost, requeued", job_id, extra={"job_id": job_id})
                enqueue(store, celery, settings, job_id)
                actions["requeued"].append(job_id)
            elif outcome.get("action") == "failed":
                log.warning("job %s: worker lost too often, failed", job_id, extra={"job_id": job_id})
                actions["failed"].append(job_id)
        elif record.state == JobState.queued and record.enqueued_at is None:
            if now() - record.created_at > 2.0:  # leave the API's own send alone
                if enqueue(store, celery, settings, job_id):
                    actions["resent"].append(job_id)
        elif record.state == JobState.queued and \
                now() - max(record.enqueued_at, record.delivered_at or 0.0) > settings.unclaimed_after_s:
            unclaimed.append(record)
    if unclaimed:
        actions["redelivered"] = _resend_unclaimed(store, celery, settings, unclaimed)
    return actions


def _resend_unclaimed(store: Store, celery: Any, settings: Settings, records: list[JobRecord]) -> list[str]:
    """(c): re-send the queued jobs whose message is no longer waiting in the broker's queue."""
    waiting = waiting_message_ids(celery, settings)
    if waiting is None:  # the broker cannot be read now; try again next sweep
        return []
    resent = []
    for record in records:
        if record.message_id in waiting:
            continue  # still in line behind other jobs
        outcome: dict[str, bool] = {}

        def supersede(rec: JobRecord) -> None:
            # only if nothing happened meanwhile: a claim changes the state, a send or a
            # delivery its time
            if rec.state != JobState.queued or rec.message_id != record.message_id \
                    or rec.enqueued_at != record.enqueued_at or rec.delivered_at != record.delivered_at:
                return
            rec.message_id, rec.enqueued_at = uuid.uuid4().hex, None
            rec.requeues = [*rec.requeues, Requeue(
                at=now(), reason=f"delivered but not claimed by a worker within {settings.unclaimed_after_s:g} s")]
            outcome["superseded"] = True

        store.update_job(record.id, supersede)
        if outcome:
            log.warning("job %s: delivered but never claimed, re-sent", record.id, extra={"job_id": record.id})
            enqueue(store, celery, settings, record.id)
            resent.append(record.id)
    return resent


def fan_out_task_id(message_id: str, index: int | str) -> str:
    """The task id of part ``index`` (a block's number, or "continue") of an attempt's fan-out."""
    return f"{message_id}.{index}"


def fan_out_waiting(message_id: str, waiting: set[str]) -> bool:
    """Whether a task of the attempt ``message_id``'s fan-out (a block, or the chord's
    continuation: task ids ``<message_id>.<part>``) waits in the broker's queue."""
    prefix = f"{message_id}."
    return any(task_id.startswith(prefix) for task_id in waiting)


def waiting_message_ids(celery: Any, settings: Settings) -> set[str] | None:
    """The task ids of the messages still waiting in the broker's queue (not delivered yet).

    Redis: the queue's lists (one per priority step), read with a plain client and the key
    prefix added here (kombu's prefixing client does not prefix LRANGE); embedded: the
    filesystem transport's message files. None when the broker cannot be read.
    """
    try:
        raw: list[bytes] = []
        with celery.connection_for_read() as connection:
            channel = connection.default_channel
            if settings.embedded:
                for path in Path(channel.data_folder_in).glob(f"*.{settings.queue}.msg"):
                    with contextlib.suppress(FileNotFoundError):  # delivered while we look
                        raw.append(path.read_bytes())
            else:
                import redis

                keys = [settings.redis_key_prefix + channel._q_for_pri(settings.queue, priority)
                        for priority in channel.priority_steps]
                with redis.Redis.from_url(settings.broker_url, socket_connect_timeout=3, socket_timeout=10) as client:
                    for key in keys:
                        raw += client.lrange(key, 0, -1)
        return {json.loads(item)["headers"]["id"] for item in raw}
    except Exception as exc:  # broker down, or a transport without lists
        log.warning("cannot read the broker's queue: %s", exc)
        return None


class StallWatch:
    """When the job's progress last moved (a new stage, or a new count within one), for the
    heartbeat's watchdog. Thread-safe enough: one writer (the job), one reader (the beat)."""

    def __init__(self) -> None:
        self.stage = "starting"
        self._position: tuple[str, int, int] | None = None
        self.moved_at = time.monotonic()

    def moved(self, stage: str, done: int, total: int) -> None:
        position = (stage, int(done), int(total))
        if position != self._position:
            self._position, self.stage, self.moved_at = position, stage, time.monotonic()

    def still_for(self) -> float:
        return time.monotonic() - self.moved_at


class Heartbeat:
    """A daemon thread that refreshes the job's heartbeat file every ``interval`` seconds.

    The file carries the worker's host, pids and attempt, and the job's device memory in use
    where JAX can report it (:func:`rntk_core.devices.device_memory`, which never imports JAX:
    the worker's main process stays free of it), for ``/metrics``.

    With a :class:`StallWatch` and ``stall_after_s`` > 0 it is also the job's watchdog: a job
    whose progress has not moved for that long while this thread still beats (a deadlock in
    native code leaves the beat alive and the job silent) gets ``on_stall(stage, seconds)``
    once, from this thread, and the beat stops.
    """

    def __init__(self, store: Store, job_id: str, interval: float, info: dict, *,
                 watch: StallWatch | None = None, stall_after_s: float = 0.0,
                 on_stall: Callable[[str, float], None] | None = None) -> None:
        self.store, self.job_id, self.interval = store, job_id, interval
        self.info = {**info, "pid": os.getpid(), "ppid": os.getppid(), "host": socket.gethostname()}
        self.watch, self.stall_after_s, self.on_stall = watch, stall_after_s, on_stall
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job_id}", daemon=True)

    def beat(self) -> None:
        memory = device_memory()
        self.store.write_heartbeat(self.job_id, {**self.info, "device_memory": memory} if memory else self.info)

    def stalled(self) -> bool:
        return (self.watch is not None and self.on_stall is not None and self.stall_after_s > 0
                and self.watch.still_for() > self.stall_after_s)

    def _run(self) -> None:
        # Checks at least every few seconds, so a short stall limit (tests) is kept closely.
        wait = min(self.interval, max(0.1, self.stall_after_s / 4)) if self.stall_after_s > 0 else self.interval
        last_beat = time.monotonic()
        while not self._stop.wait(wait):
            if self.stalled():
                log.error("job %s: no progress in stage %r for %.0f s; failing it as stalled", self.job_id,
                          self.watch.stage, self.watch.still_for(), extra={"job_id": self.job_id})
                self.on_stall(self.watch.stage, self.watch.still_for())
                return
            if time.monotonic() - last_beat < 0.9 * self.interval:  # a wait of `interval` may end a hair early
                continue
            last_beat = time.monotonic()
            try:
                self.beat()
            except OSError as exc:  # a full disk must not kill the job; the sweep may rerun it
                log.warning("heartbeat of job %s failed: %s", self.job_id, exc, extra={"job_id": self.job_id})

    def __enter__(self) -> "Heartbeat":
        self.beat()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class SweepLock:
    """One sweeper per sweep period in the whole deployment, wherever sweepers run.

    Broker mode (Redis): a key set with NX and a lease of 90% of a sweep period, never
    released early, so the deployment sweeps about once per period whatever the number of
    workers, and a holder that dies blocks nobody past its lease (a sweep longer than the
    lease may overlap the next one: harmless, see below). Embedded mode: an ``flock``
    on ``broker/sweep.lock`` (API and worker share the machine). Other brokers: no lock (the
    sweep's changes are made under each job's lock, so two sweeps are merely redundant).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.key = f"{settings.redis_key_prefix}rntk:sweep-lock:{settings.queue}"
        self._redis = None

    def _client(self) -> Any:
        if self._redis is None:
            import redis

            self._redis = redis.Redis.from_url(self.settings.broker_url, socket_connect_timeout=3,
                                               socket_timeout=5)
        return self._redis

    @contextlib.contextmanager
    def hold(self) -> Iterator[bool]:
        """Yields whether this process may sweep now."""
        settings = self.settings
        if settings.embedded:
            with file_lock(settings.broker_dir / "sweep.lock", blocking=False) as held:
                yield held
        elif settings.broker_url.startswith(("redis://", "rediss://", "unix://")):
            lease_ms = max(100, int(settings.sweep_s * 900))
            yield bool(self._client().set(self.key, f"{socket.gethostname()}:{os.getpid()}",
                                          nx=True, px=lease_ms))
        else:
            yield True


class Sweeper:
    """Runs :func:`sweep` every ``settings.sweep_s`` seconds in a daemon thread, when it holds
    the :class:`SweepLock`. The API runs one, and so does every worker's main process."""

    def __init__(self, store: Store, celery: Any, settings: Settings) -> None:
        self.store, self.celery, self.settings = store, celery, settings
        self.lock = SweepLock(settings)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rntk-sweeper", daemon=True)

    def sweep_once(self) -> dict[str, list[str]] | None:
        """One sweep if no other process is sweeping; None if it was another's turn."""
        with self.lock.hold() as mine:
            return sweep(self.store, self.celery, self.settings) if mine else None

    def _run(self) -> None:
        cleaned = time.monotonic()
        while not self._stop.wait(self.settings.sweep_s):
            try:
                self.sweep_once()
            except Exception:  # keep sweeping; one bad record or a broker outage must not stop recovery
                log.exception("recovery sweep failed")
            if self.settings.embedded and time.monotonic() - cleaned > RESULTS_CLEANUP_S:
                # the embedded result backend's files (chord results, counters) past
                # result_expires; Redis expires its own keys
                cleaned = time.monotonic()
                try:
                    self.celery.backend.cleanup()
                except Exception:
                    log.exception("result backend clean-up failed")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
