"""The Celery application, configured for long, memory-hungry GPU jobs.

- ``task_acks_late`` + ``task_reject_on_worker_lost``: a message is acknowledged only after
  the job returns, and requeued if the pool child dies under it.
- prefetch 1, concurrency 1: a worker holds one job at a time (run one worker per GPU).
- the broker's ``visibility_timeout`` is longer than the job time limit, so Redis does not
  redeliver a job that is still running. Dead jobs are found by their heartbeat instead
  (:mod:`worker.queue`), because that timeout is hours long.
- job state lives in the service's own records (:mod:`worker.jobs`); the result backend
  serves only the chords of a job spread over the workers (:mod:`worker.fanout`,
  :mod:`worker.block_tasks`): Redis in broker mode, files under ``RNTK_DATA_DIR/broker/results`` in the embedded mode
  (:mod:`worker.results`, a counter under ``flock`` so chords finish natively there too).
- each worker measures its own rates for the cost model when its pool child starts, and its
  main process keeps that record alive (:mod:`worker.calibration`).

This module must stay free of JAX (and of ``rntk_core``, which imports it): the worker's
main process imports it before forking its pool child, and JAX must only be imported in
the child (see :mod:`worker.tasks`).

Broker: ``RNTK_BROKER_URL`` (e.g. Redis), or, when it is unset, the embedded server-less
kombu "filesystem" transport with its folders under ``RNTK_DATA_DIR/broker``.
"""

from __future__ import annotations

from celery import Celery
from celery.signals import (setup_logging, task_prerun, task_received, worker_init, worker_process_init,
                            worker_ready, worker_shutdown)

from worker.settings import Settings, get_settings

__all__ = ["broker_options", "ensure_broker_dirs", "make_celery", "celery_app", "result_backend"]


def broker_options(settings: Settings) -> tuple[str, dict]:
    """The broker URL and transport options for ``settings``."""
    visibility = int(settings.job_time_limit_s) + 3600
    if settings.embedded:
        folder = settings.broker_dir.resolve()
        messages, processed, control = folder / "messages", folder / "processed", folder / "control"
        return "filesystem://", {
            "data_folder_in": str(messages),
            "data_folder_out": str(messages),
            "processed_folder": str(processed),
            "store_processed": False,
            "control_folder": str(control),
            "visibility_timeout": visibility,
            "polling_interval": settings.embedded_poll_s,
        }
    options: dict = {"visibility_timeout": visibility, "socket_connect_timeout": 3, "socket_timeout": 10}
    if settings.redis_key_prefix:
        options["global_keyprefix"] = settings.redis_key_prefix
    return settings.broker_url, options


def result_backend(settings: Settings) -> tuple[str, dict]:
    """The result backend's URL and its transport options: chords need one (see
    :mod:`worker.results`). The embedded one names its class in the URL (``cls+file://``):
    Celery picks the backend by the ``result_backend`` URL, not by ``Celery(backend=cls)``."""
    if settings.embedded:
        folder = (settings.broker_dir / "results").resolve()
        return f"worker.results:LockedFilesystemBackend+{folder.as_uri()}", {}
    options = {"global_keyprefix": settings.redis_key_prefix} if settings.redis_key_prefix else {}
    return settings.broker_url, options


def ensure_broker_dirs(settings: Settings) -> None:
    """Create the embedded broker's folders (the filesystem transport and the result backend
    need them to exist)."""
    if settings.embedded:
        for name in ("messages", "processed", "control", "results"):
            (settings.broker_dir / name).mkdir(parents=True, exist_ok=True)


@setup_logging.connect
def _json_logs(loglevel: object = None, **_: object) -> None:
    """JSON-lines logs for the worker (a receiver here also keeps Celery's own setup away)."""
    from worker.logs import setup_logging as setup_json_logging

    setup_json_logging(loglevel or "INFO")


@worker_process_init.connect
def _json_logs_in_child(**_: object) -> None:
    """The pool child inherits the handler; install it again in case a library replaced it."""
    import logging

    from worker.logs import setup_logging as setup_json_logging

    setup_json_logging(logging.getLogger().level or "INFO")


@worker_process_init.connect
def _calibrate_in_child(sender: object = None, **_: object) -> None:
    """Measure this worker's rates for the cost model in the background (JAX may load in the
    child only; readiness does not wait): see :mod:`worker.calibration`."""
    import socket

    from worker import calibration

    settings = get_settings()
    if settings.calibrate:
        calibration.start(settings, str(sender or socket.gethostname()))


@task_prerun.connect
def _await_calibration(**_: object) -> None:
    """A task does not share the device with the calibration (both would be skewed)."""
    from worker import calibration

    calibration.wait(calibration.wait_s(get_settings()))


@worker_init.connect
def _worker_dirs(**_: object) -> None:
    ensure_broker_dirs(get_settings())
    _die_with_parent()


_background: list = []  # the main process's threads (sweeper, worker beat), stopped at shutdown


@worker_ready.connect
def _start_worker_beat(sender: object = None, **_: object) -> None:
    """Keep this worker's calibration record alive while the worker is (:mod:`worker.calibration`)."""
    import socket

    from worker.calibration import WorkerBeat

    beat = WorkerBeat(get_settings(), str(getattr(sender, "hostname", None) or socket.gethostname()))
    beat.start()
    _background.append(beat)


@worker_ready.connect
def _start_sweeper(**_: object) -> None:
    """Every worker's main process also runs the recovery sweep (under the deployment-wide
    :class:`~worker.queue.SweepLock`), so recovery goes on while the API is down. It sends
    with an app of its own, apart from the connection the worker consumes on."""
    from worker.jobs import Store
    from worker.queue import Sweeper

    settings = get_settings()
    sweeper = Sweeper(Store(settings.data_dir), make_celery(settings), settings)
    sweeper.start()
    _background.append(sweeper)


@task_received.connect
def _stamp_delivery(request: object = None, **_: object) -> None:
    """Note in the record when the broker delivered the job's current message (worker main
    process, before the pool child claims it). The sweep re-sends a queued job only once it
    has been out of the broker's queue this long unclaimed, never one just delivered."""
    import logging

    from worker.jobs import JobState, Store, now

    try:
        job_id, message_id = request.args[0], request.id
        settings = get_settings()

        def delivered(rec) -> None:
            if rec.state == JobState.queued and rec.message_id == message_id:
                rec.delivered_at = now()

        Store(settings.data_dir).update_job(job_id, delivered)
    except Exception as exc:  # never let bookkeeping stop the consumer
        logging.getLogger("rntk.worker").warning("could not note the delivery of %s: %s", request, exc)


@worker_shutdown.connect
def _stop_background(**_: object) -> None:
    while _background:
        _background.pop().stop()


def _die_with_parent() -> None:
    """Embedded mode: end this worker when the ``rntk serve`` that started it dies (even by kill -9)."""
    import os
    import signal

    expected = os.environ.get("RNTK_EMBEDDED_PARENT_PID")
    if not expected:
        return
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the supervisor's own stop() still applies
        return
    if os.getppid() != int(expected):  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def make_celery(settings: Settings | None = None) -> Celery:
    settings = settings or get_settings()
    url, options = broker_options(settings)
    backend_url, backend_options = result_backend(settings)
    app = Celery("rntk", broker=url, backend=backend_url, include=["worker.tasks", "worker.block_tasks"])
    app.conf.update(
        broker_transport_options=options,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=3,
        result_backend=backend_url,
        result_backend_transport_options=backend_options,
        task_ignore_result=True,  # only the block tasks of a chord keep theirs
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        worker_concurrency=1,
        task_default_queue=settings.queue,
        task_soft_time_limit=settings.job_time_limit_s,
        task_time_limit=settings.job_time_limit_s + 60,
        task_serializer="json",
        accept_content=["json"],
        # publishing fails fast when the broker is down; the recovery sweep re-sends later
        task_publish_retry=False,
        worker_send_task_events=False,
        worker_enable_remote_control=not settings.embedded,
        worker_hijack_root_logger=False,
        # a warm child keeps JAX and its compiled functions across tasks; recycled after
        # child_tasks tasks or past child_memory_mb of RSS (Celery counts KiB), and a crash
        # or a kill takes only its own task (acks_late + reject_on_worker_lost)
        worker_max_tasks_per_child=settings.child_tasks,
        worker_max_memory_per_child=settings.child_memory_mb * 1024,
    )
    return app


celery_app = make_celery()
