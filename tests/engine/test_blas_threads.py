"""rntk_core gives scipy's OpenBLAS (jaxlib's CPU LAPACK) one thread unless the user chose."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.helpers import REPO

PROBE = """
import json, rntk_core, scipy.linalg
from threadpoolctl import threadpool_info
print(json.dumps([i["num_threads"] for i in threadpool_info() if "scipy.libs" in i["filepath"]]))
"""


def _scipy_blas_threads(env: dict) -> list[int]:
    run = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=120, check=True)
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_one_blas_thread_by_default_and_the_users_choice_wins():
    env = {key: value for key, value in os.environ.items() if key != "OPENBLAS_NUM_THREADS"}
    assert _scipy_blas_threads(env) == [1]
    if (os.cpu_count() or 1) > 1:
        assert _scipy_blas_threads({**env, "OPENBLAS_NUM_THREADS": "2"}) == [2]


XLA_PROBE = "import os, rntk_core, jax; jax.numpy.ones(2).block_until_ready(); print(os.environ['XLA_FLAGS'])"


def test_xla_cpu_eigen_is_single_threaded_unless_the_user_chose():
    env = {key: value for key, value in os.environ.items() if key != "XLA_FLAGS"}

    def flags(extra: dict) -> str:
        return subprocess.run([sys.executable, "-c", XLA_PROBE], cwd=REPO, env={**env, **extra},
                              capture_output=True, text=True, timeout=120, check=True).stdout.strip()

    assert flags({}) == "--xla_cpu_multi_thread_eigen=false"
    assert flags({"XLA_FLAGS": "--xla_force_host_platform_device_count=1"}) == "--xla_force_host_platform_device_count=1 --xla_cpu_multi_thread_eigen=false"
    assert flags({"XLA_FLAGS": "--xla_cpu_multi_thread_eigen=true"}) == "--xla_cpu_multi_thread_eigen=true"
