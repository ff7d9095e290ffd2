"""The Python client: :class:`Client` (the server with your key) and :class:`Job` (one job).

    from rntk_client import Client

    client = Client("http://127.0.0.1:8000", "KEY")        # or $RNTK_SERVER / $RNTK_API_KEY
    job = client.submit((X, y), {"families": ["RNN", "RBF"]}).wait()   # a tqdm bar
    job.report.families["RNN"].test_accuracy               # the typed report
    K = job.gram("RNN")                                    # the selected kernel, a NumPy array
    job.download("out/")                                   # every artifact, sha256 checked

Every failure is a :class:`~rntk_client.api.ClientError` with one line of text (and
``status_code`` when the server refused). Jobs are named by their id or any unique prefix
of it, resolved against ``GET /jobs``. NumPy (arrays, ``gram``), pydantic and the report
model (``report``) load on first use, so the ``rntk`` commands start without them.
"""

from __future__ import annotations

import hashlib
import io
import os
import time
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Any, Iterator

import httpx

from rntk_client.api import EXIT_ERROR, EXIT_JOB, Api, ClientError, job_path, reason
from rntk_client.data import Data, load_config, payload
from rntk_client.render import TERMINAL, eta, overall_fraction, progress_text, short_id

if TYPE_CHECKING:
    import numpy as np

    from rntk_core.evaluation.report.model import Report

__all__ = ["Client", "Job", "FULL_ID_LENGTH"]

#: A job id's length: 16 hex digits of creation time (ns), then 16 random ones.
FULL_ID_LENGTH = 32
#: Jobs per ``GET /jobs`` page when resolving a prefix (the server's maximum).
_PAGE = 1000


class Client:
    """An rntk server and your key. ``url`` defaults to ``$RNTK_SERVER`` (else
    http://127.0.0.1:8000), ``key`` to ``$RNTK_API_KEY``. A context manager; :meth:`close`
    ends its connections."""

    def __init__(self, url: str | None = None, key: str | None = None, *, timeout: float = 60) -> None:
        self.api = Api(url, key, timeout=timeout)

    @property
    def url(self) -> str:
        return self.api.base

    def close(self) -> None:
        self.api.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    # ------------------------------------------------------------------ datasets and jobs

    def upload(self, data: Data, *, name: str | None = None) -> dict[str, Any]:
        """Upload a dataset; its description (``id``, ``name``, shape, classes, ``sha256``).

        ``data``: a .csv, .npz, .ts or .zip file or a dataset folder (zipped here), or arrays:
        ``(X, y)``, ``(X, y, lengths)`` or a mapping of the .npz's arrays, uploaded as
        ``NAME.npz`` (``name``, default ``arrays``). X: (N, T) or (N, T, m); y: (N,).
        """
        filename, handle, media = payload(data, name)
        with handle:
            return self.api.json("POST", "/datasets", files={"file": (filename, handle, media)})

    def _job_body(self, data: Data, config: Any, gram: str | None, name: str | None) -> dict[str, Any]:
        config = load_config(config)  # before the upload: a bad config costs no transfer
        body: dict[str, Any] = {"dataset_id": self.upload(data, name=name)["id"], "config": config}
        if gram:
            body["artifacts"] = {"gram": gram}
        return body

    def submit(self, data: Data, config: Any = None, *, gram: str | None = None,
               name: str | None = None) -> "Job":
        """Upload ``data`` (see :meth:`upload`) and submit an evaluation; the queued :class:`Job`.

        ``config``: the evaluation config as a dict (or an ``EvaluationConfig``), a JSON file's
        path or inline JSON; omitted fields take the paper's defaults. ``gram``: which Gram
        matrices to keep as artifacts, ``"selected"`` (the server's default), ``"all"`` or ``"none"``.
        """
        body = self._job_body(data, config, gram, name)
        return Job(self, self.api.json("POST", "/jobs", json=body))

    def estimate(self, data: Data, config: Any = None, *, gram: str | None = None,
                 name: str | None = None) -> dict[str, Any]:
        """What :meth:`submit` would compute (kernels, SVM fits, seconds, ``text``); submits nothing."""
        return self.api.json("POST", "/jobs/estimate", json=self._job_body(data, config, gram, name))

    def jobs(self, state: str | None = None, limit: int = 50, offset: int = 0) -> list["Job"]:
        """Your jobs, newest first; ``state``: queued, running, succeeded, failed or cancelled."""
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if state:
            params["state"] = state
        return [Job(self, record) for record in self.api.json("GET", "/jobs", params=params)]

    def job(self, job_id: str) -> "Job":
        """The job ``job_id`` (an id or a unique prefix of one), read now."""
        return Job(self, self.api.json("GET", job_path(self.resolve(job_id))))

    def resolve(self, prefix: str) -> str:
        """The full id of the one job of yours whose id starts with ``prefix``.

        A full-length id is returned as is (the server says 404 if it is unknown). A shorter
        prefix is looked up in ``GET /jobs``; none or several matches are a :class:`ClientError`
        (as ``git`` and ``docker`` do with abbreviated ids).
        """
        job_path(prefix)  # refuses what cannot be an id
        if len(prefix) >= FULL_ID_LENGTH:
            return prefix
        matches = [job_id for job_id in self._all_ids() if job_id.startswith(prefix.lower())]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise ClientError(f"no job of yours has an id starting with {prefix!r}", status_code=404)
        shown = ", ".join(matches[:5]) + (f" and {len(matches) - 5} more" if len(matches) > 5 else "")
        raise ClientError(f"job id prefix {prefix!r} is ambiguous: {len(matches)} jobs match ({shown}); "
                          "give more of the id")

    def _all_ids(self) -> Iterator[str]:
        offset = 0
        while True:
            page = self.api.json("GET", "/jobs", params={"limit": _PAGE, "offset": offset})
            yield from (record["id"] for record in page)
            if len(page) < _PAGE:
                return
            offset += _PAGE


class Job:
    """One job of a :class:`Client`. ``record`` is the job as last read (``GET /jobs/{id}``);
    :attr:`status` reads it again. The report and the Gram matrices exist once it succeeded."""

    def __init__(self, client: Client, record: dict[str, Any]) -> None:
        self.client = client
        self.record = record
        self._report_json: dict[str, Any] | None = None
        self._report: Report | None = None

    @property
    def id(self) -> str:
        return self.record["id"]

    def __repr__(self) -> str:
        state = self.record.get("state")
        return f"<Job {short_id(self.id)} {state} {100 * overall_fraction(self.record):.0f}% {progress_text(self.record)}>"

    def refresh(self) -> dict[str, Any]:
        """Read the job again; its record (state, progress, summary, error...)."""
        self.record = self.client.api.json("GET", job_path(self.id))
        return self.record

    @property
    def status(self) -> str:
        """The job's state now: queued, running, succeeded, failed or cancelled (one request)."""
        return self.refresh()["state"]

    @property
    def done(self) -> bool:
        """Whether the job had ended when last read (no request)."""
        return self.record.get("state") in TERMINAL

    def wait(self, timeout: float | None = None, *, interval: float = 0.5, progress: bool = True,
             file: IO[str] | None = None) -> "Job":
        """Poll until the job ends; the job. One progress bar (``tqdm.auto``: a widget in a
        notebook, text on stderr or ``file`` elsewhere) shows the overall fraction, the stage
        the service reports with its counts, the time elapsed and the ETA.

        ``timeout``: seconds to wait at most; past them a :class:`ClientError` (the job goes on).
        A failed or cancelled job ends the wait too: check :attr:`record` or :attr:`status`.
        """
        from tqdm.auto import tqdm

        # tqdm writes ", " before a non-empty postfix: "0:03 elapsed, ETA 0:05"
        bar = tqdm(total=1000, file=file, disable=not progress, dynamic_ncols=True, leave=True,
                   bar_format="{desc} {percentage:3.0f}%|{bar}| {elapsed} elapsed{postfix}")
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                job = self.refresh()
                # stage, counts and fraction come from the same poll and are drawn in one refresh
                bar.set_description_str(f"{short_id(self.id)} {progress_text(job)}", refresh=False)
                ended = job.get("state") in TERMINAL
                bar.set_postfix_str("" if ended else f"ETA {eta((job.get('progress') or {}).get('eta_s'))}",
                                    refresh=False)
                bar.n = round(1000 * overall_fraction(job))
                bar.refresh()
                if ended:
                    return self
                if deadline is not None and time.monotonic() > deadline:
                    raise ClientError(f"job {self.id} still {job.get('state')} after {timeout:g} s; it goes on")
                time.sleep(interval)
        finally:
            bar.close()

    def cancel(self) -> "Job":
        """Ask the job to stop (it ends within seconds at any stage); 409 if it already ended."""
        self.record = self.client.api.json("POST", job_path(self.id) + "/cancel")
        return self

    # ------------------------------------------------------------------ results

    def _require_success(self, what: str) -> None:
        state = self.record.get("state")
        if state == "succeeded":
            return
        if state not in TERMINAL:
            state = self.refresh().get("state")
            if state == "succeeded":
                return
        if state in ("failed", "cancelled"):
            error = self.record.get("error") or {}
            why = f": {error.get('type', 'error')}: {error.get('message', '')}" if error else ""
            raise ClientError(f"job {self.id} {state}{why}; it has no {what}", EXIT_JOB)
        raise ClientError(f"job {self.id} is {state}; it has no {what} yet (wait() for it)")

    def artifacts(self) -> list[dict[str, Any]]:
        """The job's artifacts: ``name``, ``size``, ``sha256``, ``media_type``, ``url`` each."""
        return self.client.api.json("GET", job_path(self.id) + "/artifacts")

    def report_json(self) -> dict[str, Any]:
        """``report.json`` as a dict (the job must have succeeded)."""
        if self._report_json is None:
            self._require_success("report")
            report = self.client.api.json("GET", job_path(self.id) + "/artifacts/report.json")
            if not isinstance(report, dict):
                raise ClientError(f"job {self.id}: report.json is not a JSON object")
            self._report_json = report
        return self._report_json

    @property
    def report(self) -> "Report":
        """The typed report (:class:`rntk_core.evaluation.report.model.Report`, a pydantic model):
        ``report.families[name].test_accuracy``, ``report.configurations``, ``report.grams``..."""
        if self._report is None:
            from rntk_core.evaluation.report.model import Report  # pydantic only, no JAX

            self._report = Report.model_validate(self.report_json())
        return self._report

    def gram_names(self) -> list[str]:
        """The saved Gram matrices' artifact names (``gram/<configuration>.npy``), selected first."""
        entries = self.report_json().get("grams") or []
        ordered = sorted(entries, key=lambda entry: not entry.get("selected"))
        return [entry["file"] for entry in ordered]

    def _gram_file(self, name: str | None) -> str:
        entries = self.report_json().get("grams") or []
        if not entries:
            raise ClientError(f"job {self.id} saved no Gram matrices (submit with gram='selected' or 'all')")
        if name is None:
            return self.gram_names()[0]
        for entry in entries:
            if name in (entry["file"], PurePosixPath(entry["file"]).stem, PurePosixPath(entry["file"]).name):
                return entry["file"]
        chosen = [entry["file"] for entry in entries if entry.get("selected") and name in entry.get("families", ())]
        if len(chosen) == 1:
            return chosen[0]
        if len(chosen) > 1:
            raise ClientError(f"family {name!r} selected {len(chosen)} kernels ({', '.join(chosen)}); name one")
        families = sorted({family for entry in entries for family in entry.get("families", ())})
        raise ClientError(f"job {self.id} has no Gram matrix {name!r}; families: {', '.join(families) or 'none'}; "
                          f"files: {', '.join(e['file'] for e in entries)}")

    def gram(self, name: str | None = None) -> "np.ndarray":
        """A saved Gram matrix, downloaded (sha256 checked) as an (N, N) NumPy array.

        ``name``: a family (``"RNN"``: the kernel selected for it), a file (``gram/X.npy``,
        ``X.npy`` or ``X``), or None for the first selected one. ``report.grams`` says how each
        was made: ``rntk_core.gram(X / x_scale, **params)`` reproduces it.
        """
        import numpy as np

        file = self._gram_file(name)
        entry = next((e for e in self.artifacts() if e["name"] == file), None)
        if entry is None:
            raise ClientError(f"job {self.id}: {file} is in the report but not among the artifacts")
        buffer = io.BytesIO()
        self._fetch(entry, buffer)
        buffer.seek(0)
        return np.load(buffer, allow_pickle=False)

    def download(self, folder: str | os.PathLike[str] | None = None) -> list[Path]:
        """Every artifact into ``folder`` (default ``./<job id>``), sub-paths kept, each checked
        against its sha256 and renamed into place only then; the files written."""
        out = Path(folder) if folder is not None else Path(self.id)
        listing = self.artifacts()
        if not listing:
            state = self.refresh().get("state")
            raise ClientError(f"job {self.id} has no artifacts (it is {state})",
                              EXIT_JOB if state in ("failed", "cancelled") else EXIT_ERROR)
        written = []
        try:
            for entry in listing:
                target = _target(out, entry["name"])
                target.parent.mkdir(parents=True, exist_ok=True)
                partial = target.with_name(target.name + ".part")
                try:
                    with open(partial, "wb") as handle:
                        self._fetch(entry, handle)
                except BaseException:
                    partial.unlink(missing_ok=True)
                    raise
                os.replace(partial, target)
                written.append(target)
        except OSError as exc:
            raise ClientError(f"cannot write under {out}: {exc.strerror or exc}") from None
        return written

    def _fetch(self, entry: dict[str, Any], sink: IO[bytes]) -> None:
        """Stream one artifact into ``sink``, checking its sha256 against the listing's."""
        api, digest = self.client.api, hashlib.sha256()
        try:
            with api.http.stream("GET", entry.get("url") or f"{job_path(self.id)}/artifacts/{entry['name']}") as response:
                if response.status_code >= 400:
                    response.read()
                    api.check(response)
                for chunk in response.iter_bytes(1 << 20):
                    digest.update(chunk)
                    sink.write(chunk)
        except httpx.HTTPError as exc:
            raise ClientError(f"downloading {entry['name']} from {api.base} failed: {reason(exc)}") from None
        if entry.get("sha256") and digest.hexdigest() != entry["sha256"]:
            raise ClientError(f"{entry['name']}: sha256 {digest.hexdigest()} does not match "
                              f"the server's {entry['sha256']}")


def _target(out: Path, name: str) -> Path:
    """Where artifact ``name`` goes under ``out``; refuses names that would leave it."""
    parts = PurePosixPath(name).parts
    if not parts or name.startswith("/") or any(p in ("", ".", "..") or "\\" in p for p in parts):
        raise ClientError(f"refusing artifact name {name!r}")
    return out.joinpath(*parts)

