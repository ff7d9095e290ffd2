"""docker-compose.yml, docker-compose.worker.yml, .env.example and Dockerfile.gpu, checked
by parsing them (no Docker engine runs here)."""

from __future__ import annotations

import os
import re

import pytest

from worker.settings import Settings

from .conftest import REPO

GPU_WORKERS = ("worker-gpu0", "worker-gpu1")
#: Variables read by the engine itself (rntk_core), not by the service's settings class.
INTERPOLATION = re.compile(r"\$\{(\w+)(?::?[-?+]([^}]*))?\}")


def settings_variables() -> set[str]:
    prefix = Settings.model_config["env_prefix"]
    return {f"{prefix}{name}".upper() for name in Settings.model_fields}


def environment(service: dict) -> dict[str, str]:
    """A service's environment as a dict, from either the map or the list form."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def seconds(duration: str) -> float:
    """A compose duration such as ``2m``, ``1m30s`` or ``90s`` in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", str(duration))
    assert parts, f"not a duration: {duration!r}"
    return sum(float(value) * units[unit] for value, unit in parts)


def workers(document: dict) -> dict[str, dict]:
    return {name: service for name, service in document["services"].items() if name.startswith("worker-gpu")}


def test_every_service_is_there(compose) -> None:
    services = compose["services"]
    assert {"redis", "api", *GPU_WORKERS, "flower"} <= set(services)
    assert "flower" in services["flower"]["profiles"]
    for name in ("redis", "api", *GPU_WORKERS):  # started by a plain `docker compose up`
        assert not services[name].get("profiles"), name


@pytest.mark.parametrize("document_name", ["compose", "compose_worker"])
def test_gpu_workers_one_per_gpu_from_one_anchor(document_name, request) -> None:
    document = request.getfixturevalue(document_name)
    text = (REPO / ("docker-compose.yml" if document_name == "compose" else "docker-compose.worker.yml")).read_text()
    assert re.search(r"^x-worker: &worker\s*$", text, re.M), "the workers' shared definition"
    found = workers(document)
    assert set(found) == set(GPU_WORKERS)
    assert text.count("<<: *worker") == len(found)
    template = document["x-worker"]
    used_ids: list[str] = []
    for name, service in found.items():
        for key in ("image", "command", "environment", "volumes", "stop_grace_period", "healthcheck"):
            assert service[key] == template[key], (name, key)
        assert service["command"] == ["worker"]
        devices = service["deploy"]["resources"]["reservations"]["devices"]
        assert len(devices) == 1, name
        assert devices[0]["driver"] == "nvidia"
        assert "gpu" in devices[0]["capabilities"]
        assert "count" not in devices[0], "count and device_ids exclude each other"
        assert len(devices[0]["device_ids"]) == 1 and all(isinstance(i, str) for i in devices[0]["device_ids"])
        used_ids += devices[0]["device_ids"]
        # long enough for a job to be abandoned and re-queued cleanly (acks_late + reject_on_worker_lost)
        assert seconds(service["stop_grace_period"]) >= 60, name
        assert "celery" in " ".join(service["healthcheck"]["test"]), "workers are checked over the broker"
    assert len(set(used_ids)) == len(used_ids), f"two workers share a GPU: {used_ids}"


def test_redis_durable_and_healthy(compose) -> None:
    redis = compose["services"]["redis"]
    command = " ".join(redis["command"]) if isinstance(redis["command"], list) else redis["command"]
    assert re.search(r"--appendonly\s+yes", command)
    assert re.search(r"--maxmemory-policy\s+noeviction", command)
    assert redis["healthcheck"]["test"][-2:] == ["redis-cli", "ping"]
    volume = redis["volumes"][0].split(":")
    assert volume[0] in compose["volumes"] and volume[1] == "/data"


def test_api_waits_for_healthy_redis_and_checks_readyz(compose) -> None:
    api = compose["services"]["api"]
    assert api["depends_on"]["redis"]["condition"] == "service_healthy"
    assert "/readyz" in " ".join(api["healthcheck"]["test"])
    assert api["command"][:1] == ["serve"] and "0.0.0.0" in api["command"]
    for name in GPU_WORKERS:
        assert compose["services"][name]["depends_on"]["redis"]["condition"] == "service_healthy"


def _compose_variables() -> dict[str, str]:
    """Every RNTK_* name in the compose files and .env.example, with the file it is in."""
    found: dict[str, str] = {}
    for file in ("docker-compose.yml", "docker-compose.worker.yml", ".env.example"):
        for name in re.findall(r"\bRNTK_[A-Z0-9_]+", (REPO / file).read_text()):
            found.setdefault(name, file)
    return found


def test_environment_names_are_settings_fields() -> None:
    known = settings_variables()
    unknown = {name: file for name, file in _compose_variables().items()
               if name not in known}
    assert not unknown, f"RNTK_* names that no settings field reads: {unknown}"
    assert {"RNTK_API_KEYS", "RNTK_BROKER_URL", "RNTK_DATA_DIR"} <= known


def _resolved(value: str) -> str:
    """Compose interpolation with defaults applied, and a placeholder for required ones."""
    return INTERPOLATION.sub(lambda match: match.group(2) if ":-" in match.group(0) else "placeholder", value)


def test_required_settings_are_set(compose, compose_worker, monkeypatch) -> None:
    api = environment(compose["services"]["api"])
    assert re.fullmatch(r"\$\{RNTK_API_KEYS:\?[^}]+\}", api["RNTK_API_KEYS"]), "compose must refuse to run without keys"
    assert api["RNTK_BROKER_URL"] == "redis://redis:6379/0"
    for document in (compose, compose_worker):
        for name, service in workers(document).items():
            env = environment(service)
            assert env.get("RNTK_BROKER_URL"), name
            assert env.get("RNTK_DATA_DIR"), name
    assert environment(compose_worker["services"]["worker-gpu0"])["RNTK_BROKER_URL"].startswith("${RNTK_BROKER_URL:?")
    env_example = dict(line.split("=", 1) for line in (REPO / ".env.example").read_text().splitlines()
                       if line and not line.startswith("#"))
    assert env_example.get("RNTK_API_KEYS", "").strip(), ".env.example must set a key placeholder"
    # the values a container would get parse with the settings class
    for service in (compose["services"]["api"], *workers(compose).values(), *workers(compose_worker).values()):
        for key in [k for k in list(os.environ) if k.startswith("RNTK_")]:
            monkeypatch.delenv(key)
        for key, value in environment(service).items():
            if key.startswith("RNTK_"):
                monkeypatch.setenv(key, _resolved(value))
        settings = Settings()
        assert not settings.embedded and str(settings.data_dir) == "/data"


def _named_mount(service: dict, target: str) -> str | None:
    for volume in service.get("volumes", []):
        source, _, rest = volume.partition(":")
        if rest.split(":")[0] == target:
            return source
    return None


def test_data_volume_shared_by_api_and_workers(compose, compose_worker) -> None:
    assert {"rntk-data", "redis-data"} <= set(compose["volumes"])
    services = compose["services"]
    data_dir = environment(services["api"])["RNTK_DATA_DIR"]
    sources = {name: _named_mount(services[name], data_dir) for name in ("api", *GPU_WORKERS)}
    assert set(sources.values()) == {"rntk-data"}, sources
    for name in GPU_WORKERS:
        assert environment(services[name])["RNTK_DATA_DIR"] == data_dir
    # worker-only hosts: the same directory from NFS
    volume = compose_worker["volumes"]["rntk-data"]
    assert volume["driver_opts"]["type"] == "nfs"
    assert "addr=${NFS_SERVER" in volume["driver_opts"]["o"] and volume["driver_opts"]["device"].startswith(":$")
    for name, service in workers(compose_worker).items():
        assert _named_mount(service, environment(service)["RNTK_DATA_DIR"]) == "rntk-data", name
    assert "redis" not in compose_worker["services"] and "api" not in compose_worker["services"]


def test_dockerfile_cuda_jax_nonroot_healthcheck(dockerfile_lines) -> None:
    text = "\n".join(dockerfile_lines)
    base = next(line for line in dockerfile_lines if line.startswith("FROM "))
    match = re.match(r"FROM nvidia/cuda:(\d+)\.[\w.-]+", base)
    assert match, base
    cuda_major = match.group(1)
    assert re.search(rf"pip install [^\n]*jax\[cuda{cuda_major}\]", text), "JAX's CUDA wheels matching the base"
    assert re.search(r"pip install (\S+ )*\.(\s|$)", text, re.M), "the project installed from the repo"
    users = [line.split()[1] for line in dockerfile_lines if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    health = next(line for line in dockerfile_lines if line.startswith("HEALTHCHECK "))
    assert "/healthz" in health
    assert "LD_LIBRARY_PATH" not in (REPO / "Dockerfile.gpu").read_text()
    assert 'ENTRYPOINT ["rntk"]' in dockerfile_lines
    assert any(line.startswith("CMD ") and '"serve"' in line and '"0.0.0.0"' in line for line in dockerfile_lines)
    for line in dockerfile_lines:  # every COPY source exists in the repository
        if line.startswith("COPY ") and "--from" not in line:
            for source in line.split()[1:-1]:
                assert (REPO / source).exists(), source


def test_grid_memory_setting(monkeypatch) -> None:
    """RNTK_GRID_MEMORY_MB reaches evaluate_dataset(grid_memory=) in bytes; 0 (the compose
    default) leaves it to the device's free memory."""
    monkeypatch.setenv("RNTK_GRID_MEMORY_MB", "64")
    assert Settings().grid_memory_bytes == 64 << 20
    monkeypatch.setenv("RNTK_GRID_MEMORY_MB", "0")
    assert Settings().grid_memory_bytes is None
