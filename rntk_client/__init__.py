"""The Python client of a running rntk server, and the ``rntk`` commands over it.

``rntk submit | status | download | cancel | jobs | compare`` talk to the HTTP API with httpx;
nothing here imports the server (``app``), the workers (``worker``), FastAPI, Celery or JAX
(``tests/test_layers.py`` checks it), so the client installs and starts light.

The server comes from ``--server`` or ``RNTK_SERVER`` (default http://127.0.0.1:8000), the
key from ``--api-key`` or ``RNTK_API_KEY`` (sent as ``Authorization: Bearer``).

Exit codes: 0 when the command worked (for ``submit --wait`` and ``status``: the job
succeeded, or is still queued/running for ``status``); 1 when the job failed or was
cancelled; 2 for usage errors, HTTP errors and an unreachable server. Errors are one line
on stderr (``rntk submit: error: 422 ...``), never a traceback.

Modules: ``api`` (the server, its errors, the shared options), ``render`` (a job record as
text), ``submit``, ``jobs`` (status, cancel, jobs, compare), ``download``, ``cli`` (the
command table and ``run``).
"""

from __future__ import annotations

from rntk_client.api import Api, ClientError
from rntk_client.cli import COMMANDS, run
from rntk_client.render import overall_fraction, progress_text

__all__ = ["Api", "ClientError", "COMMANDS", "run", "progress_text", "overall_fraction"]
