"""The client commands by name, and ``run``: one command, its exit code, errors as one line."""

from __future__ import annotations

import sys
from typing import Callable, Sequence

from rntk_client.api import EXIT_ERROR, ClientError
from rntk_client.download import download_main
from rntk_client.jobs import cancel_main, compare_main, jobs_main, status_main
from rntk_client.submit import submit_main

__all__ = ["COMMANDS", "run"]

#: name -> (its main, the line ``rntk --help`` shows for it)
COMMANDS: dict[str, tuple[Callable[[Sequence[str]], int], str]] = {
    "submit": (submit_main, "upload DATA and submit a job (--wait: follow it with a progress bar)"),
    "status": (status_main, "a job's state, progress and summary (exit 1 if it failed or was cancelled)"),
    "download": (download_main, "download a job's artifacts into a folder, checking sha256"),
    "cancel": (cancel_main, "cancel a queued or running job"),
    "jobs": (jobs_main, "list your jobs (--state, --limit)"),
    "compare": (compare_main, "several jobs' test accuracy per family side by side, and how their configs differ"),
}


def run(command: str, argv: Sequence[str]) -> int:
    """Run one client command: its exit code, with every error as one line on stderr."""
    function = COMMANDS[command][0]
    try:
        return function(list(argv))
    except ClientError as exc:
        print(f"rntk {command}: error: {exc}", file=sys.stderr)
        return exc.code
    except BrokenPipeError:
        raise  # the reader went away: the `rntk` entry point (rntk_launcher.cli) ends quietly
    except KeyboardInterrupt:
        print(f"rntk {command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # never a traceback: one line with the exception's type
        print(f"rntk {command}: error: {type(exc).__name__}: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_ERROR
