"""The ``rntk`` console script: serve/worker, the client commands, and the library's commands.

``serve`` and ``worker`` (:mod:`rntk_launcher.serve`) and the client commands
(:mod:`rntk_client`, httpx only) live outside ``rntk_core`` so that the engine never imports
the service; ``rntk_core.evaluation.cli`` (and JAX with it) is imported only for its own
commands and for ``--help``.
"""

from __future__ import annotations

import os
import sys

from rntk_client.cli import COMMANDS as CLIENT_COMMANDS
from rntk_client.cli import run as run_client

#: the commands that start processes, with the line ``rntk --help`` shows for each
LAUNCH_COMMANDS = {
    "serve": "start the HTTP API (and an embedded worker when RNTK_BROKER_URL is unset)",
    "worker": "start a Celery worker for RNTK_BROKER_URL (one per GPU)",
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
    command = argv[0] if argv else None
    if command in CLIENT_COMMANDS:
        return run_client(command, argv[1:])
    if command in LAUNCH_COMMANDS:
        from rntk_launcher.serve import serve_main, worker_main

        return (serve_main if command == "serve" else worker_main)(argv[1:])
    from rntk_core.evaluation import cli as core_cli  # imported here: the client commands never load JAX

    if not argv or command in ("-h", "--help"):
        core_cli.build_parser().print_help()
        print("\nservice commands:")
        service_commands = {**LAUNCH_COMMANDS, **{name: text for name, (_, text) in CLIENT_COMMANDS.items()}}
        for name, text in service_commands.items():
            print(f"  {name:10s}{text}  (rntk {name} --help)")
        return 0 if argv else 2
    return core_cli.main(argv)
