"""Writing an evaluation's outcome: ``report.json``, ``report.csv`` and ``report.html``.

:func:`write_report` takes the report dict that the evaluation builds (dataset summary,
protocol, every validated configuration, the per-family outcome, the non-converged fits,
timings, versions, reproducibility) and writes three files, each atomically (a temporary
file in the same folder, then ``os.replace``):

- ``report.json``: the dict itself, ``indent=2``. Non-finite floats (NaN, inf) become
  ``null``; numpy scalars and arrays become plain numbers and lists.
- ``report.csv``: one row per (family, configuration) with ``family, C,
  validation_accuracy, chosen`` and one column per parameter name across all families
  (blank where a family has no such parameter).
- ``report.html``: one self-contained page (:mod:`.html`: a jinja2 template and matplotlib
  figures as inline SVG; no scripts, nothing fetched).

Every field is optional: a missing or malformed one renders as "n/a" or drops its section.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..files import atomic_write_text, json_safe
from .html import chosen_keys, config_key, configurations, render_html

__all__ = ["write_report"]


def write_report(
    report: dict,
    out_dir: Path,
    *,
    selected_gram: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    drawn: dict | None = None,
) -> None:
    """Write ``report.json``, ``report.csv`` and ``report.html`` into ``out_dir``.

    Args:
        report: the evaluation's report dict (see the module docstring); any field may be
            missing. Non-finite floats are written as ``null`` / blank / "n/a".
        out_dir: created if needed; existing report files are replaced atomically.
        selected_gram: optional ``(N, N)`` Gram matrix of the selected kernel, drawn with
            rows and columns sorted by class.
        labels: optional ``(N,)`` class labels for ``selected_gram``.
        drawn: the figures, drawn beforehand by :func:`.html.draw_figures` (else drawn here).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    safe = json_safe(report)
    if not isinstance(safe, dict):
        raise TypeError(f"report must be a dict, got {type(report).__name__}")
    text = json.dumps(safe, indent=2, allow_nan=False) + "\n"
    atomic_write_text(out_dir / "report.json", text)
    atomic_write_text(out_dir / "report.csv", _render_csv(safe))
    atomic_write_text(out_dir / "report.html", render_html(safe, selected_gram, labels, drawn=drawn))


def _render_csv(report: dict) -> str:
    """One row per (family, configuration): family, C, validation_accuracy, chosen, params."""
    rows = configurations(report)
    param_keys: list[str] = []
    for entry in rows:
        params = entry.get("params")
        for key in params if isinstance(params, dict) else {}:
            if key not in param_keys:
                param_keys.append(key)
    chosen = chosen_keys(report)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["family", "C", "validation_accuracy", "chosen", *param_keys])
    for entry in rows:
        family = str(entry.get("family", ""))
        params = entry.get("params") if isinstance(entry.get("params"), dict) else {}
        is_chosen = config_key(params, entry.get("C")) in chosen.get(family, set())
        writer.writerow(
            [family, _csv_cell(entry.get("C")), _csv_cell(entry.get("validation_accuracy")),
             is_chosen, *(_csv_cell(params.get(key)) for key in param_keys)]
        )
    return buffer.getvalue()


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)
