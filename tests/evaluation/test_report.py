"""report.json / report.csv / report.html from a realistic report dict."""

from __future__ import annotations

import base64
import copy
import io
import csv
import itertools
import json
import math
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from PIL import Image

from rntk_core.evaluation.report.html import _sorted_by_class
from rntk_core.evaluation.report.writer import write_report

RECURRENT = ("RNN", "BI-RNN-AVG")
C_GRID = (0.01, 1.0, 100.0)
VOID_TAGS = {"meta", "link", "br", "hr", "img", "input", "col", "area", "base", "source", "wbr"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SVG_NAMESPACES = ("http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink")


def _recurrent_params(family: str) -> list[dict]:
    pool = "avg" if family.endswith("AVG") else "last"
    direction = "bi" if family.startswith("BI") else "fwd"
    return [
        {"kind": kind, "pool": pool, "layers": layers, "direction": direction,
         "sigma_w": 1.414, "sigma_u": sigma_u, "sigma_b": sigma_b}
        for kind, layers, sigma_u, sigma_b in itertools.product(
            ("ck", "ntk"), (1, 2), (0.25, 0.5), (0.001, 0.1))
    ]


def _family_grid() -> dict[str, list[dict]]:
    grid = {family: _recurrent_params(family) for family in RECURRENT}
    grid["RBF"] = [{"gamma": 2.0**k} for k in range(-5, 10, 2)]
    grid["POLY"] = [{"degree": d, "scale": s, "offset": 1.0} for d in (1, 2, 3) for s in (0.01, 0.1)]
    return grid


def make_report(seed: int = 0) -> dict:
    """A report as the evaluation writes it: 4 SVM families (incl. RBF) and RF."""
    rng = np.random.default_rng(seed)
    configurations, families = [], {}
    for family, grid in _family_grid().items():
        rows = [
            {"family": family, "params": params, "C": c,
             "validation_accuracy": round(float(rng.uniform(0.6, 0.97)), 4)}
            for params in grid for c in C_GRID
        ]
        configurations += rows
        best = max(rows, key=lambda row: row["validation_accuracy"])
        second = sorted(rows, key=lambda row: row["validation_accuracy"])[-2]
        folds = [round(float(v), 4) for v in rng.uniform(0.8, 0.98, size=4)]
        families[family] = {
            "test_accuracy": round(sum(folds) / 4, 4), "fold_accuracies": folds,
            "validation_accuracy": best["validation_accuracy"],
            "chosen": [{"params": best["params"], "C": best["C"]}] * 3
            + [{"params": second["params"], "C": second["C"]}],
        }
    rf = {"n_estimators": 500, "max_features": "sqrt"}
    configurations.append({"family": "RF", "params": rf, "validation_accuracy": 0.9})
    families["RF"] = {"test_accuracy": 0.88, "fold_accuracies": [0.87, 0.88, 0.89, 0.88],
                      "validation_accuracy": 0.9, "chosen": [{"params": rf}]}
    chosen_rnn = families["RNN"]["chosen"][0]
    return {
        "dataset": {"name": "iris <&> test", "format": "uci", "n_samples": 150, "n_steps": 4,
                    "n_features": 1, "n_classes": 3},
        "config": {"families": [*_family_grid(), "RF"], "C": list(C_GRID), "seed": 0},
        "protocol": "predefined",
        "x_scale": 1.7,
        "configurations": configurations,
        "families": families,
        "grams": [{"file": "gram/RNN-ntk-last-L2-fwd-sw1.414-su0.5-sb0.1.npy",
                   "params": chosen_rnn["params"], "x_scale": 1.7}],
        "non_converged": [{"family": "POLY", "params": {"degree": 3, "scale": 0.1, "offset": 1.0},
                           "C": 100.0, "split": 2}],
        "timings": {"load": 0.1, "kernels": 12.5, "validation": 3.2, "test": 1.1, "total": 17.0},
        "versions": {"rntk": "0.1.0", "jax": "0.4.30", "numpy": "1.26.4",
                     "scikit-learn": "1.4.2", "python": "3.11.9"},
        "device": "cpu: cpu",
    }


def make_gram(n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """A random PSD Gram with class structure, its samples shuffled, and the labels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, size=n)
    features = rng.normal(size=(n, 8)) + 2.0 * np.eye(3, 8)[labels]
    return features @ features.T, labels


class TagChecker(HTMLParser):
    """Records tag-nesting errors (every non-void start tag must be closed in order)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.ids: list[str] = []
        self.attribute_values: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self._record(attrs)
        if tag not in VOID_TAGS:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list) -> None:
        self._record(attrs)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()

    def _record(self, attrs: list) -> None:
        for name, value in attrs:
            if name == "id":
                self.ids.append(value)
            self.attribute_values.append(value or "")


def check_html(text: str) -> TagChecker:
    checker = TagChecker()
    checker.feed(text)
    checker.close()
    assert checker.errors == []
    assert checker.stack == []
    return checker


@pytest.fixture
def written(tmp_path: Path) -> tuple[dict, Path]:
    report = make_report()
    gram, labels = make_gram(300)
    write_report(copy.deepcopy(report), tmp_path, selected_gram=gram, labels=labels)
    return report, tmp_path


def test_writes_three_files_and_no_temporaries(written):
    _, out = written
    assert sorted(p.name for p in out.iterdir()) == ["report.csv", "report.html", "report.json"]


def test_json_round_trips(written):
    report, out = written
    assert json.loads((out / "report.json").read_text()) == report


def test_csv_rows_header_and_chosen_flags(written):
    report, out = written
    with open(out / "report.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    header = list(rows[0])
    assert header[:4] == ["family", "C", "validation_accuracy", "chosen"]
    expected_params = ["kind", "pool", "layers", "direction", "sigma_w", "sigma_u", "sigma_b",
                       "gamma", "degree", "scale", "offset", "n_estimators", "max_features"]
    assert header[4:] == expected_params
    assert len(rows) == len(report["configurations"])
    for row, entry in zip(rows, report["configurations"]):
        assert row["family"] == entry["family"]
        assert float(row["validation_accuracy"]) == entry["validation_accuracy"]
        assert row["C"] == ("" if "C" not in entry else str(entry["C"]))
        for key in expected_params:
            assert row[key] == ("" if key not in entry["params"] else str(entry["params"][key]))
    chosen = {(r["family"], r["C"], r["kind"], r["layers"], r["sigma_u"], r["sigma_b"],
               r["gamma"], r["degree"], r["scale"])
              for r in rows if r["chosen"] == "True"}
    assert {r["chosen"] for r in rows} == {"True", "False"}
    # Two distinct chosen configurations per SVM family, RF's single one.
    assert len(chosen) == 2 * 4 + 1
    rf_row = next(r for r in rows if r["family"] == "RF")
    assert rf_row["chosen"] == "True" and rf_row["C"] == ""


def _without_namespaces(text: str) -> str:
    """The page minus the SVG namespace names (identifiers that are never fetched)."""
    for namespace in SVG_NAMESPACES:
        text = text.replace(namespace, "")
    return text


def test_html_is_well_formed_offline_and_complete(written):
    report, out = written
    text = (out / "report.html").read_text()
    checker = check_html(text)
    # RF has one configuration: a number, not a one-cell heatmap
    expected_ids = {"accuracy-plot", "gram-image", "validation-single-RF"} | {
        f"validation-heatmap-{family}" for family in report["families"] if family != "RF"
    }
    assert expected_ids <= set(checker.ids)
    assert "validation-heatmap-RF" not in checker.ids
    offline = _without_namespaces(text)
    assert not any(re.search(r"https?:|//", _without_namespaces(value)) for value in checker.attribute_values
                   if not value.startswith("data:image/png;base64,"))
    assert "http://" not in offline and "https://" not in offline
    assert "<script" not in text.lower()
    for family in report["families"]:
        assert f">{family}<" in text
    assert "iris &lt;&amp;&gt; test" in text  # autoescaped
    assert "Warning:" in text and "non-converged" in text


def _png(text: str) -> Image.Image:
    """The first embedded PNG (the Gram image), decoded by Pillow."""
    match = re.search(r'href="data:image/png;base64,([A-Za-z0-9+/=\s]+)"', text)
    assert match, "no PNG data URI"
    data = base64.b64decode(match.group(1), validate=False)
    assert data.startswith(PNG_SIGNATURE)
    return Image.open(io.BytesIO(data))


@pytest.mark.parametrize("n, pixels", [(300, 256), (40, 40)])
def test_gram_image_decodes_and_is_downsampled(tmp_path, n, pixels):
    gram, labels = make_gram(n)
    write_report(make_report(), tmp_path, selected_gram=gram, labels=labels)
    text = (tmp_path / "report.html").read_text()
    assert f'data-pixels="{pixels}"' in text
    image = _png(text)
    image.load()
    assert min(image.size) >= 100  # drawn large enough to read, whatever N
    assert "3 classes, boundaries in black" in text


def test_gram_is_sorted_by_class():
    # Within-class entries 1, across 0: sorted by class, the matrix is block diagonal.
    labels = np.array([2, 0, 1, 0, 2, 1, 1, 0])
    gram = (labels[:, None] == labels[None, :]).astype(float)
    matrix, classes, counts = _sorted_by_class(gram, labels)
    sorted_labels = np.sort(labels)
    assert np.array_equal(matrix == 1, sorted_labels[:, None] == sorted_labels[None, :])
    assert classes == [0, 1, 2] and counts == [3, 3, 2]


def test_families_table_summarises_ties(tmp_path):
    report = make_report()
    chosen = [{"params": {"gamma": 2.0 ** k, "tag": "x"}, "C": 1.0} for k in range(12)]
    report["families"]["RBF"]["chosen"] = chosen
    write_report(report, tmp_path)
    text = (tmp_path / "report.html").read_text()
    row = text[text.index('data-family="RBF"'):]
    row = row[:row.index("</tr>")]
    assert "12 tied configurations, all with tag=x, C=1" in row
    assert "<details" in row and row.count("<li>") == 12


def test_std_and_majority_class_are_shown(tmp_path):
    report = make_report()
    report["families"]["RF"]["fold_accuracies"] = [0.9, 0.8, 0.9, 0.8]
    report["majority_class_accuracy"] = 0.8
    write_report(report, tmp_path)
    text = (tmp_path / "report.html").read_text()
    row = text[text.index('data-family="RF"'):]
    assert "± 5.0" in row[:row.index("</tr>")]
    assert "majority class 80.0%" in text


def test_non_finite_floats_become_null_and_na(tmp_path):
    report = make_report()
    report["x_scale"] = float("nan")
    report["families"]["RBF"]["test_accuracy"] = float("inf")
    report["configurations"][0]["validation_accuracy"] = np.float64("nan")
    report["timings"]["total"] = np.float32(2.5)
    gram, labels = make_gram(30)
    gram[0, 1] = np.nan
    write_report(report, tmp_path, selected_gram=gram, labels=labels)
    loaded = json.loads((tmp_path / "report.json").read_text())
    assert loaded["x_scale"] is None
    assert loaded["families"]["RBF"]["test_accuracy"] is None
    assert loaded["configurations"][0]["validation_accuracy"] is None
    assert loaded["timings"]["total"] == 2.5
    with open(tmp_path / "report.csv", newline="") as handle:
        first = next(csv.DictReader(handle))
    assert first["validation_accuracy"] == ""
    text = (tmp_path / "report.html").read_text()
    check_html(text)
    assert "NaN" not in text and "inf%" not in text.lower()
    _png(text).load()


def test_minimal_report_renders(tmp_path):
    report = {"dataset": {"name": "tiny"}, "configurations": [
        {"family": "RBF", "params": {"gamma": 0.5}, "C": 1.0, "validation_accuracy": 0.8}]}
    write_report(report, tmp_path)
    text = (tmp_path / "report.html").read_text()
    checker = check_html(text)
    assert {"accuracy-plot", "validation-single-RBF"} <= set(checker.ids)
    assert "validation-heatmap-RBF" not in checker.ids and "80.0%" in text
    assert "gram-image" not in checker.ids
    assert "No Gram matrix" in text and "Not recorded" in text
    assert json.loads((tmp_path / "report.json").read_text()) == report


def test_empty_and_malformed_fields_render(tmp_path):
    report = {"families": {"RNN": {"chosen": "oops", "fold_accuracies": None}},
              "configurations": ["not a dict", {"family": "RNN"}], "non_converged": [],
              "timings": None, "versions": [], "grams": "nope"}
    write_report(report, tmp_path, selected_gram=np.ones((3, 4)), labels=np.arange(2))
    text = (tmp_path / "report.html").read_text()
    check_html(text)
    assert "Every SVM fit converged" in text
    assert "a square (N, N) matrix is needed" in text


def test_mismatched_labels_draw_unsorted(tmp_path):
    gram, _ = make_gram(20)
    write_report(make_report(), tmp_path, selected_gram=gram, labels=np.zeros(5))
    text = (tmp_path / "report.html").read_text()
    assert "drawn unsorted" in text
    assert 'data-pixels="20"' in text


def test_rewrite_replaces_files(tmp_path):
    write_report(make_report(), tmp_path)
    report = make_report(seed=5)
    write_report(report, tmp_path)
    assert json.loads((tmp_path / "report.json").read_text()) == report
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert math.isfinite(report["x_scale"])


# --------------------------------------------------------------------------- issue 21: protocol wording,
# grid edges, per-class accuracy, seconds, single configurations, the normalised Gram image


def _families_table(text: str) -> str:
    section = text[text.index('<section id="families">'):]
    return section[:section.index("</section>")]


def _train_test_report() -> dict:
    """A UCR-style TRAIN/TEST report: 5 CV folds chose, one TEST part scored."""
    report = make_report()
    report["protocol"] = "predefined"
    report["selection"] = {"method": "cv", "folds": 5}
    report["testing"] = {"method": "train_test", "folds": 1}
    for outcome in report["families"].values():
        outcome["fold_accuracies"] = [outcome["test_accuracy"]]
        outcome["selection_fold_accuracies"] = [0.9, 0.8, 0.9, 0.8, 0.85]
        outcome["selection_std"] = float(np.std([0.9, 0.8, 0.9, 0.8, 0.85]))
        outcome["test_std"] = None
    return report


def test_a_train_test_split_has_a_cv_spread_and_no_test_fold_spread(tmp_path):
    write_report(_train_test_report(), tmp_path)
    table = _families_table((tmp_path / "report.html").read_text())
    assert "test folds" not in table.split("</thead>")[0]  # no "± std over folds" / per-fold test columns
    assert "± std over 5 CV folds" in table and "per-CV-fold validation accuracy" in table
    assert "validation accuracy (mean over 5 CV folds)" in table
    row = table[table.index('data-family="RF"'):]
    row = row[:row.index("</tr>")]
    assert "± 4.5" in row and "90.0%, 80.0%, 90.0%, 80.0%, 85.0%" in row
    assert "One train/test split: there is no spread over test folds" in table
    assert "mean over the test folds" not in table and "mean over the 4 test folds" not in table
    assert "± std over 5 CV folds" not in (tmp_path / "report.html").read_text().split('id="accuracy"')[1][:2000]


def test_uci_folds_have_a_test_fold_spread_and_one_validation_split(tmp_path):
    report = make_report()
    report["selection"] = {"method": "holdout", "folds": 1}
    report["testing"] = {"method": "folds", "folds": 4}
    write_report(report, tmp_path)
    table = _families_table((tmp_path / "report.html").read_text())
    assert "± std over 4 test folds" in table and "per-fold test accuracy" in table
    assert "CV folds" not in table and "validation accuracy (one split)" in table
    assert "the mean over the 4 test folds of the chosen configurations' majority vote" in table.replace("&#39;", "'")


def test_grid_edges_are_flagged_with_the_extension(tmp_path):
    report = make_report()
    report["families"]["RNN"]["grid_edges"] = [
        {"param": "C", "value": 100.0, "edge": "max", "grid": [0.01, 1.0, 100.0], "suggest": [10000.0, 1000000.0]}]
    write_report(report, tmp_path)
    text = (tmp_path / "report.html").read_text()
    checker = check_html(text)
    assert "grid-edges" in checker.ids
    warning = text[text.index('id="grid-edges"'):]
    warning = warning[:warning.index("</div>")]
    assert "RNN: C = 100 is the largest value of its grid (0.01, 1, 100): extend the grid with 1e+04, 1e+06" in warning
    assert 'data-family="RNN" data-grid-edges="C"' in text
    assert json.loads((tmp_path / "report.json").read_text())["families"]["RNN"]["grid_edges"][0]["edge"] == "max"


def test_per_class_accuracy_confusion_and_seconds_are_shown(tmp_path):
    report = make_report()
    report["dataset"]["classes"] = ["setosa", "versicolor", "virginica"]
    report["seconds_attribution"] = "split evenly"
    report["family_seconds"] = {}
    for family, outcome in report["families"].items():
        outcome["confusion_matrix"] = [[50, 0, 0], [0, 45, 5], [0, 3, 47]]
        outcome["per_class_accuracy"] = {"setosa": 1.0, "versicolor": 0.9, "virginica": 0.94}
        report["family_seconds"][family] = {"kernels": 1.0, "validation": 2.0, "test": 0.5, "total": 3.5}
    write_report(report, tmp_path)
    text = (tmp_path / "report.html").read_text()
    checker = check_html(text)
    assert {"per-class-accuracy", "confusion-RNN", "confusion-RF", "seconds-attribution"} <= set(checker.ids)
    matrix = text[text.index('id="confusion-RNN"'):]
    matrix = matrix[:matrix.index("</table>")]
    assert "94.7% of 150 test predictions right" in matrix and '<td class="num hit">45</td>' in matrix
    assert "versicolor" in matrix
    row = _families_table(text)[_families_table(text).index('data-family="RBF"'):]
    assert "3.50 s (kernels 1.00, validation 2.00, test 0.50)" in row[:row.index("</tr>")]


def test_the_files_section_names_every_splits_array(tmp_path):
    report = make_report()
    report["files"] = [{"file": "splits.npz", "key": "cv0_fit", "meaning": "selection fold 0: fitted rows"},
                       {"file": "splits.npz", "key": "fold0_test", "meaning": "the TEST part"}]
    write_report(report, tmp_path)
    text = (tmp_path / "report.html").read_text()
    section = text[text.index('<section id="files">'):]
    assert "<code>cv0_fit</code>" in section and "selection fold 0: fitted rows" in section
    assert "<code>fold0_test</code>" in section


def test_the_gram_image_is_cosine_normalised_and_centred(tmp_path):
    """A kernel that is a large constant plus a small class term (raw: nearly uniform) shows
    its class blocks once normalised; the caption and colour bar say what is shown."""
    from rntk_core.evaluation.report.html import normalised_kernel

    labels = np.repeat([0, 1, 2], 20)
    rng = np.random.default_rng(0)
    order = rng.permutation(labels.size)
    labels = labels[order]
    same = (labels[:, None] == labels[None, :]).astype(float)
    scale = rng.uniform(1, 3, size=labels.size)  # unequal norms, which cosine normalisation removes
    gram = np.outer(scale, scale) * (62.0 + 0.9 * same)
    shown, cosine = normalised_kernel(gram)
    assert cosine
    np.testing.assert_allclose(shown.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(shown.mean(axis=1), 0, atol=1e-12)
    within, across = shown[same == 1].mean(), shown[same == 0].mean()
    assert within > 0 > across and (within - across) > 10 * shown[same == 0].std()
    write_report(make_report(), tmp_path, selected_gram=gram, labels=labels)
    text = (tmp_path / "report.html").read_text()
    section = text[text.index('<section id="gram">'):]
    assert "cosine-normalised kernel K_ij / sqrt(K_ii K_jj), double-centred" in section
    assert "centred cosine similarity (0 = average pair)" in section  # the colour bar's label
    assert "The raw K ranges over" in section


def test_a_kernel_without_a_positive_diagonal_is_only_centred():
    from rntk_core.evaluation.report.html import normalised_kernel

    gram = np.array([[0.0, 1.0], [1.0, 2.0]])
    shown, cosine = normalised_kernel(gram)
    assert not cosine
    np.testing.assert_allclose(shown.sum(axis=0), 0, atol=1e-12)
