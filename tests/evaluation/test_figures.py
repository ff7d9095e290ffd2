"""The report's figures: zoomed accuracy axis, fold dots, the validation grid's table and colour floor."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from rntk_core.evaluation.report import figures
from rntk_core.evaluation.report.figures import FamilyBar

CLOSE = [FamilyBar("RNN", 0.963, (0.95, 0.97, 0.96, 0.972), True),
         FamilyBar("BI-RNN", 0.953, (0.94, 0.96, 0.95, 0.962), True),
         FamilyBar("RBF", 0.961, (0.95, 0.97, 0.96, 0.964))]


def _parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # well-formed XML, or this raises


def test_accuracy_axis_is_zoomed_so_one_point_is_visible():
    low, high = figures.accuracy_range(CLOSE)
    # 95.3% and 96.3% differ by at least a tenth of the axis (on 0-100% it would be 1%)
    assert (0.963 - 0.953) / (high - low) > 0.1
    # every accuracy and fold lies inside the axis: no dot is clipped at its edge
    values = [b.accuracy for b in CLOSE] + [f for b in CLOSE for f in b.folds]
    assert low < min(values) and max(values) < high
    assert 0.0 <= low and high <= 1.01


def test_majority_line_widens_the_axis_only_when_near():
    near = figures.accuracy_range(CLOSE, majority=0.90)
    far = figures.accuracy_range(CLOSE, majority=0.34)
    assert near[0] < 0.90 and far == figures.accuracy_range(CLOSE)


def test_accuracy_svg_has_labels_std_and_majority():
    svg = figures.accuracy_svg(CLOSE, majority=0.93)
    _parse(svg)
    for name in ("RNN", "BI-RNN", "RBF"):
        assert f">{name}<" in svg
    assert "96.3% ± 0.9" in svg  # the std over folds next to the accuracy
    assert "majority class 93.0%" in svg
    assert "off scale" in figures.accuracy_svg(CLOSE, majority=0.34)


def test_std_is_over_folds():
    assert FamilyBar("x", 0.5, (0.4, 0.6)).std == pytest.approx(0.1)
    assert FamilyBar("x", 0.5, (0.5,)).std is None


def test_heatmap_colour_floor_is_the_lowest_competitive_value():
    values = np.array([[0.34, 0.95], [0.96, 0.97], [np.nan, 0.5]])
    assert figures.colour_floor(values) == pytest.approx(0.97 - figures.COMPETITIVE_SPAN)
    close = np.array([[0.93, 0.95], [0.96, 0.97]])
    assert figures.colour_floor(close) == pytest.approx(0.93)


def test_heatmap_table_cells_colours_and_chosen_outline():
    """The validation grid is an HTML table: every label and value is text, cells are coloured
    on the family's competitive range, the chosen one is marked, a cell not run says so."""
    import xml.etree.ElementTree as ET

    rows = [f"kind=ntk, layers={l}, sigma_u=0.25, gamma=0.03125" for l in range(3)] + ["a<b & c"]
    values = np.linspace(0.9, 0.97, 8).reshape(4, 2)
    values[3, 1] = np.nan
    chosen = np.zeros(values.shape, bool)
    chosen[2, 1] = True
    html = figures.heatmap_table(rows, ["1", "100"], values, chosen)
    root = ET.fromstring(f"<div>{html}</div>")  # well-formed, escaped
    body = root.find("table/tbody")
    assert [row.find("th").text for row in body] == rows
    cells = [[td for td in row.findall("td")] for row in body]
    assert [td.text for td in cells[0]] == ["90.0", "91.0"]
    assert cells[2][1].get("class") == "chosen" and sum(td.get("class") == "chosen" for row in cells for td in row) == 1
    assert cells[3][1].get("class") == "not-run"
    # the best cell is viridis' top (yellow, dark text), the floor its bottom (purple, light text)
    best, floor = cells[3][0].get("style"), cells[0][0].get("style")
    assert "background:#fde725" in best and "color:#000" in best, best
    assert "background:#440154" in floor and "color:#fff" in floor, floor
    scale = [span.text for span in root.find("div").findall("span")]
    assert scale[0] == "90.0%" and scale[2] == "96.0%", scale


def test_gram_svg_embeds_an_image():
    matrix = np.eye(6)
    svg = figures.gram_svg(matrix, 6, ["a", "b"], [3, 3], 0.0, 1.0)
    assert ">a<" in svg and ">b<" in svg
    figures.gram_svg(matrix, 6, [], [], 0.0, 1.0)  # unsorted: no class marks
    _parse(svg)
    assert "data:image/png;base64," in svg


def test_perfect_folds_are_inside_the_axis():
    bars = [FamilyBar("RNN", 0.98, (1.0, 0.96, 1.0, 0.96), True)]
    low, high = figures.accuracy_range(bars)
    assert high > 1.0 and low < 0.96


def _tiny_dataset(classes):
    from rntk_core.evaluation.datasets import Dataset

    rng = np.random.default_rng(0)
    y = np.arange(60) % 3
    return Dataset(rng.normal(size=(60, 5, 1)) + y[:, None, None], y, np.array(classes), "labels", "npz")


TINY = {"families": ["RNN"], "sigma_u": [0.5], "sigma_b": [0.1], "layers": [1], "C": [1.0]}


def test_labels_with_dollar_signs_are_drawn_as_text(tmp_path):
    """"$...$" in a class label once went to matplotlib's math parser and failed the job at its
    report, after every fit had run."""
    from rntk_core.evaluation.config import parse_config
    from rntk_core.evaluation.evaluate import evaluate_dataset

    labels = [r"$\foo$", r"$\frac{a}$", "US$_1_to_US$_5"]
    report = evaluate_dataset(_tiny_dataset(labels), parse_config(TINY), out_dir=tmp_path)
    assert "figures_error" not in report
    page = (tmp_path / "report.html").read_text()
    assert "US$_1_to_US$_5" in page and r"\frac{a}" in page
    assert list((tmp_path / "gram").glob("*.npy"))


def test_a_failure_while_drawing_keeps_the_results(tmp_path, monkeypatch):
    from rntk_core.evaluation.config import parse_config
    from rntk_core.evaluation.evaluate import evaluate_dataset
    from rntk_core.evaluation.report import figures

    def broken(*args, **kwargs):
        raise RuntimeError("the figure broke")

    monkeypatch.setattr(figures, "accuracy_svg", broken)
    report = evaluate_dataset(_tiny_dataset(["a", "b", "c"]), parse_config(TINY), out_dir=tmp_path)
    assert report["figures_error"] == "RuntimeError: the figure broke"
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["families"]["RNN"]["test_accuracy"] == report["families"]["RNN"]["test_accuracy"]
    assert list((tmp_path / "gram").glob("*.npy")) and (tmp_path / "splits.npz").exists()
    assert "not drawn: RuntimeError: the figure broke" in (tmp_path / "report.html").read_text()


def test_gram_svg_states_its_scale_on_the_colour_bar():
    label = "centred cosine similarity (0 = average pair)"
    svg = figures.gram_svg(np.eye(6) - 0.2, 6, ["a", "b"], [3, 3], -1.0, 1.0, cmap="RdBu_r", label=label,
                           boundary="black")
    _parse(svg)
    assert label in svg


def test_single_configuration_families_get_a_number_not_a_heatmap():
    """A one-cell heatmap had a colour bar from 59.0 to 60.0%: a range the data do not have."""
    from rntk_core.evaluation.report.html import draw_figures

    report = {"configurations": [
        {"family": "1NN-DTW", "params": {"distance": "dtw", "window": "full"}, "validation_accuracy": 0.595},
        {"family": "RBF", "params": {"gamma": 0.5}, "C": 1.0, "validation_accuracy": 0.8},
        {"family": "RBF", "params": {"gamma": 0.5}, "C": 100.0, "validation_accuracy": 0.9}]}
    maps = {entry["family"]: entry for entry in draw_figures(report)["heatmaps"]}
    assert maps["1NN-DTW"].get("single") and "table" not in maps["1NN-DTW"]
    assert maps["1NN-DTW"]["accuracy"] == "59.5%" and maps["1NN-DTW"]["configuration"] == "distance=dtw, window=full"
    assert '<table class="heatmap">' in maps["RBF"]["table"] and not maps["RBF"].get("single")


def test_the_reports_gram_image_is_the_normalised_kernel(tmp_path):
    from rntk_core.evaluation.config import parse_config
    from rntk_core.evaluation.evaluate import evaluate_dataset

    evaluate_dataset(_tiny_dataset(["a", "b", "c"]), parse_config(TINY), out_dir=tmp_path)
    page = (tmp_path / "report.html").read_text()
    section = page[page.index('<section id="gram">'):]
    assert "Shown: the cosine-normalised kernel K_ij / sqrt(K_ii K_jj), double-centred" in section
    assert "centred cosine similarity (0 = average pair)" in section and 'id="gram-image"' in section
