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
