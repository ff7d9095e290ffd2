"""Tests for rntk_core.evaluation.datasets: real UCI folders, zips, CSV, NPZ and every defect class."""

from __future__ import annotations

import shutil
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from rntk_core.evaluation.datasets import (
    Dataset,
    DatasetError,
    DatasetLimits,
    Splits,
    check_stratifiable,
    load_dataset,
)
from tests.helpers import SHARED

UCI = SHARED / "data" / "uci"

needs_uci = pytest.mark.skipif(not UCI.is_dir(), reason="shared UCI data not available")


# ----------------------------------------------------------------------------- helpers

N_TOY, D_TOY = 16, 4


def toy_texts(n: int = N_TOY, d: int = D_TOY) -> dict[str, str]:
    """A valid UCI folder's files as text. Labels alternate 0, 1; data row i is on line i + 2."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, d))
    header = "\t" + "\t".join(f"f{j + 1}" for j in range(d)) + "\tclase"
    rows = [f"{i + 1}\t" + "\t".join(f"{v:.6f}" for v in X[i]) + f"\t{i % 2}" for i in range(n)]
    half = n // 2
    folds = []
    for k in range(4):
        test = [i for i in range(n) if i % 4 == k]
        train = [i for i in range(n) if i % 4 != k]
        folds += [" ".join(map(str, train)) + " ", " ".join(map(str, test)) + " "]
    return {
        "toy.txt": f"n_entradas= {d}\nn_clases= 2\nn_arquivos= 1\nfich1= toy_R.dat\nn_patrons1= {n}\n",
        "toy_R.dat": "\n".join([header, *rows]) + "\n",
        "conxuntos.dat": " ".join(map(str, range(half))) + " \n" + " ".join(map(str, range(half, n))) + " \n",
        "conxuntos_kfold.dat": "\n".join(folds) + "\n",
    }


def write_folder(root: Path, texts: dict[str, str | None], name: str = "toy") -> Path:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    for file_name, text in texts.items():
        if text is not None:
            (folder / file_name).write_text(text)
    return folder


TOY_FILES = {"txt": "toy.txt", "dat": "toy_R.dat", "split": "conxuntos.dat", "kfold": "conxuntos_kfold.dat"}


def toy_folder(tmp_path: Path, **changes: str | None) -> Path:
    """Write the toy folder with some files replaced: txt, dat, split or kfold=new text."""
    texts: dict[str, str | None] = dict(toy_texts())
    for key, text in changes.items():
        texts[TOY_FILES[key]] = text
    return write_folder(tmp_path, texts)


def replace_line(text: str, line_no: int, new: str) -> str:
    lines = text.split("\n")
    lines[line_no - 1] = new
    return "\n".join(lines)


def expect_error(path: Path, *fragments: str, **kwargs: object) -> DatasetError:
    with pytest.raises(DatasetError) as info:
        load_dataset(path, **kwargs)  # type: ignore[arg-type]
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return info.value


def zip_folder(folder: Path, target: Path, *, prefix: str = "", extra: dict[str, bytes] | None = None) -> Path:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(folder.iterdir()):
            archive.write(file, prefix + file.name)
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return target


def write_csv(tmp_path: Path, text: str, name: str = "data.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def toy_npz_arrays(n: int = 12, t: int = 5, m: int = 2) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {"X": rng.normal(size=(n, t, m)), "y": np.arange(n) % 3}


def npz_splits(n: int = 12) -> dict[str, np.ndarray]:
    splits = {"train": np.arange(0, n, 2), "validation": np.arange(1, n, 2)}
    for k in range(4):
        test = np.arange(k, n, 4)
        splits[f"fold{k}_train"] = np.setdiff1d(np.arange(n), test)
        splits[f"fold{k}_test"] = test
    return splits


def write_npz(tmp_path: Path, arrays: dict[str, np.ndarray], name: str = "data.npz") -> Path:
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


# ------------------------------------------------------------------------ real UCI data


@needs_uci
def test_iris_folder() -> None:
    ds = load_dataset(UCI / "iris")
    assert (ds.name, ds.format) == ("iris", "uci")
    assert ds.X.shape == (150, 4, 1) and ds.X.dtype == np.float64
    assert (ds.n_samples, ds.n_steps, ds.n_features, ds.n_classes) == (150, 4, 1, 3)
    assert ds.y.dtype == np.int64 and set(ds.y.tolist()) == {0, 1, 2}
    assert ds.classes.tolist() == [0, 1, 2]
    assert ds.lengths is None
    # First data row of iris_R.dat: 1  -0.897674  1.02861  -1.33679  -1.30859  0
    np.testing.assert_allclose(ds.X[0, :, 0], [-0.897674, 1.02861, -1.33679, -1.30859])
    splits = ds.splits
    assert splits is not None
    assert len(splits.train) == len(splits.validation) == 75
    assert np.union1d(splits.train, splits.validation).size == 150
    assert splits.train[:3].tolist() == [46, 21, 13]
    assert len(splits.folds) == 4
    for train, test in splits.folds:
        assert len(train) + len(test) == 150
        assert np.intersect1d(train, test).size == 0
        assert train.dtype == test.dtype == np.int64


@needs_uci
def test_iris_features_per_step_and_steps() -> None:
    flat = load_dataset(UCI / "iris")
    paired = load_dataset(UCI / "iris", features_per_step=2)
    assert paired.X.shape == (150, 2, 2)
    np.testing.assert_array_equal(paired.X.reshape(150, 4), flat.X[:, :, 0])
    by_steps = load_dataset(UCI / "iris", steps=2)
    np.testing.assert_array_equal(by_steps.X, paired.X)
    expect_error(UCI / "iris", "not divisible by features_per_step=3", features_per_step=3)
    expect_error(UCI / "iris", "disagree", steps=2, features_per_step=4)


@needs_uci
@pytest.mark.parametrize("prefix", ["", "iris/"])
def test_iris_zip(tmp_path: Path, prefix: str) -> None:
    archive = zip_folder(UCI / "iris", tmp_path / "iris.zip", prefix=prefix, extra={"__MACOSX/._iris.txt": b"junk"})
    from_zip = load_dataset(archive)
    from_folder = load_dataset(UCI / "iris")
    assert from_zip.name == "iris" and from_zip.format == "uci"
    np.testing.assert_array_equal(from_zip.X, from_folder.X)
    np.testing.assert_array_equal(from_zip.y, from_folder.y)
    assert from_zip.splits is not None and from_folder.splits is not None
    np.testing.assert_array_equal(from_zip.splits.validation, from_folder.splits.validation)


@needs_uci
@pytest.mark.parametrize(
    ("name", "n", "t"),
    [
        ("conn-bench-sonar-mines-rocks", 208, 60), ("ecoli", 336, 7), ("glass", 214, 9),
        ("ionosphere", 351, 33), ("pima", 768, 8), ("seeds", 210, 7), ("statlog-heart", 270, 13),
        ("synthetic-control", 600, 60), ("vertebral-column-3clases", 310, 6), ("wine", 178, 13),
        ("yeast", 1484, 8),
    ],
)
def test_reference_dataset_shapes(name: str, n: int, t: int) -> None:
    ds = load_dataset(UCI / name)
    assert (ds.n_samples, ds.n_steps, ds.n_features) == (n, t, 1)


@needs_uci
def test_all_listed_uci_datasets_load() -> None:
    names = (UCI / "datasets.txt").read_text().split()
    assert len(names) == 90
    start = time.perf_counter()
    for name in names:
        ds = load_dataset(UCI / name)
        assert ds.name == name
        assert ds.splits is not None and len(ds.splits.folds) == 4
        assert np.isfinite(ds.X).all()
    elapsed = time.perf_counter() - start
    # About 2 s on 2 cores; the bound only catches a pathological slowdown.
    assert elapsed < 60, f"loading the 90 UCI datasets took {elapsed:.1f} s"


# ------------------------------------------------------------------ synthetic UCI folders


def test_toy_folder_loads(tmp_path: Path) -> None:
    ds = load_dataset(toy_folder(tmp_path))
    assert ds.X.shape == (N_TOY, D_TOY, 1)
    assert ds.y.tolist() == [i % 2 for i in range(N_TOY)]
    assert ds.splits is not None
    assert ds.splits.train.tolist() == list(range(8))
    assert ds.splits.folds[1][1].tolist() == [1, 5, 9, 13]


def test_uci_tolerates_crlf_blank_lines_and_trailing_spaces(tmp_path: Path) -> None:
    texts = toy_texts()
    texts = {name: text.replace("\n", "  \r\n") + "\r\n\r\n" for name, text in texts.items()}
    reference = load_dataset(toy_folder(tmp_path / "a"))
    ds = load_dataset(write_folder(tmp_path / "b", texts))
    np.testing.assert_array_equal(ds.X, reference.X)


@pytest.mark.parametrize("missing", ["toy_R.dat", "conxuntos.dat", "conxuntos_kfold.dat"])
def test_uci_missing_file(tmp_path: Path, missing: str) -> None:
    texts: dict[str, str | None] = dict(toy_texts())
    texts[missing] = None
    expect_error(write_folder(tmp_path, texts), "missing", missing)


def test_uci_missing_description(tmp_path: Path) -> None:
    texts: dict[str, str | None] = dict(toy_texts())
    texts["toy.txt"] = None
    expect_error(write_folder(tmp_path, texts), "missing", "description")


def test_uci_description_defects(tmp_path: Path) -> None:
    good = toy_texts()["toy.txt"]
    expect_error(toy_folder(tmp_path / "a", txt=good.replace("n_clases= 2\n", "")), "n_clases")
    four = good.replace("n_entradas= 4", "n_entradas= four")
    expect_error(toy_folder(tmp_path / "b", txt=four), "line 1", "n_entradas")
    expect_error(toy_folder(tmp_path / "c", txt=good + "garbage line\n"), "line 6", "key= value")
    expect_error(toy_folder(tmp_path / "d", txt=good.replace("n_arquivos= 1", "n_arquivos= 2")), "n_arquivos")
    expect_error(toy_folder(tmp_path / "e", txt=good.replace("toy_R.dat", "../toy_R.dat")), "invalid name")
    expect_error(toy_folder(tmp_path / "f", txt=""), "empty file")


def test_uci_row_count_must_match_description(tmp_path: Path) -> None:
    good = toy_texts()["toy.txt"]
    wrong = good.replace("n_patrons1= 16", "n_patrons1= 17")
    expect_error(toy_folder(tmp_path, txt=wrong), "16 data rows", "n_patrons1=17")


def test_uci_ragged_row(tmp_path: Path) -> None:
    dat = toy_texts()["toy_R.dat"]
    # Line 5 holds data row 3 (0-based); drop its last feature.
    cells = dat.split("\n")[4].split("\t")
    expect_error(toy_folder(tmp_path, dat=replace_line(dat, 5, "\t".join(cells[:-2] + cells[-1:]))),
                 "toy_R.dat", "line 5", "expected 6 columns")


def test_uci_non_numeric_cell(tmp_path: Path) -> None:
    dat = toy_texts()["toy_R.dat"]
    cells = dat.split("\n")[6].split("\t")
    cells[2] = "abc"
    expect_error(toy_folder(tmp_path, dat=replace_line(dat, 7, "\t".join(cells))), "line 7", "column 3 (f2)", "'abc'")


@pytest.mark.parametrize("value", ["nan", "inf", "-Infinity"])
def test_uci_non_finite(tmp_path: Path, value: str) -> None:
    dat = toy_texts()["toy_R.dat"]
    cells = dat.split("\n")[3].split("\t")
    cells[4] = value
    folder = toy_folder(tmp_path, dat=replace_line(dat, 4, "\t".join(cells)))
    expect_error(folder, "line 4", "column 5 (f4)", "not finite")


@pytest.mark.parametrize("label", ["2", "0.5", "-1"])
def test_uci_bad_label(tmp_path: Path, label: str) -> None:
    dat = toy_texts()["toy_R.dat"]
    cells = dat.split("\n")[2].split("\t")
    cells[-1] = label
    expect_error(toy_folder(tmp_path, dat=replace_line(dat, 3, "\t".join(cells))), "line 3", "label", "0..1")


def test_uci_header_only_and_empty_data(tmp_path: Path) -> None:
    header = toy_texts()["toy_R.dat"].split("\n")[0]
    expect_error(toy_folder(tmp_path / "a", dat=header + "\n"), "no data rows")
    expect_error(toy_folder(tmp_path / "b", dat=""), "toy_R.dat", "empty file")
    expect_error(toy_folder(tmp_path / "c", dat="  \n\n"), "empty file")


def test_uci_single_class(tmp_path: Path) -> None:
    dat = toy_texts()["toy_R.dat"]
    lines = dat.split("\n")
    lines = [lines[0]] + [line.rsplit("\t", 1)[0] + "\t0" for line in lines[1:] if line]
    expect_error(toy_folder(tmp_path, dat="\n".join(lines)), "at least 2 classes")


def test_uci_split_index_out_of_range(tmp_path: Path) -> None:
    split = toy_texts()["conxuntos.dat"]
    expect_error(toy_folder(tmp_path, split=split.replace(" 15 ", " 16 ")),
                 "conxuntos.dat line 2 (validation)", "index 16", "out of range")


def test_uci_kfold_index_out_of_range(tmp_path: Path) -> None:
    kfold = toy_texts()["conxuntos_kfold.dat"]
    lines = kfold.split("\n")
    lines[3] = lines[3] + "-1"
    expect_error(toy_folder(tmp_path, kfold="\n".join(lines)), "conxuntos_kfold.dat line 4 (fold1_test)", "index -1")


def test_uci_split_defects(tmp_path: Path) -> None:
    texts = toy_texts()
    split, kfold = texts["conxuntos.dat"], texts["conxuntos_kfold.dat"]
    expect_error(toy_folder(tmp_path / "a", split=split.replace(" 3 ", " x ")), "line 1", "'x' is not an integer")
    expect_error(toy_folder(tmp_path / "b", split=split.replace(" 3 ", " 2 ")), "index 2 appears more than once")
    expect_error(toy_folder(tmp_path / "c", split=split.split("\n")[0]), "expected 2 lines", "found 1")
    expect_error(toy_folder(tmp_path / "d", kfold="\n".join(kfold.split("\n")[:6])), "expected 8 lines", "found 6")
    expect_error(toy_folder(tmp_path / "e", kfold=kfold + "1 2 3\n"), "expected exactly 8 lines")
    expect_error(toy_folder(tmp_path / "f", split=split.replace(" 15 ", " 7 ")), "share 1 indices")


def test_uci_split_class_rules(tmp_path: Path) -> None:
    # Training on even rows only: one class, the SVM cannot be fitted.
    evens = " ".join(str(i) for i in range(0, N_TOY, 2))
    odds = " ".join(str(i) for i in range(1, N_TOY, 2))
    expect_error(toy_folder(tmp_path / "a", split=f"{evens}\n{odds}\n"), "conxuntos.dat line 1 (train)", "only class 0")
    # Validation holds class 1, training holds class 1 only once: accepted (UCI has such cases).
    one = " ".join(str(i) for i in [0, 2, 4, 6, 1])
    rest = " ".join(str(i) for i in [3, 5, 7, 8])
    ds = load_dataset(toy_folder(tmp_path / "b", split=f"{one}\n{rest}\n"))
    assert ds.splits is not None and ds.splits.train.size == 5
    # The same rule holds for every fold's training part.
    kfold = toy_texts()["conxuntos_kfold.dat"].split("\n")
    kfold[0] = evens
    kfold[1] = odds
    folder = toy_folder(tmp_path / "c", kfold="\n".join(kfold))
    expect_error(folder, "conxuntos_kfold.dat line 1 (fold0_train)", "only class 0")


def test_uci_limits(tmp_path: Path) -> None:
    folder = toy_folder(tmp_path)
    expect_error(folder, "n_patrons1=16", "limit", limits=DatasetLimits(max_samples=10))
    expect_error(folder, "4 steps", "limit", limits=DatasetLimits(max_steps=3))
    expect_error(folder, "values", "limit", limits=DatasetLimits(max_values=40))
    expect_error(folder, "bytes", "limit", limits=DatasetLimits(max_file_bytes=100))


def test_limits_validate_themselves() -> None:
    with pytest.raises(ValueError, match="max_samples"):
        DatasetLimits(max_samples=0)


def test_the_library_takes_as_many_samples_as_the_service() -> None:
    """``rntk evaluate`` (the library's default limits) refused a 10^6-series archive at
    100,000 cases that the service (RNTK_MAX_SAMPLES) accepts for the landmark path."""
    from worker.settings import Settings

    assert DatasetLimits().max_samples == Settings.model_fields["max_samples"].default == 10_000_000


# --------------------------------------------------------------------------------- zips


def test_zip_corrupt_and_truncated(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.zip"
    garbage.write_bytes(b"this is not a zip file at all")
    expect_error(garbage, "not a readable zip")
    full = zip_folder(toy_folder(tmp_path), tmp_path / "full.zip").read_bytes()
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(full[: len(full) // 2])
    expect_error(truncated, "truncated.zip")


def test_zip_bad_crc(tmp_path: Path) -> None:
    archive = tmp_path / "crc.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as out:
        for name, text in toy_texts().items():
            out.writestr(name, text)
    data = bytearray(archive.read_bytes())
    offset = data.index(b"n_entradas")
    data[offset] ^= 0x20  # flip a byte inside the stored toy.txt
    archive.write_bytes(bytes(data))
    expect_error(archive, "corrupt entry", "toy.txt")


@pytest.mark.parametrize("evil", ["../evil.txt", "toy/../../evil.txt", "/tmp/evil.txt", "..\\evil.txt", "C:/evil.txt"])
def test_zip_entry_escaping_folder(tmp_path: Path, evil: str) -> None:
    archive = zip_folder(toy_folder(tmp_path), tmp_path / "evil.zip", extra={evil: b"x"})
    error = expect_error(archive, "evil.zip", "evil.txt")
    assert "absolute" in str(error) or "escapes" in str(error)
    assert not Path(tempfile.gettempdir(), "evil.txt").exists()


def test_zip_size_limits(tmp_path: Path) -> None:
    archive = zip_folder(toy_folder(tmp_path), tmp_path / "toy.zip")
    assert load_dataset(archive).n_samples == N_TOY
    expect_error(archive, "uncompressed size", limits=DatasetLimits(max_zip_bytes=500))
    expect_error(archive, "entries", limits=DatasetLimits(max_zip_members=3))
    # A highly compressible entry: small on disk, large when extracted.
    bomb = zip_folder(toy_folder(tmp_path), tmp_path / "bomb.zip", extra={"padding.bin": b"\0" * 5_000_000})
    assert bomb.stat().st_size < 100_000
    expect_error(bomb, "uncompressed size", limits=DatasetLimits(max_zip_bytes=1_000_000))


def test_zip_extraction_cleans_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    good = zip_folder(toy_folder(tmp_path), tmp_path / "good.zip")
    assert load_dataset(good).n_samples == N_TOY
    texts = toy_texts()
    texts["toy_R.dat"] = texts["toy_R.dat"].replace("\t0\n", "\tzero\n", 1)
    bad = zip_folder(write_folder(tmp_path / "bad", texts), tmp_path / "bad.zip")
    expect_error(bad, "non-numeric value 'zero'")
    assert list(scratch.iterdir()) == []


def test_zip_without_uci_folder(tmp_path: Path) -> None:
    archive = tmp_path / "other.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("a/readme.md", "hello")
        out.writestr("b/readme.md", "hello")
    expect_error(archive, "no UCI dataset folder")
    empty = tmp_path / "empty.zip"
    zipfile.ZipFile(empty, "w").close()
    expect_error(empty, "no UCI dataset folder")


def test_zip_missing_file(tmp_path: Path) -> None:
    texts: dict[str, str | None] = dict(toy_texts())
    texts["conxuntos_kfold.dat"] = None
    archive = zip_folder(write_folder(tmp_path, texts), tmp_path / "toy.zip", prefix="toy/")
    expect_error(archive, "missing conxuntos_kfold.dat")


# ---------------------------------------------------------------------------------- CSV


def test_csv_label_column_named_label(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "a,label,b,c\n1,cat,2,3\n4,dog,5,6\n7,cat,8,9\n1,dog,1,1\n")
    ds = load_dataset(path)
    assert (ds.name, ds.format) == ("data", "csv")
    assert ds.X.shape == (4, 3, 1)
    np.testing.assert_array_equal(ds.X[0, :, 0], [1, 2, 3])
    assert ds.classes.tolist() == ["cat", "dog"]
    assert ds.y.tolist() == [0, 1, 0, 1]
    assert ds.splits is None


def test_csv_label_column_default_last(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "x,y,z\n1,2,10\n3,4,20\n5,6,10\n7,8,20\n")
    ds = load_dataset(path)
    assert ds.X.shape == (4, 2, 1)
    assert ds.classes.tolist() == [10, 20] and ds.classes.dtype.kind == "i"
    np.testing.assert_array_equal(ds.X[:, :, 0], [[1, 2], [3, 4], [5, 6], [7, 8]])

def test_csv_explicit_label_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "x,label,z\n1,0.5,1\n1,0.5,2\n2,0.5,1\n2,0.5,2\n")
    ds = load_dataset(path, label_column="x")
    assert ds.classes.tolist() == [1, 2]
    np.testing.assert_array_equal(ds.X[:, :, 0], [[0.5, 1], [0.5, 2], [0.5, 1], [0.5, 2]])
    expect_error(path, "no column named 'w'", "'x', 'label', 'z'", label_column="w")


def test_csv_quirks_tolerated(tmp_path: Path) -> None:
    text = '\ufeff"a" ; "b" ; label \n 1.5 ; -2 ; 0 \n\n3;4e-1;1\r\n"5";6;0\n7;8;1\n\n'
    ds = load_dataset(write_csv(tmp_path, text))
    np.testing.assert_allclose(ds.X[:, :, 0], [[1.5, -2], [3, 0.4], [5, 6], [7, 8]])
    assert ds.y.tolist() == [0, 1, 0, 1]


def test_csv_features_per_step(tmp_path: Path) -> None:
    header = ",".join(f"f{j}" for j in range(6)) + ",label\n"
    rows = "".join(",".join(str(10 * i + j) for j in range(6)) + f",{i % 2}\n" for i in range(4))
    path = write_csv(tmp_path, header + rows)
    ds = load_dataset(path, features_per_step=2)
    assert ds.X.shape == (4, 3, 2)
    np.testing.assert_array_equal(ds.X[1], [[10, 11], [12, 13], [14, 15]])
    expect_error(path, "6 features per row are not divisible by features_per_step=4", features_per_step=4)
    assert load_dataset(path, steps=2).X.shape == (4, 2, 3)


@pytest.mark.parametrize(
    ("body", "fragments"),
    [
        ("1,2,0\n3,4\n5,6,1\n", ("line 3", "expected 3 columns", "found 2")),
        ("1,2,0\n3,4,1,9\n", ("line 3", "found 4")),
        ("1,2,0\n3,abc,1\n", ("line 3", "column 'b'", "non-numeric value 'abc'")),
        ("1,2,0\n3,,1\n", ("line 3", "column 'b'", "empty cell")),
        ("1,2,0\n\n3,nan,1\n", ("line 4", "column 'b'", "not finite")),
        ("1,2,0\n3,4,1\n5,-inf,1\n", ("line 4", "column 'b'", "not finite")),
        ("1,2,0\n3,4, \n", ("line 3", "empty label")),
        ("1,2,0\n3,4,nan\n", ("line 3", "label 'nan' is not finite")),
    ],
)
def test_csv_defects(tmp_path: Path, body: str, fragments: tuple[str, ...]) -> None:
    expect_error(write_csv(tmp_path, "a,b,label\n" + body), "data.csv", *fragments)


def test_csv_empty_and_header_only(tmp_path: Path) -> None:
    expect_error(write_csv(tmp_path, "", "empty.csv"), "empty.csv", "empty file")
    expect_error(write_csv(tmp_path, "a,b,label\n", "header.csv"), "no data rows")
    expect_error(write_csv(tmp_path, "label\n1\n2\n", "only.csv"), "no feature columns")
    expect_error(write_csv(tmp_path, "a,label,label\n1,2,3\n", "dup.csv"), "appears 2 times")


def test_csv_class_rules(tmp_path: Path) -> None:
    expect_error(write_csv(tmp_path, "a,label\n1,x\n2,x\n", "one.csv"), "at least 2 classes")
    expect_error(write_csv(tmp_path, "a,label\n1,x\n2,x\n3,y\n", "few.csv"), "at least 2 samples", "'y' (1)")


def test_csv_limits(tmp_path: Path) -> None:
    body = "".join(f"{i},{i % 2}\n" for i in range(20))
    path = write_csv(tmp_path, "a,label\n" + body)
    expect_error(path, "line 12", "more than 10 samples", limits=DatasetLimits(max_samples=10))
    wide = write_csv(tmp_path, "a,b,c,label\n1,2,3,0\n1,2,3,1\n", "wide.csv")
    expect_error(wide, "3 steps", "limit", limits=DatasetLimits(max_steps=2))


def test_csv_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes(b"a,label\n1,0\n2,\xe9t\xe9\n")
    expect_error(path, "line 3", "UTF-8")


# ---------------------------------------------------------------------------------- NPZ


def test_npz_three_d_with_lengths_and_splits(tmp_path: Path) -> None:
    arrays = toy_npz_arrays()
    arrays["lengths"] = np.array([5, 4, 3, 2, 1, 5, 5, 5, 5, 5, 5, 5])
    arrays |= npz_splits()
    ds = load_dataset(write_npz(tmp_path, arrays))
    assert (ds.name, ds.format) == ("data", "npz")
    assert ds.X.shape == (12, 5, 2)
    np.testing.assert_array_equal(ds.X, arrays["X"])
    assert ds.lengths is not None and ds.lengths.tolist() == arrays["lengths"].tolist()
    assert ds.splits is not None
    np.testing.assert_array_equal(ds.splits.train, np.arange(0, 12, 2))
    np.testing.assert_array_equal(ds.splits.folds[3][1], [3, 7, 11])


def test_npz_two_d_and_string_labels(tmp_path: Path) -> None:
    X = np.arange(24, dtype=np.float32).reshape(6, 4)
    y = np.array(["b", "a", "b", "a", "c", "c"])
    ds = load_dataset(write_npz(tmp_path, {"X": X, "y": y}))
    assert ds.X.shape == (6, 4, 1) and ds.X.dtype == np.float64
    assert ds.classes.tolist() == ["a", "b", "c"]
    assert ds.y.tolist() == [1, 0, 1, 0, 2, 2]
    assert load_dataset(tmp_path / "data.npz", steps=4).n_steps == 4
    expect_error(tmp_path / "data.npz", "steps=3", steps=3)


@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        ({"X": None}, ("missing the required array 'X'",)),
        ({"y": None}, ("missing the required array 'y'",)),
        ({"y": np.arange(11) % 3}, ("'y' must have shape (12,)",)),
        ({"X": np.zeros((12, 2, 2, 2))}, ("'X' must have shape (N, T) or (N, T, m)",)),
        ({"X": np.zeros((12, 0, 2))}, ("no empty axis",)),
        ({"X": np.array(["a"] * 12)}, ("'X' must be numeric",)),
        ({"lengths": np.array([5] * 11 + [6])}, ("'lengths' at sample 11", "1..T = 1..5")),
        ({"lengths": np.array([0] + [5] * 11)}, ("'lengths' at sample 0",)),
        ({"lengths": np.array([2.5] + [5] * 11)}, ("'lengths' at sample 0",)),
        ({"lengths": np.array([5] * 11)}, ("'lengths' must have shape (12,)",)),
        ({"train": np.arange(6)}, ("splits are incomplete", "validation", "fold3_test")),
        ({"oops": np.arange(3)}, ("unexpected entries 'oops'",)),
    ],
)
def test_npz_defects(tmp_path: Path, change: dict[str, np.ndarray | None], fragments: tuple[str, ...]) -> None:
    arrays = toy_npz_arrays()
    for key, value in change.items():
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value
    expect_error(write_npz(tmp_path, arrays), "data.npz", *fragments)


def test_npz_non_finite_and_split_defects(tmp_path: Path) -> None:
    arrays = toy_npz_arrays()
    arrays["X"][3, 2, 1] = np.nan
    expect_error(write_npz(tmp_path, arrays, "nan.npz"), "sample 3, step 2, feature 1", "not finite")
    arrays = toy_npz_arrays() | npz_splits()
    arrays["fold2_test"] = np.array([2, 6, 12])
    expect_error(write_npz(tmp_path, arrays, "range.npz"), "'fold2_test'", "index 12", "out of range")
    arrays = toy_npz_arrays() | npz_splits()
    arrays["validation"] = arrays["validation"].astype(float)
    expect_error(write_npz(tmp_path, arrays, "float.npz"), "'validation'", "must be integers")
    arrays = toy_npz_arrays() | npz_splits()
    arrays["train"] = np.array([0, 3, 6, 9])  # y = i % 3: class 0 only
    arrays["validation"] = np.array([1, 2, 4, 5])
    expect_error(write_npz(tmp_path, arrays, "oneclass.npz"), "'train' holds only class 0")
    # Class 2 is validated but never trained on: it could never be predicted.
    arrays["train"] = np.array([0, 1, 3, 4])
    arrays["validation"] = np.array([2, 5, 6, 7])
    expect_error(write_npz(tmp_path, arrays, "unseen.npz"), "class 2 occurs in", "'validation'", "not in")


def test_npz_refuses_pickles_and_corruption(tmp_path: Path) -> None:
    arrays = toy_npz_arrays()
    arrays["y"] = np.array([object()] * 12, dtype=object)
    path = tmp_path / "pickle.npz"
    np.savez(path, **arrays)  # savez pickles object arrays
    expect_error(path, "holds Python objects")
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 definitely not a real archive")
    expect_error(corrupt, "corrupt.npz", "not a readable .npz")
    good = write_npz(tmp_path, toy_npz_arrays(), "good.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(good[: len(good) // 2])
    expect_error(tmp_path / "cut.npz", "cut.npz")


def test_npz_limits(tmp_path: Path) -> None:
    path = write_npz(tmp_path, toy_npz_arrays())
    expect_error(path, "12 samples", limits=DatasetLimits(max_samples=11))
    expect_error(path, "2 features per step", limits=DatasetLimits(max_features=1))


# ------------------------------------------------------------------------------ general


def test_dispatch_errors(tmp_path: Path) -> None:
    expect_error(tmp_path / "nothing.csv", "no such file")
    other = tmp_path / "data.json"
    other.write_text("{}")
    expect_error(other, "unsupported dataset type '.json'")
    path = write_npz(tmp_path, toy_npz_arrays())
    expect_error(path, "label_column applies only to CSV", label_column="y")
    expect_error(path, "features_per_step must be a positive integer", features_per_step=0)


def test_dataset_error_is_value_error() -> None:
    assert issubclass(DatasetError, ValueError)


def test_dataset_structural_checks() -> None:
    X = np.zeros((4, 3, 1), dtype=np.float32)
    ds = Dataset(X=X, y=np.array([0, 1, 0, 1]), classes=np.array(["a", "b"]), name="t", format="npz")
    assert ds.X.dtype == np.float64 and ds.n_classes == 2
    with pytest.raises(DatasetError, match="shape"):
        Dataset(X=np.zeros((4, 3)), y=np.zeros(4, int), classes=np.array([0]), name="t", format="npz")
    with pytest.raises(DatasetError, match="index into classes"):
        Dataset(X=X, y=np.array([0, 1, 2, 1]), classes=np.array([0, 1]), name="t", format="npz")
    with pytest.raises(DatasetError, match="lengths"):
        Dataset(X=X, y=np.zeros(4, int), classes=np.array([0]), name="t", format="npz", lengths=np.array([1, 2, 3, 4]))
    bad = Splits(train=np.array([0, 4]), validation=np.array([1]), folds=[])
    with pytest.raises(DatasetError, match="'train'"):
        Dataset(X=X, y=np.zeros(4, int), classes=np.array([0]), name="t", format="npz", splits=bad)


def test_check_stratifiable(tmp_path: Path) -> None:
    # A predefined-split dataset may hold a class of one sample; forcing stratified rejects it.
    arrays = toy_npz_arrays() | npz_splits()
    arrays["y"] = np.array([0, 1] * 5 + [0, 2])
    arrays["fold3_train"] = np.array([0, 1, 2, 4, 5, 6, 8, 9, 10, 11])
    arrays["fold3_test"] = np.array([3, 7])
    arrays["train"] = np.array([0, 2, 4, 6, 8, 10, 11, 1])
    arrays["validation"] = np.array([3, 5, 7, 9])
    for k in range(3):
        arrays[f"fold{k}_train"] = np.setdiff1d(np.arange(12), arrays[f"fold{k}_test"][:2])
        arrays[f"fold{k}_test"] = arrays[f"fold{k}_test"][:2]
    ds = load_dataset(write_npz(tmp_path, arrays))
    with pytest.raises(DatasetError, match=r"class 2 \(1\)"):
        check_stratifiable(ds)


def test_content_sha256_ignores_how_a_folder_was_packed(tmp_path: Path) -> None:
    import subprocess
    import sys

    from rntk_core.evaluation.datasets import content_sha256

    folder = SHARED / "data" / "uci" / "iris"
    by_cli = tmp_path / "cli.zip"
    subprocess.run([sys.executable, "-m", "zipfile", "-c", str(by_cli), str(folder)], check=True)
    by_hand = tmp_path / "hand.zip"
    with zipfile.ZipFile(by_hand, "w", zipfile.ZIP_STORED) as archive:  # other order, no folder entry
        for path in sorted(folder.iterdir(), reverse=True):
            archive.write(path, f"iris/{path.name}")
        archive.writestr("iris/.DS_Store", b"junk")
        archive.writestr("__MACOSX/iris/._iris.txt", b"junk")
    assert content_sha256(by_cli) == content_sha256(by_hand) == content_sha256(folder)

    changed = tmp_path / "changed" / "iris"
    changed.mkdir(parents=True)
    for path in folder.iterdir():
        changed.joinpath(path.name).write_bytes(path.read_bytes())
    changed.joinpath("iris.txt").write_bytes(folder.joinpath("iris.txt").read_bytes() + b" ")
    assert content_sha256(changed) != content_sha256(folder)
    renamed = tmp_path / "other.csv"
    renamed.write_text("a,label\n1,x\n2,y\n")
    assert content_sha256(renamed) == __import__("hashlib").sha256(renamed.read_bytes()).hexdigest()


# ------------------------------------------------------------- streaming and parsed arrays


def test_a_csv_of_many_tiny_lines_parses_in_bounded_memory(tmp_path: Path) -> None:
    """The loaders once read a file whole into Python lines and a float object per value: a
    100 MB CSV of tiny lines took the API to 2.57 GB. Streamed, the parse holds about twice
    X and y plus a few MB (before: 18x X and y here)."""
    import tracemalloc

    n = 250_000
    path = tmp_path / "tiny.csv"
    with open(path, "w") as handle:
        handle.write("x,label\n")
        handle.writelines(f"{i % 7}.5,{i % 2}\n" for i in range(n))
    tracemalloc.start()
    try:
        ds = load_dataset(path, limits=DatasetLimits(max_samples=10 * n))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert ds.X.shape == (n, 1, 1) and ds.y.tolist()[:4] == [0, 1, 0, 1]
    parsed = ds.X.nbytes + ds.y.nbytes
    assert peak < 2 * parsed + (8 << 20), (peak, parsed)


def test_line_reading_matches_splitlines_across_block_edges(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import random

    from rntk_core.evaluation.datasets import common

    monkeypatch.setattr(common, "BLOCK_BYTES", 7)  # every edge case lands on a block edge somewhere
    pieces = ["a", "b", "\n", "\r", "\r\n", "\u00e9", "\u2028", " ", "\x85", "\u20ac"]
    rng = random.Random(0)
    path = tmp_path / "lines.txt"
    for _ in range(500):
        text = ("\ufeff" if rng.random() < 0.2 else "") + "".join(rng.choice(pieces) for _ in range(rng.randint(1, 40)))
        path.write_bytes(text.encode())
        if not text.encode().strip():
            continue
        assert list(common.text_lines(path, DatasetLimits())) == text.encode().decode("utf-8-sig").splitlines()
    path.write_bytes(b"abcdefghijk\nlmnopqrstu\nvw\xc3")  # a character cut off at the end
    with pytest.raises(DatasetError, match="line 3: not valid UTF-8"):
        list(common.text_lines(path, DatasetLimits()))


def test_labels_and_lines_are_bounded(tmp_path: Path) -> None:
    long = write_csv(tmp_path, "a,label\n1,x\n2," + "y" * 2000 + "\n", "long.csv")
    expect_error(long, "line 3", "2000 characters, over the limit")
    many = write_csv(tmp_path, "a,label\n" + "".join(f"{i},c{i}\n" for i in range(10)), "many.csv")
    expect_error(many, "line 7", "more than 5 classes", limits=DatasetLimits(max_classes=5))
    case = tmp_path / "long.ts"  # one case line of 4 MB: refused while it is read, not after
    case.write_text("@classLabel true a b\n@data\n1,2:a\n" + "0.5," * 1_000_000 + "1:b\n")
    expect_error(case, "line 4", "longer than the limit of 1000000 bytes", limits=DatasetLimits(max_line_bytes=1_000_000))


def _assert_same(actual: Dataset, expected: Dataset) -> None:
    for name in ("X", "y", "classes", "lengths"):
        a, b = getattr(actual, name), getattr(expected, name)
        assert (a is None) == (b is None), name
        if a is not None:
            np.testing.assert_array_equal(a, b, err_msg=name)
    assert (actual.name, actual.format) == (expected.name, expected.format)
    assert (actual.splits is None) == (expected.splits is None)
    if expected.splits is not None:
        assert actual.splits.selection == expected.splits.selection
        for (part, a), (_, b) in zip(actual.splits.parts(), expected.splits.parts(), strict=True):
            np.testing.assert_array_equal(a, b, err_msg=part)


def _stored_sources(tmp_path: Path) -> list[Path]:
    """A UCI zip (splits), an npz with lengths, a .ts pair of unequal lengths, each in its own folder."""
    for kind in ("uci", "npz"):
        (tmp_path / kind).mkdir()
    sources = [zip_folder(toy_folder(tmp_path / "uci-source"), tmp_path / "uci" / "toy.zip")]
    arrays = toy_npz_arrays() | npz_splits() | {"lengths": np.array([5, 4, 3, 2, 1, 5, 5, 5, 5, 5, 5, 5])}
    sources.append(write_npz(tmp_path / "npz", arrays))
    ts = Path(__file__).resolve().parents[1] / "data" / "ts" / "PickupGestureWiimoteZ.zip"
    if ts.is_file():
        (tmp_path / "ts").mkdir()
        sources.append(Path(shutil.copy(ts, tmp_path / "ts" / ts.name)))
    return sources


def test_parsed_arrays_round_trip_as_memory_maps(tmp_path: Path) -> None:
    from rntk_core.evaluation.datasets import is_memory_mapped, load_parsed, save_parsed

    for source in _stored_sources(tmp_path):
        loaded = load_dataset(source)
        folder = save_parsed(loaded, source.parent, source=source)
        assert folder == source.parent / "parsed" and (folder / "manifest.json").is_file()
        assert [p.name for p in source.parent.iterdir() if p.name.startswith(".")] == []  # no staging left
        mapped = load_parsed(source.parent)
        _assert_same(mapped, loaded)
        assert is_memory_mapped(mapped.X) and not mapped.X.flags.writeable
        assert not is_memory_mapped(load_parsed(folder, mmap=False).X)
        assert save_parsed(loaded, source.parent, source=source) == folder  # kept, not rewritten


def test_load_for_job_uses_the_parsed_arrays_only_where_they_give_the_same_dataset(tmp_path: Path) -> None:
    from rntk_core.evaluation.datasets import is_memory_mapped, load_for_job, save_parsed

    path = write_csv(tmp_path, "a,b,c,d,label\n" + "".join(f"{i},{i * 2},{i % 3},{i % 5},{i % 2}\n" for i in range(12)))
    before = load_for_job(path, 2)  # stored before parsed/ existed: parsed from the file
    assert not is_memory_mapped(before.X)
    _assert_same(before, load_dataset(path, features_per_step=2))
    save_parsed(load_dataset(path), tmp_path, source=path)
    for features_per_step in (1, 2, 4):
        dataset = load_for_job(path, features_per_step)
        assert is_memory_mapped(dataset.X), features_per_step
        _assert_same(dataset, load_dataset(path, features_per_step=features_per_step))
    with pytest.raises(DatasetError, match="not divisible by features_per_step=3"):
        load_for_job(path, 3)
    with pytest.raises(DatasetError, match="more than 10 samples"):
        load_for_job(path, 1, DatasetLimits(max_samples=10))
    path.write_text(path.read_text() + "99,1,2,3,0\n")  # the file changed: its parsed/ no longer applies
    changed = load_for_job(path, 1)
    assert not is_memory_mapped(changed.X) and changed.n_samples == 13


def test_recording_loads_keeps_what_a_callee_loaded(tmp_path: Path) -> None:
    from rntk_core.evaluation.datasets import recording_loads

    path = write_csv(tmp_path, "a,label\n1,0\n2,1\n3,0\n4,1\n")
    with recording_loads() as loaded:
        first = load_dataset(path)
    load_dataset(path)  # outside the block: not recorded
    assert loaded == [first]
