"""The tiers import only downwards: engine <- evaluation <- service (worker <- app) <- launcher.

The client of a running server (``rntk_client``) stands beside them: it talks HTTP and imports
none of them. ``rntk_launcher`` (the ``rntk`` command) is the top and may import every one.

Each dynamic check runs in a fresh interpreter, so nothing imported by another test can hide a leak.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap

import pytest

from tests.helpers import REPO, UCI

ENGINE = "rntk_core"
EVALUATION = "rntk_core.evaluation"
#: Never loaded by the client: the server, the workers, the launcher, the library, their frameworks.
NOT_IN_CLIENT = ("app", "worker", "rntk_launcher", "rntk_core", "fastapi", "starlette", "uvicorn", "celery", "kombu",
                 "redis", "jax", "jaxlib", "numpy", "sklearn", "pydantic")
#: What the Python client may import inside a function, on first use: NumPy for arrays and Gram
#: matrices, the typed report (pydantic only, JAX-free; test_client_report_model_is_jax_free), and
#: the compare rows (standard library only).
LAZY_IN_CLIENT = ("numpy", "rntk_core.evaluation.report.model", "rntk_core.evaluation.report.compare")


def _modules_after(code: str) -> set[str]:
    """The top-level and rntk names in sys.modules after running ``code`` in a fresh Python."""
    script = textwrap.dedent(code) + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))\n"
    run = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    return set(json.loads(run.stdout.strip().splitlines()[-1]))


def _imports(path, top_level_only: bool = False) -> set[str]:
    """Every absolute module name a file imports (relative imports resolved); with
    ``top_level_only``, those run on import only (outside functions and ``if TYPE_CHECKING:``)."""
    package = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
    tree = ast.parse(path.read_text())
    if top_level_only:
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                node.body = []
            elif isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
                node.body = []
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                found.add(".".join(base + ([node.module] if node.module else [])))
            else:
                found.add(node.module or "")
    return found


def _files(folder: str, exclude: str | None = None):
    for path in sorted((REPO / folder).rglob("*.py")):
        if exclude is None or not path.relative_to(REPO).as_posix().startswith(exclude):
            yield path


@pytest.mark.parametrize(("folder", "exclude", "forbidden"), [
    ("rntk_core", "rntk_core/evaluation", (EVALUATION, "app", "worker", "rntk_client", "rntk_launcher", "sklearn",
                                           "pydantic", "fastapi", "celery")),
    ("rntk_core/evaluation", None, ("app", "worker", "rntk_client", "rntk_launcher", "fastapi", "celery",
                                    "starlette", "redis")),
    ("worker", None, ("app", "rntk_client", "rntk_launcher")),
    ("app", None, ("rntk_client", "rntk_launcher", "jax")),
    # no rntk_core either: the client needs none of it (a pure, JAX-free module may be allowed here)
    ("rntk_client", None, NOT_IN_CLIENT),
])
def test_no_module_imports_upwards(folder, exclude, forbidden) -> None:
    lazy = LAZY_IN_CLIENT if folder == "rntk_client" else ()
    offenders = {
        f"{path.relative_to(REPO)}: {name}"
        for path in _files(folder, exclude)
        for name in _imports(path) - (set(lazy) - _imports(path, top_level_only=True))
        if any(name == bad or name.startswith(bad + ".") for bad in forbidden)
    }
    assert not offenders, sorted(offenders)


def test_client_report_model_is_jax_free() -> None:
    """``Job.report`` imports the report model: pydantic, and no engine, evaluation or service."""
    loaded = _modules_after("import rntk_client; from rntk_core.evaluation.report.model import Report")
    assert "pydantic" in loaded
    assert not {name for name in loaded if name.split(".")[0] in ("jax", "jaxlib", "sklearn", "app", "worker")}
    assert not {name for name in loaded if name.startswith("rntk_core.") and name not in (
        "rntk_core.evaluation", "rntk_core.evaluation.report", "rntk_core.evaluation.report.model")}


def test_engine_package_is_cheap_to_import() -> None:
    loaded = _modules_after("import rntk_core")
    assert "jax" not in loaded and not any(name.startswith(EVALUATION) for name in loaded)


def test_engine_imports_no_evaluation_or_service() -> None:
    loaded = _modules_after("import rntk_core; rntk_core.gram([[0.1, 0.2]])")
    assert "jax" in loaded  # the engine itself did load
    assert not {name for name in loaded if name.startswith((EVALUATION, "app", "worker", "sklearn", "fastapi"))}


def test_evaluation_imports_no_service() -> None:
    loaded = _modules_after("import rntk_core.evaluation.evaluate, rntk_core.evaluation.cli, "
                            "rntk_core.evaluation.uci_bench, rntk_core.evaluation.report.writer")
    assert not {name for name in loaded if name.split(".")[0] in ("app", "worker", "fastapi", "celery", "starlette")}


def test_worker_imports_no_app() -> None:
    loaded = _modules_after("import worker.tasks, worker.queue, worker.jobs, worker.settings, worker.logs")
    assert not {name for name in loaded if name.split(".")[0] in ("app", "rntk_client", "rntk_launcher")}


def test_client_package_loads_no_service_framework_or_engine() -> None:
    """Every client module's top level, then a command run through (against no server)."""
    loaded = _modules_after("""
        import importlib, pkgutil
        import rntk_client
        for module in pkgutil.iter_modules(rntk_client.__path__, "rntk_client."):
            importlib.import_module(module.name)
        code = rntk_client.run("jobs", ["--server", "http://127.0.0.1:9", "--json"])
        assert code == 2, code  # nothing listens on port 9: one error line, exit 2
    """)
    assert "httpx" in loaded and "rntk_client.submit" in loaded
    assert not {name for name in loaded if name.split(".")[0] in NOT_IN_CLIENT}


@pytest.mark.skipif(not (UCI / "iris").is_dir(), reason="../shared/data/uci is not available")
def test_api_process_never_imports_jax(tmp_path) -> None:
    """Upload a dataset and submit a job through the app: the API process stays free of JAX."""
    loaded = _modules_after(f"""
        import io, zipfile, pathlib
        from fastapi.testclient import TestClient
        from app.main import create_app
        from worker.settings import Settings
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for path in pathlib.Path({str(UCI / "iris")!r}).iterdir():
                archive.write(path, f"iris/{{path.name}}")
        app = create_app(Settings(data_dir={str(tmp_path / "data")!r}), sweep=False)
        with TestClient(app) as client:
            dataset = client.post("/datasets", files={{"file": ("iris.zip", buffer.getvalue())}})
            assert dataset.status_code == 201, dataset.text
            job = client.post("/jobs", json={{"dataset_id": dataset.json()["id"], "config": {{"families": ["RBF"]}}}})
            assert job.status_code == 202, job.text
            assert client.get("/openapi.json").status_code == 200
    """)
    assert "jax" not in loaded and "rntk_core.api" not in loaded
    assert "rntk_core.evaluation.datasets" not in loaded  # validated in a parse process (app.uploads)


def test_client_commands_of_the_rntk_script_load_no_server_or_jax() -> None:
    """``rntk jobs`` goes through the launcher, which imports the server and the engine only for
    their own commands."""
    loaded = _modules_after("""
        from rntk_launcher.cli import main
        assert main(["jobs", "--server", "http://127.0.0.1:9"]) == 2
    """)
    assert "rntk_client.cli" in loaded and "rntk_launcher.serve" not in loaded
    assert not {name for name in loaded if name.split(".")[0] in set(NOT_IN_CLIENT) - {"rntk_launcher"}}
