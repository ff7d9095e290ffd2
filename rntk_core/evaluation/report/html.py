"""``report.html``: the report dict as one offline page, rendered by a jinja2 template.

The page (``templates/report.html.j2``, autoescaped) holds the dataset summary, a
reproducibility block, the families table (ties summarised: a count, the parameters they
share, and the full list in a collapsible ``<details>``; the spread over test folds and over
the selection's CV folds where there are several, each family's seconds), the chosen values
at an edge of their grid, the test-accuracy figure, per-class accuracy and confusion
matrices, a validation heatmap per family with more than one configuration, the selected
Gram matrix (cosine-normalised and centred), the non-converged fits and what each saved
file holds. Figures come from :mod:`.figures` as inline SVG; there are no scripts and
nothing is fetched.

The table's wording follows the protocol (:func:`design`): a TRAIN/TEST split has one test
score and no spread over test folds, its spread is over the CV folds that chose the
hyperparameters; the UCI protocol has one validation split and 4 test folds.

Every field of the report is optional: a missing or malformed one renders as "n/a" or drops
its part of the page.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from ..files import json_safe
from . import figures
from .timing import describe_seconds

__all__ = ["chosen_keys", "config_key", "configurations", "design", "draw_figures", "fmt_value", "render_html"]

_TIMING_ORDER = ("load", "kernels", "validation", "test", "report", "total")
_DATASET_FIELDS = ("name", "format", "n_samples", "n_steps", "n_features", "n_classes", "sha256")
_GRAM_MAX_PIXELS = 256
_RECURRENT_MARK = "RNN"
#: Confusion matrices of more classes than this are left to report.json.
_CONFUSION_MAX_CLASSES = 30

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


def _numbers(values: Any) -> list[float]:
    return [f for f in map(_num, _as_list(values)) if f is not None]


def design(report: dict) -> dict:
    """How the report's numbers were made, for the page's wording.

    ``test_folds``: the test folds (``testing.folds``, else the most fold accuracies of a
    family); ``selection_method`` (``holdout`` or ``cv``) and ``selection_folds``; the
    captions that say what test and validation accuracy, and their ± columns, are.
    """
    testing, selection = _as_dict(report.get("testing")), _as_dict(report.get("selection"))
    folds = testing.get("folds")
    if isinstance(folds, bool) or not isinstance(folds, int):
        folds = max((len(_numbers(_as_dict(o).get("fold_accuracies")))
                     for o in _as_dict(report.get("families")).values()), default=0)
    method = str(selection.get("method") or "holdout")
    k = selection.get("folds")
    k = k if isinstance(k, int) and not isinstance(k, bool) else 1
    if folds == 1:
        test = ("Test accuracy: the chosen configurations' majority vote, refitted on the training part "
                "(TRAIN) and scored once on the test part (TEST). One train/test split: there is no spread "
                "over test folds.")
    elif folds >= 2:
        test = (f"Test accuracy: the mean over the {folds} test folds of the chosen configurations' majority "
                "vote; ± is the standard deviation over those folds.")
    else:
        test = "Test accuracy: the chosen configurations' majority vote on the test data."
    if method == "cv" and k >= 2:
        validation = (f"Validation accuracy: the mean over the {k} cross-validation folds inside the training "
                      "part that chose the hyperparameters (per fold, the mean accuracy of the chosen "
                      "configurations); ± is the standard deviation over those folds.")
    else:
        validation = ("Validation accuracy: on the one train / validation split that chose the "
                      "hyperparameters (a single split: no spread).")
    return {"test_folds": folds, "selection_method": method, "selection_folds": k,
            "test_spread": folds >= 2, "selection_spread": method == "cv" and k >= 2,
            "test_caption": test, "validation_caption": validation,
            "validation_header": (f"validation accuracy (mean over {k} CV folds)" if method == "cv" and k >= 2
                                  else "validation accuracy (one split)")}


def _std_text(recorded: Any, values: list[float]) -> str:
    std = _num(recorded)
    if std is None and len(values) >= 2:
        std = float(np.std(values))
    return "" if std is None else f"± {100 * std:.1f}"


def _edge_text(edge: dict) -> str:
    """``C = 100 is the largest of its grid (0.01, 1, 100): try 1000, 10000``."""
    side = "largest" if edge.get("edge") == "max" else "smallest"
    grid = ", ".join(fmt_value(v) for v in _as_list(edge.get("grid")))
    suggest = ", ".join(fmt_value(v) for v in _as_list(edge.get("suggest")))
    text = f"{fmt_value(edge.get('param'))} = {fmt_value(edge.get('value'))} is the {side} value of its grid"
    text += f" ({grid})" if grid else ""
    return text + (f": extend the grid with {suggest}" if suggest else "")


def _family_rows(report: dict) -> list[dict]:
    families = _as_dict(report.get("families"))
    all_seconds = _as_dict(report.get("family_seconds"))
    rows = []
    for name in _family_names(report):
        outcome = _as_dict(families.get(name))
        folds = _numbers(outcome.get("fold_accuracies"))
        selection = _numbers(outcome.get("selection_fold_accuracies"))
        seconds = _as_dict(all_seconds.get(name))
        edges = [_as_dict(edge) for edge in _as_list(outcome.get("grid_edges")) if isinstance(edge, dict)]
        rows.append({
            "name": name, "test": _pct(outcome.get("test_accuracy")),
            "std": _std_text(outcome.get("test_std"), folds),
            "folds": ", ".join(_pct(f) for f in folds) or "n/a",
            "validation": _pct(outcome.get("validation_accuracy")),
            "selection_std": _std_text(outcome.get("selection_std"), selection),
            "selection_folds": ", ".join(_pct(f) for f in selection) or "n/a",
            "seconds": describe_seconds(seconds) if _num(seconds.get("total")) is not None else "n/a",
            "edges": [_edge_text(edge) for edge in edges],
            "edge_params": " ".join(str(edge.get("param")) for edge in edges),
            "chosen": _chosen_summary(_as_list(outcome.get("chosen"))),
        })
    return rows


def _accuracy_bars(report: dict) -> list[figures.FamilyBar]:
    """One bar per family; fold dots only where there are several test folds (a single one
    would repeat the bar)."""
    families = _as_dict(report.get("families"))
    bars = []
    for name in _family_names(report):
        outcome = _as_dict(families.get(name))
        folds = _numbers(outcome.get("fold_accuracies"))
        bars.append(figures.FamilyBar(name, _num(outcome.get("test_accuracy")),
                                      tuple(folds) if len(folds) >= 2 else (),
                                      _RECURRENT_MARK in name.upper()))
    return bars


def _class_names(report: dict) -> list[str]:
    """The dataset's class labels, else the first family's per-class keys."""
    classes = _as_list(_as_dict(report.get("dataset")).get("classes"))
    if classes:
        return [str(name) for name in classes]
    for outcome in _as_dict(report.get("families")).values():
        per_class = _as_dict(_as_dict(outcome).get("per_class_accuracy"))
        if per_class:
            return [str(name) for name in per_class]
    return []


def _per_class(report: dict) -> dict | None:
    """The per-class accuracy table (classes x families) and each family's confusion matrix."""
    families = _as_dict(report.get("families"))
    names = [name for name in _family_names(report)
             if _as_dict(_as_dict(families.get(name)).get("per_class_accuracy"))]
    classes = _class_names(report)
    if not names or not classes:
        return None
    table = [{"label": label,
              "cells": [_pct(_as_dict(_as_dict(families[name]).get("per_class_accuracy")).get(label))
                        for name in names]}
             for label in classes]
    matrices = []
    for name in names:
        matrix = _as_list(_as_dict(families[name]).get("confusion_matrix"))
        rows = [[fmt_value(v) for v in _as_list(row)] for row in matrix]
        fits = len(rows) == len(classes) and all(len(row) == len(classes) for row in rows)
        total = sum(_num(v) or 0 for row in matrix for v in _as_list(row))
        correct = sum(_num(_as_list(row)[i]) or 0 for i, row in enumerate(matrix) if i < len(_as_list(row)))
        matrices.append({"family": name, "id": f"confusion-{_dom_id(name)}",
                         "rows": list(zip(classes, rows)) if fits else [],
                         "shown": fits and len(classes) <= _CONFUSION_MAX_CLASSES,
                         "accuracy": _pct(correct / total) if total else "n/a", "count": int(total)})
    return {"families": names, "rows": table, "classes": classes, "matrices": matrices,
            "open": len(classes) <= 10}


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
            "table": Markup(figures.heatmap_table(row_order, labels, values, picked))}


def _single(family: str, entry: dict) -> dict:
    """A family with one configuration: its validation accuracy as a number, no heatmap (a
    one-cell image would only show its colour bar's arbitrary range)."""
    params = dict(_as_dict(entry.get("params")))
    if entry.get("C") is not None:
        params["C"] = entry["C"]
    return {"family": family, "id": f"validation-single-{_dom_id(family)}", "single": True,
            "configuration": _params_text(params) or "no parameters",
            "accuracy": _pct(entry.get("validation_accuracy"))}


def _heatmaps(report: dict, check: Callable[[], None] = lambda: None) -> list[dict]:
    maps = []
    for name in _family_names(report):
        entries = [e for e in configurations(report) if str(e.get("family", "")) == name]
        if len(entries) == 1:
            maps.append(_single(name, entries[0]))
        elif entries:
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


def normalised_kernel(matrix: np.ndarray) -> tuple[np.ndarray, bool]:
    """The kernel as the picture shows it: cosine-normalised, ``K_ij / sqrt(K_ii K_jj)``, then
    double-centred (each row's and column's mean removed, the overall mean added back), so 0
    is an average pair and what is left is the part that tells samples apart. (A recurrent
    Gram matrix is often a large constant plus a small varying part: raw, it looks uniform.)

    Returns the matrix and whether it was cosine-normalised (not when some ``K_ii`` is not a
    positive number: then only centred). NaN entries stay NaN and are left out of the means.
    """
    matrix = np.asarray(matrix, dtype=float)
    diagonal = np.diag(matrix)
    cosine = bool(np.all(np.isfinite(diagonal)) and np.all(diagonal > 0))
    if cosine:
        scale = np.sqrt(diagonal)
        matrix = matrix / scale[:, None] / scale[None, :]
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN row has no mean
        rows, columns = np.nanmean(matrix, axis=1), np.nanmean(matrix, axis=0)
        overall = np.nanmean(matrix)
    centred = matrix - np.nan_to_num(rows)[:, None] - np.nan_to_num(columns)[None, :] + np.nan_to_num(overall)
    return centred, cosine


def _gram(report: dict, gram: Any, labels: Any) -> dict:
    problem = _gram_problem(gram)
    if problem is not None:
        return {"problem": problem}
    raw = np.asarray(gram, dtype=float)
    raw_finite = raw[np.isfinite(raw)]
    raw_low, raw_high = (float(v) for v in np.percentile(raw_finite, [1, 99])) if raw_finite.size else (0.0, 0.0)
    matrix, cosine = normalised_kernel(raw)
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
    reach = float(np.max(np.abs(np.percentile(finite, [1, 99])))) if finite.size else 0.0
    if reach <= 0:
        reach = float(np.max(np.abs(finite))) if finite.size else 0.0
    reach = reach if reach > 0 else 1.0
    low, high = -reach, reach  # symmetric: 0, an average pair, is the colour map's middle
    grams = [g for g in _as_list(report.get("grams")) if isinstance(g, dict)]
    which = ""
    if grams:
        which = (f"Kernel: {_params_text(_as_dict(grams[0].get('params'))) or 'n/a'} "
                 f"(file {fmt_value(grams[0].get('file'))}). ")
    sorting = (f"rows and columns sorted by class ({len(classes)} classes, boundaries in black)"
               if classes else "unsorted (no usable labels)")
    scale = f"shown at {size}x{size} by block averaging" if size < n else "one pixel per sample"
    what = ("the cosine-normalised kernel K_ij / sqrt(K_ii K_jj), double-centred" if cosine
            else "the kernel double-centred (its diagonal is not positive, so it is not cosine-normalised)")
    caption = (f"{which}Shown: {what} (each row's and column's mean removed), so 0 is an average pair, red "
               f"more similar than average and blue less. N = {n} samples, {sorting}; {scale}; colour scale "
               f"symmetric about 0, clipped at the 1st-99th percentile (±{reach:.3g}). The raw K ranges over "
               f"[{raw_low:.4g}, {raw_high:.4g}] (1st-99th percentile).")
    label = "centred cosine similarity (0 = average pair)" if cosine else "centred kernel (0 = average pair)"
    svg = figures.gram_svg(np.nan_to_num(shown, nan=0.0), n, classes, counts, low, high, cmap="RdBu_r",
                           label=label, boundary="black")
    return {"warning": warning, "caption": caption, "svg": Markup(svg), "pixels": shown.shape[0],
            "normalised": "centred cosine" if cosine else "centred"}


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
    shape = design(report)
    context = {
        "title": title,
        "design": shape,
        "dataset": [(key, fmt_value(dataset.get(key))) for key in _DATASET_FIELDS
                    if key != "sha256" or key in dataset]
        + [(key, fmt_value(dataset[key])) for key in ("classes", "lengths") if dataset.get(key)],
        "run": [("protocol", fmt_value(report.get("protocol"))),
                *([("selection", f"{selection.get('method')} ({selection.get('folds')} fold(s))")]
                  if selection else []),
                *([("testing", "one train/test split" if shape["test_folds"] == 1
                    else f"{shape['test_folds']} test folds")] if shape["test_folds"] else []),
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
        "seconds_shown": any(_num(_as_dict(entry).get("total")) is not None
                             for entry in _as_dict(report.get("family_seconds")).values()),
        "seconds_attribution": str(report.get("seconds_attribution") or ""),
        "per_class": _per_class(report),
        "files": [{"file": fmt_value(f.get("file")), "key": fmt_value(f.get("key")) if f.get("key") else "",
                   "meaning": fmt_value(f.get("meaning"))}
                  for f in _as_list(report.get("files")) if isinstance(f, dict)],
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
