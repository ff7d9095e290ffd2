"""Writing an evaluation's outcome: ``report.json``, ``report.csv`` and ``report.html``.

:func:`write_report` takes the report dict that the evaluation builds (dataset summary,
protocol, every validated configuration, the per-family outcome, the non-converged fits,
timings, versions) and writes three files, each atomically (a temporary file in the same
folder, then ``os.replace``):

- ``report.json``: the dict itself, ``indent=2``. Non-finite floats (NaN, inf) become
  ``null``; numpy scalars and arrays become plain numbers and lists.
- ``report.csv``: one row per (family, configuration) with ``family, C,
  validation_accuracy, chosen`` and one column per parameter name across all families
  (blank where a family has no such parameter).
- ``report.html``: one self-contained page (inline CSS and SVG, the Gram matrix as an
  inline PNG data URI; no scripts, nothing fetched) with the dataset summary, the family
  table, a test-accuracy bar chart, a validation heatmap per family, the selected Gram
  matrix sorted by class, and the non-converged fits.

Every field is optional: a missing or malformed one renders as "n/a" or drops its section.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import math
import re
import struct
import zlib
from html import escape
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ..files import atomic_write_text, json_safe

__all__ = ["write_report"]

_TIMING_ORDER = ("load", "kernels", "validation", "test", "total")
_DATASET_FIELDS = ("name", "format", "n_samples", "n_steps", "n_features", "n_classes")
_GRAM_MAX_PIXELS = 256
_GRAM_DISPLAY_PX = 480

# Viridis at nine evenly spaced points; interpolated linearly in between.
_VIRIDIS = np.array(
    [
        (68, 1, 84), (71, 44, 122), (59, 82, 139), (44, 114, 142), (33, 145, 140),
        (39, 173, 129), (92, 200, 99), (170, 220, 50), (253, 231, 37),
    ],
    dtype=float,
)
_MISSING_RGB = (200, 200, 200)


# --------------------------------------------------------------------------- public API


def write_report(
    report: dict,
    out_dir: Path,
    *,
    selected_gram: np.ndarray | None = None,
    labels: np.ndarray | None = None,
) -> None:
    """Write ``report.json``, ``report.csv`` and ``report.html`` into ``out_dir``.

    Args:
        report: the evaluation's report dict (see the module docstring); any field may be
            missing. Non-finite floats are written as ``null`` / blank / "n/a".
        out_dir: created if needed; existing report files are replaced atomically.
        selected_gram: optional ``(N, N)`` Gram matrix of the selected kernel, drawn with
            rows and columns sorted by class.
        labels: optional ``(N,)`` class labels for ``selected_gram``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    safe = json_safe(report)
    if not isinstance(safe, dict):
        raise TypeError(f"report must be a dict, got {type(report).__name__}")
    text = json.dumps(safe, indent=2, allow_nan=False) + "\n"
    atomic_write_text(out_dir / "report.json", text)
    atomic_write_text(out_dir / "report.csv", _render_csv(safe))
    atomic_write_text(out_dir / "report.html", _render_html(safe, selected_gram, labels))


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


def _fmt_value(value: Any) -> str:
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


def _e(value: Any) -> str:
    """Escaped text for HTML content and attribute values."""
    return escape(str(value), quote=True)


def _dom_id(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", text)


def _params_text(params: Mapping, keys: Iterable[str] | None = None) -> str:
    keys = list(params) if keys is None else [k for k in keys if k in params]
    return ", ".join(f"{key}={_fmt_value(params[key])}" for key in keys)


def _config_key(params: Any, c_value: Any) -> str:
    """A canonical identity for (params, C); C is compared as a float."""
    c_number = _num(c_value)
    return json.dumps([_as_dict(params), c_number], sort_keys=True)


def _text_width(text: str, px_per_char: float = 6.6) -> float:
    return len(text) * px_per_char


# --------------------------------------------------------------------------- colour + PNG


def _viridis(fractions: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] (clipped) to uint8 RGB; NaN maps to light grey."""
    fractions = np.asarray(fractions, dtype=float)
    clipped = np.clip(np.nan_to_num(fractions, nan=0.0), 0.0, 1.0)
    anchors = np.linspace(0.0, 1.0, len(_VIRIDIS))
    rgb = np.stack([np.interp(clipped, anchors, _VIRIDIS[:, ch]) for ch in range(3)], axis=-1)
    rgb = np.rint(rgb).astype(np.uint8)
    rgb[np.isnan(fractions)] = _MISSING_RGB
    return rgb


def _hex(rgb: Sequence[int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(int(c) for c in rgb))


def _text_colour(rgb: Sequence[int]) -> str:
    red, green, blue = (int(c) for c in rgb)
    return "#000" if 0.299 * red + 0.587 * green + 0.114 * blue > 140 else "#fff"


def _png_bytes(rgb: np.ndarray) -> bytes:
    """Encode an ``(H, W, 3)`` uint8 image as an 8-bit RGB PNG (filter 0 on every row)."""
    height, width, _ = rgb.shape
    rows = np.ascontiguousarray(rgb, dtype=np.uint8).reshape(height, width * 3)
    raw = np.concatenate([np.zeros((height, 1), np.uint8), rows], axis=1).tobytes()

    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(tag + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def _png_data_uri(rgb: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(_png_bytes(rgb)).decode("ascii")


def _legend_bar(x: float, y: float, height: float, low: str, high: str) -> str:
    """A vertical viridis colour bar (low at the bottom) with its end labels."""
    steps = 40
    colours = _viridis(np.linspace(1.0, 0.0, steps))
    step = height / steps
    rects = "".join(
        f'<rect x="{x:.1f}" y="{y + k * step:.2f}" width="14" height="{step + 0.3:.2f}" '
        f'fill="{_hex(colour)}"/>'
        for k, colour in enumerate(colours)
    )
    return (
        f'<g class="legend">{rects}'
        f'<rect x="{x:.1f}" y="{y:.1f}" width="14" height="{height:.1f}" fill="none" stroke="#555"/>'
        f'<text x="{x + 18:.1f}" y="{y + 9:.1f}">{_e(high)}</text>'
        f'<text x="{x + 18:.1f}" y="{y + height:.1f}">{_e(low)}</text></g>'
    )


# --------------------------------------------------------------------------- CSV


def _chosen_keys(report: dict) -> dict[str, set[str]]:
    return {
        str(family): {
            _config_key(_as_dict(entry).get("params"), _as_dict(entry).get("C"))
            for entry in _as_list(_as_dict(outcome).get("chosen"))
        }
        for family, outcome in _as_dict(report.get("families")).items()
    }


def _configurations(report: dict) -> list[dict]:
    return [entry for entry in _as_list(report.get("configurations")) if isinstance(entry, dict)]


def _render_csv(report: dict) -> str:
    """One row per (family, configuration): family, C, validation_accuracy, chosen, params."""
    configurations = _configurations(report)
    param_keys: list[str] = []
    for entry in configurations:
        for key in _as_dict(entry.get("params")):
            if key not in param_keys:
                param_keys.append(key)
    chosen = _chosen_keys(report)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["family", "C", "validation_accuracy", "chosen", *param_keys])
    for entry in configurations:
        family = str(entry.get("family", ""))
        params = _as_dict(entry.get("params"))
        is_chosen = _config_key(params, entry.get("C")) in chosen.get(family, set())
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


# --------------------------------------------------------------------------- HTML page

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;
max-width:1150px;padding:1rem 1.5rem;color:#222;line-height:1.4}
h1{margin-bottom:.2rem}h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}
th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
.meta{display:flex;flex-wrap:wrap;gap:1.5rem}.meta table{margin:0}
.warning{background:#fff3cd;border:1px solid #e0b400;padding:.6rem .8rem;border-radius:4px}
.ok{color:#2e7d32}.muted{color:#666;font-size:.85rem}
svg{font-family:inherit;font-size:12px;display:block;margin:.5rem 0}
svg text{fill:#222}.figure{overflow-x:auto}
pre{background:#f7f7f7;padding:.6rem;overflow-x:auto;font-size:.8rem}
ul.chosen{margin:0;padding-left:1.1rem}
"""


def _render_html(report: dict, gram: np.ndarray | None, labels: np.ndarray | None) -> str:
    dataset = _as_dict(report.get("dataset"))
    title = f"RNTK evaluation: {dataset.get('name', 'unnamed dataset')}"
    sections = [
        _header_section(report, title),
        _families_section(report),
        _accuracy_section(report),
        _heatmaps_section(report),
        _gram_section(report, gram, labels),
        _non_converged_section(report),
        _provenance_section(report),
    ]
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(sections)
        + "\n</body>\n</html>\n"
    )


def _key_value_table(rows: Sequence[tuple[str, str]], caption: str) -> str:
    body = "".join(f"<tr><th>{_e(key)}</th><td>{_e(value)}</td></tr>" for key, value in rows)
    return f"<table><caption>{_e(caption)}</caption>{body}</table>"


def _header_section(report: dict, title: str) -> str:
    dataset = _as_dict(report.get("dataset"))
    dataset_rows = [(key, _fmt_value(dataset.get(key))) for key in _DATASET_FIELDS]
    dataset_rows += [(key, _fmt_value(dataset[key])) for key in ("classes", "lengths") if dataset.get(key)]
    selection = _as_dict(report.get("selection"))
    run_rows = [
        ("protocol", _fmt_value(report.get("protocol"))),
        *([("selection", f"{selection.get('method')} ({selection.get('folds')} fold(s))")] if selection else []),
        *[("note", note) for note in report.get("notes") or []],
        ("x_scale", _fmt_value(report.get("x_scale"))),
        ("device", _fmt_value(report.get("device"))),
    ]
    timings = _as_dict(report.get("timings"))
    timing_keys = [k for k in _TIMING_ORDER if k in timings] + [
        k for k in timings if k not in _TIMING_ORDER
    ]
    timing_rows = [(key, _seconds(timings[key])) for key in timing_keys] or [("timings", "n/a")]
    versions = _as_dict(report.get("versions"))
    version_rows = [(key, _fmt_value(value)) for key, value in versions.items()] or [
        ("versions", "n/a")
    ]
    warning = ""
    failed = _as_list(report.get("non_converged"))
    if failed:
        warning = (
            f'<p class="warning"><strong>Warning:</strong> {len(failed)} SVM fit(s) did not '
            'converge; see <a href="#non-converged">non-converged fits</a>.</p>'
        )
    tables = "".join(
        _key_value_table(rows, caption)
        for rows, caption in (
            (dataset_rows, "Dataset"), (run_rows, "Run"),
            (timing_rows, "Timings"), (version_rows, "Versions"),
        )
    )
    return f'<header>\n<h1>{_e(title)}</h1>\n{warning}<div class="meta">{tables}</div>\n</header>'


def _family_names(report: dict) -> list[str]:
    """Families in the order of ``families``, then any only seen in ``configurations``."""
    names = [str(name) for name in _as_dict(report.get("families"))]
    for entry in _configurations(report):
        name = str(entry.get("family", ""))
        if name and name not in names:
            names.append(name)
    return names


def _chosen_list(chosen: list) -> str:
    """Distinct chosen configurations, with a count where one was chosen several times."""
    counts: dict[str, int] = {}
    for entry in chosen:
        entry = _as_dict(entry)
        text = _params_text(_as_dict(entry.get("params")))
        if "C" in entry:
            text = f"{text}, C={_fmt_value(entry['C'])}" if text else f"C={_fmt_value(entry['C'])}"
        counts[text] = counts.get(text, 0) + 1
    if not counts:
        return "n/a"
    items = "".join(
        f"<li>{_e(text)}{_e(f' (x{count})') if count > 1 else ''}</li>"
        for text, count in counts.items()
    )
    return f'<ul class="chosen">{items}</ul>'


def _families_section(report: dict) -> str:
    families = _as_dict(report.get("families"))
    rows = []
    for name in _family_names(report):
        outcome = _as_dict(families.get(name))
        folds = [_pct(value) for value in _as_list(outcome.get("fold_accuracies"))]
        rows.append(
            f"<tr><th>{_e(name)}</th><td class=\"num\">{_e(_pct(outcome.get('test_accuracy')))}</td>"
            f"<td class=\"num\">{_e(', '.join(folds) or 'n/a')}</td>"
            f"<td class=\"num\">{_e(_pct(outcome.get('validation_accuracy')))}</td>"
            f"<td>{_chosen_list(_as_list(outcome.get('chosen')))}</td></tr>"
        )
    if not rows:
        return '<section id="families"><h2>Families</h2><p>No families were evaluated.</p></section>'
    head = (
        "<tr><th>family</th><th>test accuracy</th><th>per-fold accuracy</th>"
        "<th>validation accuracy</th><th>chosen configuration(s)</th></tr>"
    )
    return (
        '<section id="families"><h2>Families</h2>'
        f"<table><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table></section>"
    )


def _accuracy_section(report: dict) -> str:
    return (
        '<section id="accuracy"><h2>Test accuracy per family</h2>'
        '<p class="muted">Bars: test accuracy (the protocol\'s held-out estimate), blue for '
        "recurrent kernels, grey for baselines; dots: the per-fold accuracies. Sorted best "
        "first.</p>"
        f'<div class="figure">{_accuracy_svg(report)}</div></section>'
    )


def _accuracy_svg(report: dict) -> str:
    """Horizontal bars, 0-100%, best family on top, value labels and fold dots."""
    families = _as_dict(report.get("families"))
    scored, unscored = [], []
    for name in _family_names(report):
        outcome = _as_dict(families.get(name))
        accuracy = _num(outcome.get("test_accuracy"))
        folds = [f for f in map(_num, _as_list(outcome.get("fold_accuracies"))) if f is not None]
        (scored if accuracy is not None else unscored).append((name, accuracy, folds))
    scored.sort(key=lambda item: -item[1])
    rows = scored + unscored
    left = max([_text_width(name, 7.2) for name, _, _ in rows] + [40]) + 12
    plot_width, bar_height, gap, top = 520.0, 20.0, 8.0, 10.0
    height = top + len(rows) * (bar_height + gap) + 30
    width = left + plot_width + 70
    parts = [
        f'<svg id="accuracy-plot" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="test accuracy per family">'
    ]
    axis_y = top + len(rows) * (bar_height + gap)
    for tick in range(0, 101, 20):
        x = left + plot_width * tick / 100
        parts.append(
            f'<line x1="{x:.1f}" y1="{top - 4:.1f}" x2="{x:.1f}" y2="{axis_y:.1f}" stroke="#e2e2e2"/>'
            f'<text x="{x:.1f}" y="{axis_y + 16:.1f}" text-anchor="middle">{tick}%</text>'
        )
    for index, (name, accuracy, folds) in enumerate(rows):
        y = top + index * (bar_height + gap)
        parts.append(_accuracy_bar(name, accuracy, folds, left, y, plot_width, bar_height))
    parts.append(
        f'<line x1="{left:.1f}" y1="{axis_y:.1f}" x2="{left + plot_width:.1f}" '
        f'y2="{axis_y:.1f}" stroke="#888"/></svg>'
    )
    return "".join(parts)


def _accuracy_bar(
    name: str, accuracy: float | None, folds: list[float],
    left: float, y: float, plot_width: float, bar_height: float,
) -> str:
    centre = y + bar_height / 2
    label = f'<text x="{left - 8:.1f}" y="{centre + 4:.1f}" text-anchor="end">{_e(name)}</text>'
    if accuracy is None:
        return label + f'<text x="{left + 4:.1f}" y="{centre + 4:.1f}" fill="#888">n/a</text>'
    colour = "#3b6ea5" if "RNN" in name.upper() else "#9a9a9a"
    bar_width = plot_width * min(max(accuracy, 0.0), 1.0)
    dots = "".join(
        f'<circle cx="{left + plot_width * min(max(fold, 0.0), 1.0):.1f}" cy="{centre:.1f}" r="3" '
        f'fill="#111" stroke="#fff" stroke-width="1"><title>fold {k + 1}: {_e(_pct(fold))}</title>'
        "</circle>"
        for k, fold in enumerate(folds)
    )
    return (
        label
        + f'<rect x="{left:.1f}" y="{y:.1f}" width="{bar_width:.1f}" height="{bar_height:.1f}" '
        f'fill="{colour}"><title>{_e(name)}: {_e(_pct(accuracy, 2))}</title></rect>'
        + dots
        + f'<text x="{left + plot_width + 8:.1f}" y="{centre + 4:.1f}">{_e(_pct(accuracy))}</text>'
    )


def _heatmaps_section(report: dict) -> str:
    figures = []
    for name in _family_names(report):
        entries = [e for e in _configurations(report) if str(e.get("family", "")) == name]
        if entries:
            figures.append(_heatmap_figure(report, name, entries))
    body = "".join(figures) or "<p>No validated configurations were recorded.</p>"
    return (
        '<section id="validation"><h2>Validation accuracy over the grid</h2>'
        '<p class="muted">Rows: kernel configurations; columns: the SVM penalty C. Each '
        "family has its own colour scale (legend on the right); outlined cells were chosen "
        f"(in at least one split).</p>{body}</section>"
    )


def _varying_keys(entries: list[dict]) -> tuple[list[str], dict[str, Any]]:
    """Parameter names that vary across ``entries``, and the constant ones with their value."""
    keys: list[str] = []
    for entry in entries:
        keys += [key for key in _as_dict(entry.get("params")) if key not in keys]
    varying, constant = [], {}
    for key in keys:
        values = {_fmt_value(_as_dict(e.get("params")).get(key)) for e in entries}
        if len(values) > 1:
            varying.append(key)
        else:
            constant[key] = _as_dict(entries[0].get("params")).get(key)
    return varying, constant


def _sort_token(value: Any) -> tuple:
    number = _num(value)
    return (0, number, "") if number is not None else (1, 0.0, _fmt_value(value))


def _heatmap_grid(
    entries: list[dict], varying: list[str]
) -> tuple[list[str], list[Any], dict[tuple[str, str], tuple[float | None, dict]]]:
    """Row labels (sorted), C columns (sorted, None last) and (row, C text) -> (acc, entry)."""
    rows: dict[str, tuple] = {}
    columns: dict[str, Any] = {}
    cells: dict[tuple[str, str], tuple[float | None, dict]] = {}
    for entry in entries:
        params = _as_dict(entry.get("params"))
        row = _params_text(params, varying) or "(single configuration)"
        rows[row] = tuple(_sort_token(params.get(key)) for key in varying)
        c_value = entry.get("C")
        columns[_fmt_value(c_value)] = c_value
        cells[(row, _fmt_value(c_value))] = (_num(entry.get("validation_accuracy")), entry)
    row_order = sorted(rows, key=lambda label: rows[label])
    column_order = sorted(columns.values(), key=lambda c: (c is None, _sort_token(c)))
    return row_order, column_order, cells


def _heatmap_figure(report: dict, family: str, entries: list[dict]) -> str:
    varying, constant = _varying_keys(entries)
    fixed = _params_text(constant)
    note = f'<p class="muted">Fixed for all rows: {_e(fixed)}</p>' if fixed else ""
    svg = _heatmap_svg(report, family, entries, varying)
    return f"<h3>{_e(family)}</h3>{note}<div class=\"figure\">{svg}</div>"


def _heatmap_svg(report: dict, family: str, entries: list[dict], varying: list[str]) -> str:
    rows, columns, cells = _heatmap_grid(entries, varying)
    chosen = _chosen_keys(report).get(family, set())
    values = [acc for acc, _ in cells.values() if acc is not None]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    span = high - low if high > low else 1.0
    cell_w, cell_h, header = 64.0, 20.0, 34.0
    left = max([_text_width(row) for row in rows] + [60]) + 12
    grid_h = len(rows) * cell_h
    width = left + len(columns) * cell_w + 90
    height = header + max(grid_h, 90) + 10
    parts = [
        f'<svg id="validation-heatmap-{_e(_dom_id(family))}" width="{width:.0f}" '
        f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" role="img" '
        f'aria-label="validation accuracy of {_e(family)}">',
        f'<text x="{left + len(columns) * cell_w / 2:.1f}" y="12" text-anchor="middle">C</text>',
    ]
    for j, c_value in enumerate(columns):
        label = "no C" if c_value is None else _fmt_value(c_value)
        parts.append(
            f'<text x="{left + (j + 0.5) * cell_w:.1f}" y="{header - 6:.1f}" '
            f'text-anchor="middle">{_e(label)}</text>'
        )
    for i, row in enumerate(rows):
        y = header + i * cell_h
        parts.append(f'<text x="{left - 6:.1f}" y="{y + 14:.1f}" text-anchor="end">{_e(row)}</text>')
        for j, c_value in enumerate(columns):
            cell = cells.get((row, _fmt_value(c_value)))
            parts.append(_heatmap_cell(cell, row, c_value, left + j * cell_w, y, cell_w, cell_h,
                                       low, span, chosen))
    parts.append(_legend_bar(left + len(columns) * cell_w + 16, header, 90, _pct(low), _pct(high)))
    parts.append("</svg>")
    return "".join(parts)


def _heatmap_cell(
    cell: tuple[float | None, dict] | None, row: str, c_value: Any, x: float, y: float,
    width: float, height: float, low: float, span: float, chosen: set[str],
) -> str:
    if cell is None:
        return (f'<rect x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{height:.1f}" '
                'fill="#fafafa" stroke="#fff"/>')
    accuracy, entry = cell
    fraction = np.nan if accuracy is None else (accuracy - low) / span
    rgb = _viridis(np.array([fraction]))[0]
    is_chosen = _config_key(entry.get("params"), entry.get("C")) in chosen
    stroke = 'stroke="#d62728" stroke-width="2.5"' if is_chosen else 'stroke="#fff"'
    text = _pct(accuracy)
    c_text = "" if c_value is None else f", C={_fmt_value(c_value)}"
    tooltip = f"{row}{c_text}: {text}{' (chosen)' if is_chosen else ''}"
    return (
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{height:.1f}" '
        f'fill="{_hex(rgb)}" {stroke}><title>{_e(tooltip)}</title></rect>'
        f'<text x="{x + width / 2:.1f}" y="{y + 14:.1f}" text-anchor="middle" '
        f'style="fill:{_text_colour(rgb)};font-size:11px">{_e(text)}</text>'
    )


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


def _gram_pixels(matrix: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Viridis pixels clipped to the 1st-99th percentile, and that range."""
    finite = matrix[np.isfinite(matrix)]
    if finite.size == 0:
        return _viridis(np.full(matrix.shape, np.nan)), 0.0, 0.0
    low, high = (float(v) for v in np.percentile(finite, [1, 99]))
    if high <= low:
        low, high = float(finite.min()), float(finite.max())
    span = high - low if high > low else 1.0
    return _viridis((matrix - low) / span), low, high


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


def _labels_problem(labels: Any, n: int) -> str | None:
    """Why ``labels`` cannot sort an ``n``-sample Gram matrix, or None."""
    if labels is None:
        return None
    count = np.asarray(labels).reshape(-1).shape[0]
    if count != n:
        return f"{count} labels for a {n}-sample Gram matrix; drawn unsorted."
    return None


def _gram_section(report: dict, gram: Any, labels: Any) -> str:
    heading = '<section id="gram"><h2>Selected Gram matrix</h2>'
    problem = _gram_problem(gram)
    if problem is not None:
        return f'{heading}<p class="muted">{_e(problem)}</p></section>'
    matrix = np.asarray(gram, dtype=float)
    label_problem = _labels_problem(labels, matrix.shape[0])
    classes, counts = [], []
    if labels is not None and label_problem is None:
        matrix, classes, counts = _sorted_by_class(matrix, np.asarray(labels).reshape(-1))
    size = min(matrix.shape[0], _GRAM_MAX_PIXELS)
    shown = _block_average(matrix, size) if size < matrix.shape[0] else matrix
    pixels, low, high = _gram_pixels(shown)
    caption = _gram_caption(report, matrix.shape[0], size, classes, label_problem, low, high)
    svg = _gram_svg(pixels, matrix.shape[0], classes, counts, low, high)
    return f'{heading}{caption}<div class="figure">{svg}</div></section>'


def _gram_caption(
    report: dict, n: int, size: int, classes: list, problem: str | None, low: float, high: float
) -> str:
    grams = [g for g in _as_list(report.get("grams")) if isinstance(g, dict)]
    which = ""
    if grams:
        params = _params_text(_as_dict(grams[0].get("params")))
        which = f"Kernel: {params or 'n/a'} (file {_fmt_value(grams[0].get('file'))}). "
    sorting = (f"rows and columns sorted by class ({len(classes)} classes, boundaries drawn)"
               if classes else "unsorted (no usable labels)")
    scale = (f"shown at {size}x{size} by block averaging" if size < n else "one pixel per sample")
    text = (f"{which}N = {n} samples, {sorting}; {scale}; colour scale clipped to the "
            f"1st-99th percentile [{low:.4g}, {high:.4g}].")
    warning = f'<p class="warning">{_e(problem)}</p>' if problem else ""
    return f'{warning}<p class="muted">{_e(text)}</p>'


def _gram_svg(
    pixels: np.ndarray, n: int, classes: list, counts: list[int], low: float, high: float
) -> str:
    display, left, top = float(_GRAM_DISPLAY_PX), 70.0, 50.0
    width, height = left + display + 110, top + display + 10
    parts = [
        f'<svg id="gram-image" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="selected Gram matrix">',
        f'<image x="{left}" y="{top}" width="{display}" height="{display}" '
        f'preserveAspectRatio="none" style="image-rendering:pixelated" '
        f'href="{_png_data_uri(pixels)}"/>',
        f'<rect x="{left}" y="{top}" width="{display}" height="{display}" fill="none" stroke="#555"/>',
    ]
    parts += _class_marks(classes, counts, n, left, top, display)
    parts.append(_legend_bar(left + display + 16, top, 160, f"{low:.3g}", f"{high:.3g}"))
    parts.append("</svg>")
    return "".join(parts)


def _class_marks(
    classes: list, counts: list[int], n: int, left: float, top: float, display: float
) -> list[str]:
    """Class boundary lines across the image and class names where the block is big enough."""
    marks, start = [], 0
    for index, (name, count) in enumerate(zip(classes, counts)):
        begin, end = start * display / n, (start + count) * display / n
        start += count
        if index < len(classes) - 1:
            for x1, y1, x2, y2 in ((left + end, top, left + end, top + display),
                                   (left, top + end, left + display, top + end)):
                marks.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
                             'stroke="#fff" stroke-width="1.2"/>')
        if end - begin >= 12:
            middle = (begin + end) / 2
            marks.append(
                f'<text x="{left - 6:.1f}" y="{top + middle + 4:.1f}" text-anchor="end">'
                f'{_e(name)}</text><text x="{left + middle:.1f}" y="{top - 8:.1f}" '
                f'text-anchor="middle">{_e(name)}</text>'
            )
    if classes:
        marks.append(f'<text x="{left - 6:.1f}" y="{top - 30:.1f}" text-anchor="end">class</text>')
    return marks


# --------------------------------------------------------------------------- failures + provenance


def _non_converged_section(report: dict) -> str:
    heading = '<section id="non-converged"><h2>Non-converged fits</h2>'
    if "non_converged" not in report:
        return f"{heading}<p class=\"muted\">Not recorded.</p></section>"
    failed = [f for f in _as_list(report.get("non_converged")) if isinstance(f, dict)]
    if not failed:
        return f'{heading}<p class="ok">Every SVM fit converged.</p></section>'
    rows = "".join(
        f"<tr><td>{_e(_fmt_value(f.get('family')))}</td>"
        f"<td>{_e(_params_text(_as_dict(f.get('params'))) or 'n/a')}</td>"
        f"<td class=\"num\">{_e(_fmt_value(f.get('C')))}</td>"
        f"<td>{_e(_fmt_value(f.get('split')))}</td></tr>"
        for f in failed
    )
    return (
        f'{heading}<p class="warning"><strong>Warning:</strong> {len(failed)} fit(s) stopped '
        "at the solver's iteration limit; their accuracies may be unreliable.</p>"
        "<table><thead><tr><th>family</th><th>params</th><th>C</th><th>split</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></section>"
    )


def _provenance_section(report: dict) -> str:
    grams = [g for g in _as_list(report.get("grams")) if isinstance(g, dict)]
    gram_items = "".join(
        f"<li>{_e(_fmt_value(g.get('file')))}: {_e(_params_text(_as_dict(g.get('params'))))}"
        f" (x_scale {_e(_fmt_value(g.get('x_scale')))})</li>"
        for g in grams
    )
    gram_list = f"<ul>{gram_items}</ul>" if gram_items else "<p>No Gram matrices were saved.</p>"
    config = json.dumps(report.get("config"), indent=2, sort_keys=True)
    return (
        '<section id="provenance"><h2>Provenance</h2>'
        f"<details><summary>Saved Gram matrices ({len(grams)})</summary>{gram_list}</details>"
        f"<details><summary>Evaluation config</summary><pre>{_e(config)}</pre></details>"
        '<p class="muted">Every validated configuration is listed in report.csv; the full '
        "record is report.json.</p></section>"
    )
