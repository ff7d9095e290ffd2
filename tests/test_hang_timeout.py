"""A hung test turns into a red run with every thread's stack, even when the hang never
returns to Python (the CPU deadlock of issue 17 sat in a native wait, where pytest-timeout's
signal method cannot act)."""

from __future__ import annotations

import subprocess
import sys
import time

from tests.helpers import REPO

HUNG = '''
import signal, time

def test_hangs_where_no_signal_reaches():
    # SIGALRM blocked: as for a thread parked in a native wait, the alarm never runs Python.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    time.sleep(120)
'''


def test_a_native_hang_is_reported_and_ends_the_run(tmp_path) -> None:
    (tmp_path / "test_hung.py").write_text(HUNG)
    started = time.monotonic()
    # The project's own pytest settings, with a short bound for this check.
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "-c", str(REPO / "pyproject.toml"), "--rootdir", str(tmp_path),
                          "-o", "timeout=3", str(tmp_path / "test_hung.py")],
                         capture_output=True, text=True, timeout=100, cwd=tmp_path)
    output = run.stdout + run.stderr
    assert time.monotonic() - started < 60, output
    assert run.returncode != 0, output
    assert "Timeout" in output and "test_hangs_where_no_signal_reaches" in output, output
    assert "Stack of MainThread" in output or "MainThread" in output, output
