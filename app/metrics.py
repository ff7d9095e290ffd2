"""Prometheus metrics, computed per scrape from the job records and heartbeats on disk
(records unchanged since the last scrape are not parsed again: :meth:`Store.snapshot`).

The records are the service's state (see :mod:`worker.jobs`), so every scrape is a fresh,
consistent picture that needs no shared in-memory counters between the API and the
workers. What ``GET /metrics`` exposes:

- ``rntk_jobs{state}``: jobs by state; ``rntk_queue_depth``: queued jobs.
- ``rntk_job_duration_seconds{state}``: run time of finished jobs (histogram).
- ``rntk_job_phase_duration_seconds{phase}``: time spent in each progress stage of a job
  (``loading``, ``kernels``, ``validation fits``, ``test folds``, ``writing``, ...), from the
  record's ``phase_seconds`` written by the worker (histogram over jobs).
- ``rntk_job_heartbeat_age_seconds{job_id,worker}``: seconds since each running job's
  worker last showed life; ``rntk_worker_last_seen_timestamp_seconds{worker}``: the latest
  heartbeat (or job end) seen from each worker host.
- ``rntk_gpu_memory_bytes_in_use{worker,device}``: device memory in use by running jobs, as
  JAX's ``memory_stats()`` reports it in the heartbeat. Absent where the worker cannot
  read it (CPU devices).
- ``rntk_worker_seconds_per_cell{worker,device}``, ``rntk_worker_calibration_factor{worker,device,rate}``:
  each live worker's rates for the cost model, measured when it started
  (:mod:`worker.calibration`; ``rate`` is ``grid`` or ``svm_fit``, the factor over the 2-core CPU).
- ``rntk_job_requeues_total``: jobs re-queued after their worker died mid-job;
  ``rntk_jobs_retried``: jobs that needed more than one attempt;
  ``rntk_jobs_worker_lost_total``: jobs failed because their worker died too often.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from worker.jobs import JobState, Store, now

__all__ = ["DURATION_BUCKETS", "PHASE_BUCKETS", "render_metrics"]

DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 12 * 3600, float("inf"))
PHASE_BUCKETS = (0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, float("inf"))


def render_metrics(store: Store, workers: list[dict] | None = None) -> bytes:
    """The Prometheus text exposition of the store's current state; ``workers``: the live
    workers' calibrations (:func:`worker.calibration.workers_view`)."""
    registry = CollectorRegistry()
    jobs = Gauge("rntk_jobs", "Jobs by state", ["state"], registry=registry)
    depth = Gauge("rntk_queue_depth", "Jobs queued and not yet running", registry=registry)
    durations = Histogram("rntk_job_duration_seconds", "Run time of finished jobs (started to finished)",
                          ["state"], buckets=DURATION_BUCKETS, registry=registry)
    phases = Histogram("rntk_job_phase_duration_seconds",
                       "Time a job spent in each progress stage (per job and phase)",
                       ["phase"], buckets=PHASE_BUCKETS, registry=registry)
    beat_age = Gauge("rntk_job_heartbeat_age_seconds",
                     "Seconds since a running job's worker last wrote its heartbeat",
                     ["job_id", "worker"], registry=registry)
    last_seen = Gauge("rntk_worker_last_seen_timestamp_seconds",
                      "Unix time of the latest heartbeat (or job end) seen from each worker",
                      ["worker"], registry=registry)
    gpu_memory = Gauge("rntk_gpu_memory_bytes_in_use",
                       "Device memory in use by a running job (JAX memory_stats bytes_in_use)",
                       ["worker", "device"], registry=registry)
    requeues = Counter("rntk_job_requeues", "Jobs re-queued because their worker died mid-job",
                       registry=registry)
    retried = Gauge("rntk_jobs_retried", "Jobs that needed more than one attempt", registry=registry)
    worker_lost = Counter("rntk_jobs_worker_lost", "Jobs failed because their worker died on every attempt",
                          registry=registry)

    counts = dict.fromkeys((state.value for state in JobState), 0)
    seen: dict[str, float] = {}
    requeue_count = retried_count = lost_count = 0
    for record in store.snapshot():
        if record.deleted:
            continue
        state = record.state.value
        counts[state] = counts.get(state, 0) + 1
        if record.started_at and record.finished_at:
            durations.labels(state).observe(max(0.0, record.finished_at - record.started_at))
        for phase, seconds in record.phase_seconds.items():
            if isinstance(seconds, (int, float)):
                phases.labels(phase).observe(max(0.0, float(seconds)))
        requeue_count += len(record.requeues)
        retried_count += record.attempts > 1
        lost_count += (record.error.type if record.error else None) == "WorkerLost"
        worker = record.worker
        if worker and record.finished_at:
            seen[worker] = max(seen.get(worker, 0.0), float(record.finished_at))
        if state == "running":
            beat = _heartbeat(store, record.id)
            host = str(beat.get("host") or worker or "unknown")
            at = float(beat.get("at") or record.started_at or 0.0)
            beat_age.labels(record.id, host).set(max(0.0, now() - at))
            seen[host] = max(seen.get(host, 0.0), at)
            for device in beat.get("device_memory") or []:
                if isinstance(device, dict) and isinstance(device.get("bytes_in_use"), (int, float)):
                    gpu_memory.labels(host, str(device.get("device"))).set(device["bytes_in_use"])
    per_cell = Gauge("rntk_worker_seconds_per_cell",
                     "A live worker's Gram grid seconds per cell, measured at its start",
                     ["worker", "device"], registry=registry)
    factor = Gauge("rntk_worker_calibration_factor", "A live worker's rate over the cost model's 2-core CPU constant",
                   ["worker", "device", "rate"], registry=registry)
    for view in workers or []:
        labels = (str(view.get("worker")), str(view.get("device")))
        for gauge, value, extra in ((per_cell, view.get("seconds_per_cell"), ()),
                                    (factor, view.get("factor"), ("grid",)),
                                    (factor, view.get("fit_factor"), ("svm_fit",))):
            if isinstance(value, (int, float)):
                gauge.labels(*labels, *extra).set(value)
    for state, count in counts.items():
        jobs.labels(state).set(count)
    depth.set(counts.get("queued", 0))
    for host, at in seen.items():
        last_seen.labels(host).set(at)
    requeues.inc(requeue_count)
    retried.set(retried_count)
    worker_lost.inc(lost_count)
    Gauge("rntk_metrics_generated_timestamp_seconds", "When this scrape was computed",
          registry=registry).set(time.time())
    return generate_latest(registry)


def _heartbeat(store: Store, job_id: str) -> dict:
    try:
        return store.read_heartbeat(job_id) or {}
    except (KeyError, ValueError, OSError):  # a bad id, or a torn read on a slow NFS mount
        return {}
