"""Stress the batched JAX C-SVM on the CPU for hangs: many fresh processes, loaded cores.

Each run is a fresh interpreter that solves a fixed set of one-vs-one problems twice (the
first call compiles, through a shared persistent compilation cache; the second is timed),
while ``--busy`` processes spin on the cores. A run that outlives ``--timeout`` seconds is
counted as a hang, its native stacks are dumped (py-spy or gdb, when installed), and it
is killed.

    python -m benchmarks.solver_stress --runs 300
    python -m benchmarks.solver_stress --runs 60 --source /tmp/base   # another checkout

Prints the hang count and the median / p90 seconds of the timed solve.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The child: problems of sizes that jaxlib 0.10 splits over its thread pool when batched
# (batch x n^2 >= 2e5 flops for the triangular solves).
CHILD = r"""
import json, sys, time
import numpy as np
from rntk_core.evaluation.solvers.jax_svm import SvmTask, fit_predict_many

def task(seed, n, classes):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    X = rng.normal(size=(n, 4)) + 0.8 * np.eye(4)[y % 4]
    Z = rng.normal(size=(40, 4))
    rbf = lambda A, B: np.exp(-0.5 * ((A[:, None] - B[None]) ** 2).sum(-1))
    return SvmTask(rbf(X, X), y, rbf(Z, X), [1e-2, 1.0, 1e2, 1e4, 1e6])

tasks = [task(seed, n, 3) for seed, n in enumerate((90, 120, 150, 180))]
fit_predict_many(tasks)
started = time.perf_counter()
fits = fit_predict_many(tasks)
print(json.dumps({"seconds": time.perf_counter() - started,
                  "converged": all(f.converged for per_C in fits for f in per_C.values())}))
"""


def _spin() -> None:
    while True:
        pass


def _dump(pid: int, where: Path) -> None:
    spy, gdb = shutil.which("py-spy"), shutil.which("gdb")
    if spy:
        command = [spy, "dump", "--native", "--pid", str(pid)]
    elif gdb:
        command = [gdb, "-p", str(pid), "-batch", "-ex", "thread apply all bt"]
    else:
        return
    out = subprocess.run(command, capture_output=True, text=True, timeout=120)
    where.write_text(out.stdout + out.stderr)


def run(runs: int, timeout: float, busy: int, source: Path, dumps: Path) -> dict:
    cache = tempfile.mkdtemp(prefix="rntk-stress-cache-")
    env = dict(os.environ, PYTHONPATH=str(source), JAX_COMPILATION_CACHE_DIR=cache,
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
               JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="-1")
    spinners = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(busy)]
    for spinner in spinners:
        spinner.start()
    seconds, hangs, failures = [], 0, 0
    try:
        for number in range(runs):
            child = subprocess.Popen([sys.executable, "-c", CHILD], cwd=source, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                out, err = child.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                hangs += 1
                dumps.mkdir(parents=True, exist_ok=True)
                _dump(child.pid, dumps / f"hang-{number}.txt")
                child.kill()
                child.communicate()
                print(f"run {number}: HUNG past {timeout:.0f} s", flush=True)
                continue
            if child.returncode != 0:
                failures += 1
                print(f"run {number}: failed rc={child.returncode}: {err[-400:]}", flush=True)
                continue
            result = json.loads(out.strip().splitlines()[-1])
            seconds.append(result["seconds"])
            if number % 25 == 0:
                print(f"run {number}: {result['seconds']:.2f} s (converged {result['converged']})",
                      flush=True)
    finally:
        for spinner in spinners:
            spinner.terminate()
        shutil.rmtree(cache, ignore_errors=True)
    ordered = sorted(seconds)
    return {"source": str(source), "runs": runs, "hangs": hangs, "failures": failures,
            "busy": busy, "timeout_s": timeout,
            "solve_median_s": statistics.median(ordered) if ordered else None,
            "solve_p90_s": ordered[int(0.9 * (len(ordered) - 1))] if ordered else None}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds before a run is a hang")
    parser.add_argument("--busy", type=int, default=2, help="spinning processes beside each run")
    parser.add_argument("--source", type=Path, default=Path(__file__).resolve().parents[1],
                        help="checkout whose rntk_core runs (default: this one)")
    parser.add_argument("--dumps", type=Path, default=Path("build/solver-stress"))
    args = parser.parse_args(argv)
    started = time.perf_counter()
    summary = run(args.runs, args.timeout, args.busy, args.source.resolve(), args.dumps)
    summary["wall_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
