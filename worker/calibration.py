"""Each worker's own cost-model rates: measured once when it starts, shared with the API.

The cost model (:mod:`rntk_core.evaluation.cost`) assumes a 2-core CPU, so its estimates of a
GPU worker's jobs were far too long. So:

- **measured** in the worker's pool child (``worker_process_init``: JAX may load only there,
  never in the main process), in a background thread, so the worker is ready at once
  (:func:`start`, :func:`rntk_core.evaluation.calibrate.measure`: about 2 s on a 2-core CPU
  after JAX's import). A task that arrives meanwhile waits for it (:func:`wait`, at most
  :func:`wait_s`) rather than share the device and skew both. A later child of the same
  worker (recycled after ``child_tasks``) reuses the record instead of measuring again.
- **stored** per worker, named by its Celery node name (``rntk-worker-<pid>@<host>``, one per
  GPU): Redis mode, the JSON in ``{prefix}rntk:worker:{queue}:{name}`` with a TTL and the name
  in the set ``{prefix}rntk:workers:{queue}`` (named like :class:`worker.queue.SweepLock`'s
  key); otherwise ``data_dir/broker/workers/<name>.json``, whose mtime is its age. The main
  process refreshes it every ``heartbeat_s`` (:class:`WorkerBeat`, like a job's
  :class:`worker.queue.Heartbeat`) and removes it at shutdown; a worker killed outright drops
  out after ``dead_after_s`` (:func:`ttl_s`), as a job's silent heartbeat does.
- **used** for the running job's ETAs (:func:`local_constants`, in ``worker.tasks``), and for
  the API's estimate at submission and its admission (:func:`fleet_constants`).

This module stays free of JAX at import: the main process and the API import it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from typing import Any

from rntk_core.evaluation.cost import CostConstants
from rntk_core.evaluation.files import atomic_write_json, read_json
from worker.jax_env import prepare_jax
from worker.settings import Settings

__all__ = ["CalibrationStore", "WorkerBeat", "fleet_constants", "local_constants", "start", "ttl_s", "wait",
           "wait_s", "workers_view"]

log = logging.getLogger("rntk.calibration")


def ttl_s(settings: Settings) -> float:
    """How long a record outlives its worker's last beat."""
    return max(settings.dead_after_s, 3 * settings.heartbeat_s)


def wait_s(settings: Settings) -> float:
    """The longest a task waits for its child's calibration: well under ``unclaimed_after_s``,
    since a job waits before its claim and the sweep would re-send it past that."""
    return min(30.0, settings.unclaimed_after_s / 2)


def _uses_redis(settings: Settings) -> bool:
    return not settings.embedded and settings.broker_url.startswith(("redis://", "rediss://", "unix://"))


def _file_name(name: str) -> str:
    return re.sub(r"[^\w@.-]", "_", name)[:200] + ".json"


class CalibrationStore:
    """The workers' calibration records, in Redis (broker mode) or in files (see the module)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.folder = settings.broker_dir / "workers"
        prefix = f"{settings.redis_key_prefix}rntk:"
        self.index = f"{prefix}workers:{settings.queue}"
        self._key_prefix = f"{prefix}worker:{settings.queue}:"
        self._redis = None

    def _client(self) -> Any:
        if self._redis is None:
            import redis

            self._redis = redis.Redis.from_url(self.settings.broker_url, socket_connect_timeout=2, socket_timeout=5)
        return self._redis

    def key(self, name: str) -> str:
        return self._key_prefix + name

    def write(self, name: str, record: dict) -> None:
        ttl = ttl_s(self.settings)
        if _uses_redis(self.settings):
            with self._client().pipeline() as pipe:  # the key before its name: a reader never drops it
                pipe.set(self.key(name), json.dumps(record), px=int(ttl * 1000))
                pipe.sadd(self.index, name)
                pipe.pexpire(self.index, int(ttl * 1000))
                pipe.execute()
        else:
            atomic_write_json(self.folder / _file_name(name), record)

    def read(self, name: str) -> dict | None:
        """This worker's record, live or not yet expired; None if there is none."""
        if _uses_redis(self.settings):
            raw = self._client().get(self.key(name))
            return json.loads(raw) if raw else None
        path = self.folder / _file_name(name)
        try:
            return read_json(path) if time.time() - path.stat().st_mtime <= ttl_s(self.settings) else None
        except (FileNotFoundError, ValueError):
            return None

    def refresh(self, name: str) -> None:
        """The worker is alive: its record's TTL starts again (no-op before it is written)."""
        ttl = ttl_s(self.settings)
        if _uses_redis(self.settings):
            with self._client().pipeline() as pipe:
                pipe.pexpire(self.key(name), int(ttl * 1000))
                pipe.pexpire(self.index, int(ttl * 1000))
                pipe.execute()
            return
        try:
            os.utime(self.folder / _file_name(name))
        except FileNotFoundError:
            pass

    def remove(self, name: str) -> None:
        if _uses_redis(self.settings):
            with self._client().pipeline() as pipe:
                pipe.delete(self.key(name))
                pipe.srem(self.index, name)
                pipe.execute()
            return
        (self.folder / _file_name(name)).unlink(missing_ok=True)

    def alive(self) -> list[dict]:
        """The records of the workers alive now (refreshed within :func:`ttl_s`), by name."""
        if _uses_redis(self.settings):
            client = self._client()
            names = sorted(name.decode() for name in client.smembers(self.index))
            values = client.mget([self.key(name) for name in names]) if names else []
            gone = [name for name, value in zip(names, values) if value is None]
            if gone:
                client.srem(self.index, *gone)
            return [json.loads(value) for value in values if value is not None]
        records, limit = [], ttl_s(self.settings)
        for path in sorted(self.folder.glob("*.json")):
            try:
                if time.time() - path.stat().st_mtime <= limit:
                    records.append(read_json(path))
            except (FileNotFoundError, ValueError):  # removed meanwhile, or torn on a slow mount
                continue
        return [record for record in records if isinstance(record, dict)]

    def drop_expired(self) -> None:
        """Files of workers gone for good (killed: no shutdown removed them); Redis expires its own."""
        if _uses_redis(self.settings):
            return
        limit = ttl_s(self.settings)
        for path in self.folder.glob("*.json"):
            try:
                if time.time() - path.stat().st_mtime > limit:
                    path.unlink()
            except FileNotFoundError:
                pass

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()
            self._redis = None


def fleet_constants(settings: Settings) -> CostConstants:
    """The rates for a job not yet on a worker: the slowest live worker's, rate by rate.

    The slowest, not the median: any worker on the queue may take the job, and admission
    (``max_job_seconds``) and the time shown at submission must hold wherever it lands; the
    worker that runs it then gives ETAs with its own rates. Today's 2-core CPU constants
    when no worker has recorded one (or the records cannot be read).
    """
    store = CalibrationStore(settings)
    try:
        records = [CostConstants.from_calibration(record) for record in store.alive()]
    except Exception as exc:  # Redis down: the estimate must not fail the request
        log.warning("cannot read the workers' calibration: %s", exc)
        records = []
    finally:
        store.close()
    if not records:
        return CostConstants()
    basis = records[0].basis if len(records) == 1 else f"the slowest of {len(records)} calibrated workers"
    return CostConstants(max(r.seconds_per_cell for r in records),
                         max(r.seconds_per_fit_sample2 for r in records), basis)


# ----------------------------------------------------------------------------- the pool child


class _Local:
    """This pool child's calibration: its own name, the record, and whether it is settled."""

    name: str | None = None
    record: dict | None = None
    thread: threading.Thread | None = None
    done = threading.Event()


def start(settings: Settings, name: str) -> None:
    """Measure (or reuse this worker's record) in a background thread of this pool child."""
    _Local.name, _Local.record, _Local.done = name, None, threading.Event()
    _Local.thread = threading.Thread(target=_calibrate, args=(settings, name), name="rntk-calibration",
                                     daemon=True)
    _Local.thread.start()


def _calibrate(settings: Settings, name: str) -> None:
    store = CalibrationStore(settings)
    try:
        known = store.read(name)
        if known is not None and known.get("pid") == os.getppid():  # an earlier child of this worker
            _Local.record = known
            return
        prepare_jax(settings)
        from rntk_core.evaluation.calibrate import measure

        record = {**measure(settings.memory_budget_bytes), "worker": name, "pid": os.getppid()}
        _Local.record = record
        store.write(name, record)
        log.info("calibrated on %s: %.3g s per grid cell (%.3g x the 2-core CPU), %.3g x its SVM fits, "
                 "measured in %.1f s", record["device"], record["seconds_per_cell"], record["factor"],
                 record["fit_factor"], record["measure_seconds"], extra={"calibration": record})
    except Exception:  # the estimates then keep today's constants; the worker works on
        log.exception("calibration failed")
    finally:
        store.close()
        _Local.done.set()


def wait(timeout: float) -> None:
    """Until this child's calibration is settled (at most ``timeout`` s; at once if none runs)."""
    if _Local.thread is not None:
        _Local.done.wait(timeout)


def local_constants() -> CostConstants | None:
    """This worker's own rates, None when it has none (not calibrated, or not a pool child)."""
    record = _Local.record if _Local.done.is_set() else None
    return CostConstants.from_calibration(record) if record else None


# ----------------------------------------------------------------------------- the main process


class WorkerBeat:
    """A daemon thread of the worker's main process: refreshes its calibration record every
    ``heartbeat_s``, removes expired files first and its own record on :meth:`stop`."""

    def __init__(self, settings: Settings, name: str) -> None:
        self.settings, self.name = settings, name
        self.store = CalibrationStore(settings)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rntk-worker-beat", daemon=True)

    def _run(self) -> None:
        try:
            self.store.drop_expired()
        except OSError as exc:
            log.warning("could not drop expired calibration files: %s", exc)
        while not self._stop.wait(self.settings.heartbeat_s):
            try:
                self.store.refresh(self.name)
            except Exception as exc:  # Redis or the disk briefly away: the next beat retries
                log.warning("worker beat failed: %s", exc)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        try:
            self.store.remove(self.name)
        except Exception as exc:  # it expires on its own
            log.warning("could not remove this worker's calibration: %s", exc)
        self.store.close()


def workers_view(settings: Settings) -> list[dict]:
    """The live workers' calibrations, for /readyz and /metrics: the figures, newest first."""
    store = CalibrationStore(settings)
    try:
        records = store.alive()
    except Exception as exc:
        log.warning("cannot read the workers' calibration: %s", exc)
        return []
    finally:
        store.close()
    keys = ("worker", "device", "seconds_per_cell", "factor", "seconds_per_fit_sample2", "fit_factor", "measured_at")
    return sorted(({key: record.get(key) for key in keys} for record in records),
                  key=lambda view: -(view.get("measured_at") or 0))
