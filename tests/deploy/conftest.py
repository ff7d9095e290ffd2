"""Fixtures for the deployment checks: the compose files and Dockerfile, parsed."""

from __future__ import annotations


import pytest
import yaml

from tests.helpers import REPO


@pytest.fixture(scope="session")
def compose() -> dict:
    """docker-compose.yml (YAML anchors and ``<<`` merge keys resolved by the loader)."""
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


@pytest.fixture(scope="session")
def compose_worker() -> dict:
    """docker-compose.worker.yml, for worker-only hosts."""
    return yaml.safe_load((REPO / "docker-compose.worker.yml").read_text())


@pytest.fixture(scope="session")
def dockerfile_lines() -> list[str]:
    """Dockerfile.gpu as instructions: comments dropped, ``\\`` continuations joined."""
    instructions, current = [], ""
    for raw in (REPO / "Dockerfile.gpu").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1].strip() + " "
            continue
        instructions.append((current + line).strip())
        current = ""
    if current:
        instructions.append(current.strip())
    return instructions
