"""File locks and forks: the worker's main process forks pool children while its sweep thread
may hold a job's lock; a child must not keep that lock (it would block the job for good), so
``file_lock`` releases with LOCK_UN rather than by closing its descriptor."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from worker.jobs import file_lock


# the child only sleeps and exits: JAX's threads (loaded by other tests) cannot deadlock it
@pytest.mark.filterwarnings("ignore:os.fork\\(\\) was called")
def test_a_forked_child_does_not_keep_a_held_lock(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    held, release = threading.Event(), threading.Event()

    def holder() -> None:  # a sweep thread, inside a job's lock
        with file_lock(path):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    assert held.wait(10)
    child = os.fork()
    if child == 0:  # the pool child: lives on, long after the parent's thread let go
        time.sleep(3)
        os._exit(0)
    try:
        with file_lock(path, blocking=False) as mine:
            assert not mine  # the parent's thread still holds it
        release.set()
        thread.join(10)
        with file_lock(path, blocking=False) as mine:
            assert mine, "the forked child kept the lock"
    finally:
        os.waitpid(child, 0)
