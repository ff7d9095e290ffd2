"""The service's settings: one pydantic-settings class read from ``RNTK_*`` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["BLOCK_TASK_NAME", "CONTINUE_TASK_NAME", "Settings", "TASK_NAME", "get_settings"]

#: The Celery task that runs a job: :mod:`worker.queue` sends it, :mod:`worker.tasks` registers it.
TASK_NAME = "rntk.run_job"
#: A landmark job's block tasks and its chord's continuation (:mod:`worker.fanout`).
BLOCK_TASK_NAME = "rntk.block"
CONTINUE_TASK_NAME = "rntk.continue_job"


class Settings(BaseSettings):
    """Everything the API and the workers read from the environment (prefix ``RNTK_``).

    ``broker_url`` None means the embedded mode: a kombu "filesystem" transport under
    ``data_dir/broker`` and a worker subprocess started by ``rntk serve``.
    """

    model_config = SettingsConfigDict(env_prefix="RNTK_", extra="ignore")

    data_dir: Path = Field(default=Path("rntk-data"), description="Datasets, job records, artifacts, embedded broker.")
    broker_url: str | None = Field(default=None, description="e.g. redis://127.0.0.1:6379/0; unset = embedded.")
    # kombu's default (1 s) put about half a second of waiting on each message of a small job:
    # the job, each fanned-out block and the chord's continuation.
    embedded_poll_s: float = Field(default=0.1, gt=0, le=10,
                                   description="How often the embedded broker's consumers look for messages.")
    api_keys: str = Field(default="", description="Comma-separated bearer keys; empty = no auth (loopback only).")
    max_upload_mb: float = Field(default=512, gt=0)
    max_samples: int = Field(default=10_000_000, ge=1,
                             description="Largest N of an uploaded dataset (dense jobs are bounded by "
                                         "worker_memory_mb; larger ones run with landmarks).")
    max_steps: int = Field(default=10_000, ge=1, description="Largest T of an uploaded dataset.")
    job_time_limit_s: float = Field(default=6 * 3600, gt=0, description="Soft time limit of one job attempt.")
    heartbeat_s: float = Field(default=10, gt=0, description="How often a running job refreshes its heartbeat, "
                                                            "and a worker its calibration (worker.calibration).")
    # 100 s plus one sweep period (15 s) keeps detection of a dead job under 2 minutes.
    dead_after_s: float = Field(default=100, gt=0, description="A running job whose heartbeat is older is re-run.")
    # A hang in native code (a deadlocked thread pool) keeps the heartbeat alive; a job whose
    # progress stands still this long is failed as Stalled. The slowest honest step seen (one
    # libsvm fit at C = 1e6 on abalone) took 354 s.
    stall_after_s: float = Field(default=1800, ge=0,
                                 description="A running job whose progress has not moved for this long "
                                             "(heartbeat alive) is failed as Stalled; 0 turns it off.")
    worker_memory_mb: int = Field(default_factory=lambda: _physical_memory_mb() * 4 // 5, ge=1,
                                  description="Memory one job may use on a worker, in MB (default: 80% of "
                                              "this machine's); a job estimated above it is refused, or "
                                              "with scale=auto moved to landmarks.")
    max_attempts: int = Field(default=3, ge=1, description="Attempts before a job that kills its worker fails.")
    sweep_s: float = Field(default=15, gt=0, description="Interval of the recovery sweep (API and workers).")
    # 60 s plus one sweep period stays under the 2-minute recovery bound; a worker claims a
    # delivered job within a second or two, so a queued job out of the broker's queue for this
    # long lost its delivery (e.g. the worker died between delivery and claim).
    unclaimed_after_s: float = Field(default=60, gt=0,
                                     description="A queued job delivered but unclaimed this long is re-sent.")
    max_queued_jobs: int = Field(default=100, ge=1, description="Queued + running jobs per owner (429 past it).")
    max_job_seconds: float = Field(default=7 * 86400, gt=0,
                                   description="Largest estimated job time (rntk_core.evaluation.cost, at the "
                                               "slowest live worker's calibrated rates, else 2-core CPU "
                                               "seconds) accepted at submit time (422 past it).")
    calibrate: bool = Field(default=True, description="Measure the worker's rates for the cost model when "
                                                      "it starts (worker.calibration); off: the 2-core CPU constants.")
    queue: str = Field(default="rntk-jobs", description="The Celery queue name.")
    redis_key_prefix: str = Field(default="", description="kombu global_keyprefix for the Redis broker.")
    memory_budget_mb: int = Field(default=1024, ge=1, description="Device memory for the engine's working set (tiles).")
    grid_memory_mb: int = Field(default=0, ge=0,
                                description="Device memory the recurrent grids of a job may hold at once, "
                                            "in MB; larger grids are computed, solved and freed in chunks "
                                            "of sigma pairs. 0: half the free device memory.")
    # Every job otherwise recompiles the engine and the solver's shapes: iris with solver=jax
    # took 8.4 s cold and 3.2 s warm on a 2-core CPU.
    compile_cache_mb: int = Field(default=2048, ge=0,
                                  description="JAX's persistent compilation cache in data_dir/jax-cache, "
                                              "largest size in MB; 0 turns it off.")
    # A fresh child per task cost every job JAX's import and its compiles (iris: 3.2 s of an
    # 8.3 s job); a child kept warm is recycled before a leak or a crash can pile up.
    child_tasks: int = Field(default=50, ge=1,
                             description="Tasks (jobs and blocks) a worker's pool child runs, JAX kept "
                                         "imported and compiled, before a fresh child replaces it; 1 "
                                         "gives every task a fresh child.")
    child_memory_mb: int = Field(default=4096, ge=1,
                                 description="A pool child whose resident memory passes this after a task "
                                             "is replaced by a fresh one.")
    fan_out_blocks: bool = Field(default=True,
                                 description="A landmark job's kernel blocks run as one Celery chord over "
                                             "every worker on the queue; false computes them in the job's "
                                             "own worker.")
    # Short jobs stay one task: a fan-out writes its inputs to the data volume and its fits
    # read the N x N kernels back from there, one at a time.
    fan_out_dense_s: float = Field(default=600, ge=0,
                                   description="A dense job whose recurrent Gram grids are estimated "
                                               "(rntk_core.evaluation.cost, 2-core CPU seconds) above this "
                                               "has them computed as row blocks by every worker on the queue, "
                                               "as a landmark job's (with RNTK_FAN_OUT_BLOCKS); 0: never.")
    allowed_hosts: str = Field(default="127.0.0.1,localhost,::1",
                               description="Comma-separated host names the service answers to (the Host "
                                           "header, port ignored; '*.example.org' its subdomains, '*' any); "
                                           "others get 400, which stops DNS rebinding. The loopback names "
                                           "and the address a connection arrived at are always accepted: "
                                           "add the names clients use when serving a non-loopback host.")
    session_hours: float = Field(default=12, gt=0,
                                 description="How long a browser login to the HTML pages lasts, in hours.")
    max_concurrent_uploads: int = Field(default=4, ge=1,
                                        description="Uploads received and parsed at once by one API process; "
                                                    "more get 503 with Retry-After.")
    upload_idle_timeout_s: float = Field(default=30, gt=0,
                                         description="An upload whose body sends nothing for this long gets 408 "
                                                     "and its partial file is removed.")
    header_timeout_s: float = Field(default=10, gt=0,
                                    description="A connection that has not sent a request's complete headers "
                                                "this long after it opened (or after its last response) is closed.")
    max_connections: int = Field(default=1000, ge=1,
                                 description="Open connections one API process keeps; past it a new one is "
                                             "closed at once (its file descriptor freed).")

    @field_validator("broker_url", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def keys(self) -> list[str]:
        """The configured API keys, stripped, empties dropped."""
        return [key.strip() for key in self.api_keys.split(",") if key.strip()]

    @property
    def worker_memory_bytes(self) -> int:
        return self.worker_memory_mb << 20

    @property
    def embedded(self) -> bool:
        return self.broker_url is None

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def memory_budget_bytes(self) -> int:
        return self.memory_budget_mb * 2**20

    @property
    def grid_memory_bytes(self) -> int | None:
        return self.grid_memory_mb * 2**20 if self.grid_memory_mb > 0 else None

    @property
    def broker_dir(self) -> Path:
        return self.data_dir / "broker"

    @property
    def compile_cache_dir(self) -> Path:
        return self.data_dir / "jax-cache"


def _physical_memory_mb() -> int:
    import os

    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") >> 20
    except (ValueError, OSError, AttributeError):  # not POSIX: assume a modest machine
        return 16 << 10


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (tests build their own :class:`Settings` instead)."""
    return Settings()
