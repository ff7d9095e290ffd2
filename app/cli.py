"""The `rntk` console script: the service commands here, everything else from rntk_core.evaluation.cli.

`serve` and `worker` (app.serve) and the client commands (app.client) live outside rntk_core
so that the engine never imports the service.
"""

from __future__ import annotations

import os
import sys

SERVICE_COMMANDS = {
    "serve": "start the HTTP API (and an embedded worker when RNTK_BROKER_URL is unset)",
    "worker": "start a Celery worker for RNTK_BROKER_URL (one per GPU)",
    # the client of a running server (app.client, httpx only)
    "submit": "upload DATA and submit a job (--wait: follow it with a progress bar)",
    "status": "a job's state, progress and summary (exit 1 if it failed or was cancelled)",
    "download": "download a job's artifacts into a folder, checking sha256",
    "cancel": "cancel a queued or running job",
    "jobs": "list your jobs (--state, --limit)",
    "compare": "several jobs' test accuracy per family side by side",
}


def main(argv: list[str] | None = None) -> int:
    """Run one command; a closed stdout (``rntk jobs | head``) ends it quietly, as cat does."""
    try:
        code = _dispatch(list(sys.argv[1:] if argv is None else argv))
        sys.stdout.flush()  # here, not at exit, so a closed pipe is caught below
        return code
    except BrokenPipeError:
        # stdout to /dev/null, so that the interpreter's final flush does not raise again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 0


def _dispatch(argv: list[str]) -> int:
    if argv and argv[0] in SERVICE_COMMANDS and argv[0] not in ("serve", "worker"):
        from app.client import run

        return run(argv[0], argv[1:])
    if argv and argv[0] in SERVICE_COMMANDS:
        from app.serve import serve_main, worker_main

        return (serve_main if argv[0] == "serve" else worker_main)(argv[1:])
    from rntk_core.evaluation import cli as core_cli  # imported here: the client commands never load JAX

    if not argv or argv[0] in ("-h", "--help"):
        core_cli.build_parser().print_help()
        print("\nservice commands:")
        for name, text in SERVICE_COMMANDS.items():
            print(f"  {name:10s}{text}  (rntk {name} --help)")
        return 0 if argv else 2
    return core_cli.main(argv)


if __name__ == "__main__":
    sys.exit(main())
