"""How compared jobs' configs differ: the compare page and ``rntk compare`` show the same rows.

Standard library only: the client imports it lazily (tests/test_layers.py, LAZY_IN_CLIENT).
"""

from __future__ import annotations

import json

__all__ = ["config_differences"]


def config_differences(configs: list[dict | None]) -> list[tuple[str, list[str]]]:
    """The config fields whose values are not the same in every job, each with every job's
    value as compact JSON (``-`` where a job's config lacks the field), in field order."""
    configs = [config or {} for config in configs]
    keys = list(dict.fromkeys(key for config in configs for key in config))
    rows = []
    for key in keys:
        values = [json.dumps(config[key], separators=(",", ":")) if key in config else "-" for config in configs]
        if len(set(values)) > 1:
            rows.append((key, values))
    return rows
