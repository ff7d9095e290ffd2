"""``report.html``: the report dict as one offline page, rendered by a jinja2 template.

The page (``templates/report.html.j2``, autoescaped) holds the dataset summary, a
reproducibility block, the families table (ties summarised: a count, the parameters they
share, and the full list in a collapsible ``<details>``), the test-accuracy figure, a
validation heatmap per family, the selected Gram matrix and the non-converged fits. Figures
come from :mod:`.figures` as inline SVG; there are no scripts and nothing is fetched.

Every field of the report is optional: a missing or malformed one renders as "n/a" or drops
its part of the page.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from ..files import json_safe
from . import figures

__all__ = ["chosen_keys", "config_key", "configurations", "draw_figures", "fmt_value", "render_html"]

_TIMING_ORDER = ("load", "kernels", "validation", "test", "report", "total")
_DATASET_FIELDS = ("name", "format", "n_samples", "n_steps", "n_features", "n_classes", "sha256")
_GRAM_MAX_PIXELS = 256
_RECURRENT_MARK = "RNN"

_ENV = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True, lstrip_blocks=True,
)


# --------------------------------------------------------------------------- small helpers


def _as_dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _num(value: Any) -> float | None:
    """A finite float, or None for anything else (bools, strings, NaN, missing)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def fmt_value(value: Any) -> str:
    """A parameter or C value as short text."""
    if isinstance(value, bool) or value is None:
        return "n/a" if value is None else str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format(value, ".4g")
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def _pct(value: Any, digits: int = 1) -> str:
    number = _num(value)
    return "n/a" if number is None else f"{100 * number:.{digits}f}%"


def _seconds(value: Any) -> str:
    number = _num(value)
    return "n/a" if number is None else f"{number:.2f} s"


def _dom_id(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", text)


def _params_text(params: Mapping, keys: Iterable[str] | None = None) -> str:
    keys = list(params) if keys is None else [k for k in keys if k in params]
    return ", ".join(f"{key}={fmt_value(params[key])}" for key in keys)


def config_key(params: Any, c_value: Any) -> str:
    """A canonical identity for (params, C); C is compared as a float."""
    return json.dumps([_as_dict(params), _num(c_value)], sort_keys=True)


def configurations(report: dict) -> list[dict]:
    return [entry for entry in _as_list(report.get("configurations")) if isinstance(entry, dict)]


def chosen_keys(report: dict) -> dict[str, set[str]]:
    return {
        str(family): {
            config_key(_as_dict(entry).get("params"), _as_dict(entry).get("C"))
            for entry in _as_list(_as_dict(outcome).get("chosen"))
        }
        for family, outcome in _as_dict(report.get("families")).items()
    }


def _family_names(report: dict) -> list[str]:
    """Families in the order of ``families``, then any only seen in ``configurations``."""
    names = [str(name) for name in _as_dict(report.get("families"))]
    for entry in configurations(report):
        name = str(entry.get("family", ""))
        if name and name not in names:
            names.append(name)
    return names


def _rows(mapping: Mapping[str, Any], order: Iterable[str], render) -> list[tuple[str, str]]:
    keys = [k for k in order if k in mapping] + [k for k in mapping if k not in order]
    return [(key, render(mapping[key])) for key in keys]


# --------------------------------------------------------------------------- families table


def _chosen_summary(chosen: list) -> dict:
    """Distinct chosen configurations with counts, and the parameters they all share."""
    counts: dict[str, int] = {}
    params_list = []
    for entry in chosen:
        entry = _as_dict(entry)
        params = dict(_as_dict(entry.get("params")))
        if "C" in entry:
            params["C"] = entry["C"]
        text = _params_text(params)
        if text not in counts:
            params_list.append(params)
        counts[text] = counts.get(text, 0) + 1
    shared: dict[str, Any] = {}
    if len(params_list) > 1:
        for key in params_list[0]:
            values = {fmt_value(p.get(key)) for p in params_list}
            if len(values) == 1 and all(key in p for p in params_list):
                shared[key] = params_list[0][key]
    return {"items": [(text, count) for text, count in counts.items()],
            "distinct": len(counts), "shared": _params_text(shared)}


def _family_rows(report: dict) -> list[dict]:
    families = _as_dict(report.get("families"))
    rows = []
    for name in _family_names(report):
        outcome = _as_dict(families.get(name))
        folds = [f for f in map(_num, _as_list(outcome.get("fold_accuracies"))) if f is not None]
        std = float(np.std(folds)) if len(folds) >= 2 else None
        rows.append({
            "name": name, "test": _pct(outcome.get("test_accuracy")),
            "std": "" if std is None else f"± {100 * std:.1f}",
            "folds": ", ".join(_pct(f) for f in folds) or "n/a",
            "validation": _pct(outcome.get("validation_accuracy")),
            "chosen": _chosen_summary(_as_list(outcome.get("chosen"))),
        })
    return rows


def _accuracy_bars(report: dict) -> list[figures.FamilyBar]:
    families = _as_dict(report.get("families"))
    bars = []
    for name in _family_names(report):
        outcome = _as_dict(families.get(name))
        folds = [f for f in map(_num, _as_list(outcome.get("fold_accuracies"))) if f is not None]
        bars.append(figures.FamilyBar(name, _num(outcome.get("test_accuracy")), tuple(folds),
                                      _RECURRENT_MARK in name.upper()))
    return bars


# --------------------------------------------------------------------------- heatmaps


def _varying_keys(entries: list[dict]) -> tuple[list[str], dict[str, Any]]:
    """Parameter names that vary across ``entries``, and the constant ones with their value."""
    keys: list[str] = []
    for entry in entries:
        keys += [key for key in _as_dict(entry.get("params")) if key not in keys]
    varying, constant = [], {}
    for key in keys:
        values = {fmt_value(_as_dict(e.get("params")).get(key)) for e in entries}
        if len(values) > 1:
            varying.append(key)
        else:
            constant[key] = _as_dict(entries[0].get("params")).get(key)
    return varying, constant


def _sort_token(value: Any) -> tuple:
    number = _num(value)
    return (0, number, "") if number is not None else (1, 0.0, fmt_value(value))


def _heatmap(report: dict, family: str, entries: list[dict]) -> dict:
    """One family's heatmap: its SVG and the parameters fixed for every row."""
    varying, constant = _varying_keys(entries)
    chosen = chosen_keys(report).get(family, set())
    rows: dict[str, tuple] = {}
    columns: dict[str, Any] = {}
    for entry in entries:
        params = _as_dict(entry.get("params"))
        rows[_params_text(params, varying) or "(single configuration)"] = tuple(
            _sort_token(params.get(key)) for key in varying)
        columns[fmt_value(entry.get("C"))] = entry.get("C")
    row_order = sorted(rows, key=lambda label: rows[label])
    column_order = sorted(columns.values(), key=lambda c: (c is None, _sort_token(c)))
    column_index = {fmt_value(c): j for j, c in enumerate(column_order)}
    row_index = {label: i for i, label in enumerate(row_order)}
    values = np.full((len(row_order), len(column_order)), np.nan)
    picked = np.zeros(values.shape, dtype=bool)
    for entry in entries:
        params = _as_dict(entry.get("params"))
        i = row_index[_params_text(params, varying) or "(single configuration)"]
        j = column_index[fmt_value(entry.get("C"))]
        accuracy = _num(entry.get("validation_accuracy"))
        values[i, j] = np.nan if accuracy is None else accuracy
        picked[i, j] = config_key(params, entry.get("C")) in chosen
    labels = ["no C" if c is None else fmt_value(c) for c in column_order]
    return {"family": family, "id": f"validation-heatmap-{_dom_id(family)}",
            "fixed": _params_text(constant), "cells": len(entries),
            "svg": Markup(figures.heatmap_svg(row_order, labels, values, picked))}


def _heatmaps(report: dict, check: Callable[[], None] = lambda: None) -> list[dict]:
    maps = []
    for name in _family_names(report):
        entries = [e for e in configurations(report) if str(e.get("family", "")) == name]
        if entries:
            maps.append(_heatmap(report, name, entries))
            check()
    return maps


# --------------------------------------------------------------------------- Gram image


def _sorted_by_class(gram: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, list, list[int]]:
    """The Gram matrix with rows and columns sorted by class, the classes and their sizes."""
    if labels.dtype == object:
        labels = labels.astype(str)
    order = np.argsort(labels, kind="stable")
    classes, counts = np.unique(labels[order], return_counts=True)
    return gram[np.ix_(order, order)], classes.tolist(), counts.tolist()


def _block_average(matrix: np.ndarray, size: int) -> np.ndarray:
    """Average ``matrix`` over a ``size x size`` grid of near-equal blocks (NaN ignored)."""
    edges = np.linspace(0, matrix.shape[0], size + 1).astype(int)[:-1]
    finite = np.isfinite(matrix)
    sums = np.add.reduceat(np.add.reduceat(np.where(finite, matrix, 0.0), edges, 0), edges, 1)
    counts = np.add.reduceat(np.add.reduceat(finite.astype(float), edges, 0), edges, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def _gram_problem(gram: Any) -> str | None:
    """Why ``gram`` cannot be drawn, or None."""
    if gram is None:
        return "No Gram matrix was passed to the report."
    gram = np.asarray(gram)
    if gram.ndim != 2 or gram.shape[0] != gram.shape[1] or gram.shape[0] == 0:
        return f"The Gram matrix has shape {gram.shape}; a square (N, N) matrix is needed."
    if not (np.issubdtype(gram.dtype, np.number) or gram.dtype == bool):
        return f"The Gram matrix has dtype {gram.dtype}; numbers are needed."
    return None


def _gram(report: dict, gram: Any, labels: Any) -> dict:
    problem = _gram_problem(gram)
    if problem is not None:
        return {"problem": problem}
    matrix = np.asarray(gram, dtype=float)
    n = matrix.shape[0]
    warning, classes, counts = None, [], []
    if labels is not None:
        labels = np.asarray(labels).reshape(-1)
        if labels.shape[0] != n:
            warning = f"{labels.shape[0]} labels for a {n}-sample Gram matrix; drawn unsorted."
        else:
            matrix, classes, counts = _sorted_by_class(matrix, labels)
    size = min(n, _GRAM_MAX_PIXELS)
    shown = _block_average(matrix, size) if size < n else matrix
    finite = shown[np.isfinite(shown)]
    low, high = (float(v) for v in np.percentile(finite, [1, 99])) if finite.size else (0.0, 1.0)
    if high <= low and finite.size:
        low, high = float(finite.min()), float(finite.max())
    if high <= low:
        high = low + 1.0
    grams = [g for g in _as_list(report.get("grams")) if isinstance(g, dict)]
    which = ""
    if grams:
        which = (f"Kernel: {_params_text(_as_dict(grams[0].get('params'))) or 'n/a'} "
                 f"(file {fmt_value(grams[0].get('file'))}). ")
    sorting = (f"rows and columns sorted by class ({len(classes)} classes, boundaries in white)"
               if classes else "unsorted (no usable labels)")
    scale = f"shown at {size}x{size} by block averaging" if size < n else "one pixel per sample"
    caption = (f"{which}N = {n} samples, {sorting}; {scale}; colour scale clipped to the "
               f"1st-99th percentile [{low:.4g}, {high:.4g}].")
    svg = figures.gram_svg(np.nan_to_num(shown, nan=low), n, classes, counts, low, high)
    return {"warning": warning, "caption": caption, "svg": Markup(svg), "pixels": shown.shape[0]}


# --------------------------------------------------------------------------- page


def _majority(report: dict) -> float | None:
    """The majority-class accuracy recorded by the evaluation (None when absent)."""
    return _num(report.get("majority_class_accuracy"))


def _reproducibility(report: dict) -> list[tuple[str, str]]:
    repro = _as_dict(report.get("reproducibility"))
    dataset = _as_dict(report.get("dataset"))
    rows = []
    if dataset.get("sha256"):
        rows.append(("dataset sha256", str(dataset["sha256"])))
    for key, value in repro.items():
        rows.append((key.replace("_", " "), value if isinstance(value, str)
                     else json.dumps(value, sort_keys=True)))
    return rows


def draw_figures(report: dict, gram: np.ndarray | None = None, labels: np.ndarray | None = None,
                 check: Callable[[], None] | None = None) -> dict:
    """The page's figures (most of its cost): accuracy bars, heatmaps and the Gram image.

    Drawn apart from :func:`render_html` so that the evaluation can time them and still put
    that time in the report it renders. Only families, configurations, the majority class
    and ``grams`` are read, so timings may change between drawing and rendering. ``check``
    runs between figures (a cancel check: an exception from it stops the drawing).
    """
    check = check or (lambda: None)
    report = json_safe(report)
    accuracy = Markup(figures.accuracy_svg(_accuracy_bars(report), _majority(report))) \
        if _family_names(report) else None
    check()
    heatmaps = _heatmaps(report, check)
    check()
    return {"accuracy_svg": accuracy, "heatmaps": heatmaps, "gram": _gram(report, gram, labels)}


def render_html(report: dict, gram: np.ndarray | None = None, labels: np.ndarray | None = None,
                *, drawn: dict | None = None) -> str:
    """The page for a (JSON-safe) report dict; ``gram``/``labels`` draw the selected kernel.

    ``drawn``: the figures from :func:`draw_figures` of the same report (drawn here if None).
    """
    dataset = _as_dict(report.get("dataset"))
    title = f"RNTK evaluation: {dataset.get('name', 'unnamed dataset')}"
    failed = [f for f in _as_list(report.get("non_converged")) if isinstance(f, dict)]
    majority = _majority(report)
    selection = _as_dict(report.get("selection"))
    context = {
        "title": title,
        "dataset": [(key, fmt_value(dataset.get(key))) for key in _DATASET_FIELDS
                    if key != "sha256" or key in dataset]
        + [(key, fmt_value(dataset[key])) for key in ("classes", "lengths") if dataset.get(key)],
        "run": [("protocol", fmt_value(report.get("protocol"))),
                *([("selection", f"{selection.get('method')} ({selection.get('folds')} fold(s))")]
                  if selection else []),
                *[("note", str(note)) for note in _as_list(report.get("notes"))],
                *([("figures", f"not drawn: {report['figures_error']}")] if report.get("figures_error") else []),
                ("normalize", fmt_value(_as_dict(report.get("config")).get("normalize"))),
                ("x_scale", fmt_value(report.get("x_scale"))),
                ("majority class", _pct(majority)),
                ("device", fmt_value(report.get("device")))],
        "timings": _rows(_as_dict(report.get("timings")), _TIMING_ORDER, _seconds),
        "versions": _rows(_as_dict(report.get("versions")), (), fmt_value),
        "reproducibility": _reproducibility(report),
        "families": _family_rows(report),
        "majority": _pct(majority) if majority is not None else None,
        **(drawn if drawn is not None else draw_figures(report, gram, labels)),
        "non_converged_recorded": "non_converged" in report,
        "non_converged": [
            {"family": fmt_value(f.get("family")),
             "params": _params_text(_as_dict(f.get("params"))) or "n/a",
             "C": fmt_value(f.get("C")), "split": fmt_value(f.get("split"))}
            for f in failed],
        "grams": [{"file": fmt_value(g.get("file")),
                   "params": _params_text(_as_dict(g.get("params"))),
                   "x_scale": fmt_value(g.get("x_scale"))}
                  for g in _as_list(report.get("grams")) if isinstance(g, dict)],
        "config": json.dumps(report.get("config"), indent=2, sort_keys=True),
    }
    return _ENV.get_template("report.html.j2").render(**context)
