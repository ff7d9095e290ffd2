"""The Python client of a running rntk server, and the ``rntk`` commands over it.

In Python::

    from rntk_client import Client

    job = Client("http://127.0.0.1:8000", "KEY").submit((X, y), {"families": ["RNN", "RBF"]})
    job.wait()                       # a tqdm.auto bar: the stage the service reports, its ETA
    job.report                       # the typed report (a pydantic model)
    job.gram("RNN")                  # the Gram matrix selected for RNN, as a NumPy array
    job.download("out/")             # every artifact, sha256 checked

From the shell, ``rntk submit | status | download | cancel | jobs | compare`` are thin
commands over the same :class:`Client`. Both talk to the HTTP API with httpx; nothing here
imports the server (``app``), the workers (``worker``), FastAPI, Celery or JAX, and NumPy and
pydantic load only when arrays or the typed report are asked for (``tests/test_layers.py``
checks it), so the client installs and starts light.

The server comes from ``url`` / ``--server`` or ``RNTK_SERVER`` (default
http://127.0.0.1:8000), the key from ``key`` / ``--api-key`` or ``RNTK_API_KEY`` (sent as
``Authorization: Bearer``). A job is named by its id or any unique prefix of it.

Exit codes: 0 when the command worked (for ``submit --wait`` and ``status``: the job
succeeded, or is still queued/running for ``status``); 1 when the job failed or was
cancelled; 2 for usage errors, HTTP errors and an unreachable server. Errors are one line
on stderr (``rntk submit: error: 422 ...``), never a traceback.

Modules: ``api`` (the server, its errors, the shared options), ``data`` (uploads: files,
folders, arrays; the config), ``client`` (:class:`Client`, :class:`Job`), ``render`` (a job
record as text), ``submit``, ``jobs`` (status, cancel, jobs, compare), ``download``, ``cli``
(the command table and ``run``).
"""

from __future__ import annotations

from rntk_client.api import Api, ClientError
from rntk_client.cli import COMMANDS, run
from rntk_client.client import Client, Job
from rntk_client.render import overall_fraction, progress_text

__all__ = ["Client", "Job", "Api", "ClientError", "COMMANDS", "run", "progress_text", "overall_fraction"]
