"""The report's figures, drawn with matplotlib (Agg, no pyplot state) as inline SVG text.

Each drawing function returns an ``<svg>`` element as a string, ready to place in the HTML page:
text stays text (``svg.fonttype = none``), the Gram image is an embedded PNG, nothing is
fetched. ``bbox_inches="tight"`` sizes every figure to its labels, so none is cut off.

- :func:`accuracy_svg`: test accuracy per family as horizontal bars on a zoomed x range (so
  95.3% and 96.3% differ visibly), the standard deviation over folds as an error bar, the fold
  accuracies as dots inside each bar's band, and the majority-class accuracy as a line.
- :func:`heatmap_table`: validation accuracy over (configuration, C) as an HTML table (no
  drawing: it was most of a small job's report time); the colour scale starts
  at the lowest *competitive* value (best minus :data:`COMPETITIVE_SPAN`), lower cells share
  the darkest colour, so differences among good configurations are visible. (The page draws
  none for a family with a single configuration: one cell has no range to colour.)
- :func:`gram_svg`: a Gram matrix image with class boundaries and a labelled colour bar (the
  page passes the cosine-normalised, centred kernel on a diverging map centred at 0).
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass, field
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # no display, and no GUI backend is ever probed
# User strings (class labels, dataset and family names) are drawn as written: "$...$" in a label
# is text, not math (a label "US$_1_to_US$_5" failed a finished job at its report).
matplotlib.rcParams["text.parse_math"] = False

import numpy as np
from matplotlib import rc_context
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

__all__ = [
    "COMPETITIVE_SPAN",
    "FamilyBar",
    "accuracy_range",
    "accuracy_svg",
    "colour_floor",
    "gram_svg",
    "heatmap_table",
]

#: The heatmap's colour scale covers [best - COMPETITIVE_SPAN, best]; lower cells are clipped.
COMPETITIVE_SPAN = 0.10
RECURRENT_COLOUR, BASELINE_COLOUR = "#3b6ea5", "#a0a0a0"
_STYLE = {"svg.fonttype": "none", "font.size": 9, "font.family": "DejaVu Sans",
          "svg.hashsalt": "rntk", "axes.spines.top": False, "axes.spines.right": False}


@dataclass(frozen=True)
class FamilyBar:
    """One family's bar: its test accuracy, the per-fold accuracies, and its colour group."""

    name: str
    accuracy: float | None
    folds: Sequence[float] = field(default_factory=tuple)
    recurrent: bool = False

    @property
    def std(self) -> float | None:
        """Population standard deviation over the folds (None with fewer than two)."""
        return float(np.std(self.folds)) if len(self.folds) >= 2 else None


def _to_svg(figure: Figure) -> str:
    """The figure as an ``<svg>`` element (no XML prolog, no DOCTYPE, no fixed ids clash)."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight", pad_inches=0.05,
                   metadata={"Date": None, "Creator": None})
    text = buffer.getvalue()
    # the RDF metadata block names vocabularies by URL; the page needs none of it
    return re.sub(r"<metadata>.*?</metadata>\s*", "", text[text.index("<svg"):], flags=re.S)


def accuracy_range(bars: Sequence[FamilyBar], majority: float | None = None) -> tuple[float, float]:
    """The x range of the accuracy plot: every accuracy, fold and a nearby majority line.

    The range is zoomed to the data (padding 10% of the span, at least 1 point) and rounded
    outwards to whole percents, within [0, 1], plus a sliver past the top. The majority line widens the range only when
    it lies within 15 points of the lowest value; farther away it is noted off-scale instead.
    """
    values = [b.accuracy for b in bars if b.accuracy is not None]
    values += [f for b in bars for f in b.folds if f is not None and math.isfinite(f)]
    if not values:
        return 0.0, 1.0
    low, high = min(values), max(values)
    if majority is not None and low - 0.15 <= majority < low:
        low = majority
    pad = max(0.1 * (high - low), 0.01)
    low = max(0.0, math.floor((low - pad) * 100) / 100)
    high = min(1.0, math.ceil((high + pad) * 100) / 100)
    if high <= low:
        low = max(0.0, high - 0.05)
    # a sliver past the top, so dots at exactly 100% are drawn whole, not on the edge
    return low, high + 0.015 * (high - low)


def accuracy_svg(bars: Sequence[FamilyBar], majority: float | None = None) -> str:
    """Horizontal bars, best family on top, with std error bars, fold dots and the majority line."""
    scored = sorted((b for b in bars if b.accuracy is not None), key=lambda b: -b.accuracy)
    rows = scored + [b for b in bars if b.accuracy is None]
    low, high = accuracy_range(rows, majority)
    with rc_context(_STYLE):
        figure = Figure(figsize=(7.0, 0.8 + 0.42 * max(len(rows), 1)))
        axes = figure.add_subplot()
        axes.set_xlim(low, high)
        axes.set_ylim(len(rows) - 0.5, -0.5)
        rng = np.random.default_rng(0)  # fixed jitter: the same report draws the same dots
        for index, bar in enumerate(rows):
            if bar.accuracy is None:
                axes.text(low, index, "  n/a", va="center", color="#888")
                continue
            colour = RECURRENT_COLOUR if bar.recurrent else BASELINE_COLOUR
            axes.barh(index, bar.accuracy - low, left=low, height=0.7, color=colour, zorder=2)
            if bar.std is not None:  # whiskers end at the axis and at 100%
                spread = [[min(bar.std, bar.accuracy - low)], [min(bar.std, 1.0 - bar.accuracy)]]
                axes.errorbar(bar.accuracy, index, xerr=spread, color="#222", capsize=3,
                              linewidth=1, zorder=3)
            if len(bar.folds):
                jitter = rng.uniform(-0.22, 0.22, size=len(bar.folds))  # inside the 0.7 band
                axes.scatter(np.clip(bar.folds, low, high), index + jitter, s=12, color="#111",
                             edgecolors="white", linewidths=0.5, zorder=4)
            std = f" ± {100 * bar.std:.1f}" if bar.std is not None else ""
            axes.annotate(f"{100 * bar.accuracy:.1f}%{std}", (1.0, index),
                          xycoords=("axes fraction", "data"), xytext=(6, 0),
                          textcoords="offset points", va="center")
        axes.set_yticks(range(len(rows)), [bar.name for bar in rows])
        axes.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        axes.grid(axis="x", color="#e4e4e4", zorder=0)
        axes.set_xlabel(f"test accuracy (axis from {100 * low:.0f}%, not 0)" if low > 0
                        else "test accuracy")
        if majority is not None:
            if low <= majority <= high:
                axes.axvline(majority, color="#c0392b", linestyle="--", linewidth=1, zorder=5)
                axes.annotate(f"majority class {100 * majority:.1f}%", (majority, -0.5),
                              xytext=(3, 2), textcoords="offset points", color="#c0392b",
                              annotation_clip=False, va="bottom")
            else:
                axes.set_title(f"majority class {100 * majority:.1f}% (off scale)", loc="left",
                               color="#c0392b", fontsize=9)
        return _to_svg(figure)


def colour_floor(values: np.ndarray) -> float:
    """The heatmap colour scale's low end: the lowest competitive value."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0
    return max(float(finite.min()), float(finite.max()) - COMPETITIVE_SPAN)


def _hex(rgba: Sequence[float]) -> str:
    return "#" + "".join(f"{round(255 * channel):02x}" for channel in rgba[:3])


def heatmap_table(
    rows: Sequence[str], columns: Sequence[str], values: np.ndarray, chosen: np.ndarray,
) -> str:
    """Validation accuracy cells (rows x columns; NaN = not run) as an HTML ``<table>``
    coloured on viridis, chosen cells outlined, with its colour scale as a gradient bar.
    A table, not a drawn figure: the report's grids cost microseconds instead of a
    matplotlib draw each (most of a small job's report time), and the numbers stay text."""
    from html import escape

    values = np.asarray(values, dtype=float)
    low = colour_floor(values)
    high = float(np.nanmax(values)) if np.isfinite(values).any() else 1.0
    if high <= low:
        low = high - 0.01
    cmap = matplotlib.colormaps["viridis"]
    head = "".join(f"<th scope=\"col\">{escape(str(c))}</th>" for c in columns)
    body = []
    for i, row in enumerate(rows):
        cells = []
        for j, value in enumerate(values[i]):
            if not math.isfinite(value):
                cells.append('<td class="not-run" title="not run">-</td>')
                continue
            shade = cmap(min(1.0, max(0.0, (value - low) / (high - low))))
            luminance = 0.299 * shade[0] + 0.587 * shade[1] + 0.114 * shade[2]
            mark = ' class="chosen"' if chosen[i, j] else ""
            cells.append(f'<td{mark} style="background:{_hex(shade)};color:{"#000" if luminance > 0.5 else "#fff"}">'
                         f"{100 * value:.1f}</td>")
        body.append(f'<tr><th scope="row">{escape(str(row))}</th>{"".join(cells)}</tr>')
    stops = ",".join(_hex(cmap(x)) for x in np.linspace(0, 1, 9))
    below = bool(np.any(values[np.isfinite(values)] < low))
    scale = (f'<div class="scale"><span>{"≤ " if below else ""}{100 * low:.1f}%</span>'
             f'<span class="bar" style="background:linear-gradient(to right,{stops})"></span>'
             f"<span>{100 * high:.1f}%</span></div>")
    return (f'<table class="heatmap"><thead><tr><th class="corner">C</th>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>{scale}")


def gram_svg(matrix: np.ndarray, n_samples: int, classes: Sequence, counts: Sequence[int],
             low: float, high: float, *, cmap: str = "viridis", label: str | None = None,
             boundary: str = "white") -> str:
    """The (class-sorted) Gram matrix as an image, class boundaries (in ``boundary``), a colour bar.

    ``matrix`` may be block-averaged; the axes stay in samples (``n_samples``). Without
    classes (``classes`` empty) no boundaries are drawn. ``label`` names the colour bar's
    scale (what the values are, e.g. a centred cosine similarity); ``cmap`` its colour map
    (on a diverging map, whose middle is white, draw the boundaries in black).
    """
    n = n_samples
    with rc_context(_STYLE):
        figure = Figure(figsize=(5.6, 4.8))
        axes = figure.add_subplot()
        image = axes.imshow(matrix, cmap=cmap, vmin=low, vmax=high, interpolation="nearest",
                            extent=(0, n, n, 0))
        ticks, start = [], 0
        for index, count in enumerate(counts):
            if index < len(counts) - 1:
                for line in (axes.axhline, axes.axvline):
                    line(start + count, color=boundary, linewidth=1)
            ticks.append(start + count / 2)
            start += count
        if classes and len(classes) <= 20:
            labels = [str(name) for name in classes]
            axes.set_xticks(ticks, labels)
            axes.set_yticks(ticks, labels)
            axes.set_xlabel("class")
            axes.set_ylabel("class")
        else:
            axes.set_xlabel("sample")
        bar = figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
        if label:
            bar.set_label(label)
        return _to_svg(figure)
