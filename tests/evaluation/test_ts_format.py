"""The .ts reader on real UCR/UEA files (from the aeon 1.6.0 wheel) and on malformed ones."""

from __future__ import annotations

import numpy as np
import pytest

from rntk_core.evaluation.datasets.ts import TsFormatError, parse_ts
from tests.helpers import archive_ts_lines as archive_lines


def data_lines(lines: list[str]) -> list[str]:
    start = next(i for i, line in enumerate(lines) if line.strip().lower() == "@data")
    return [line for line in lines[start + 1:] if line.strip()]


@pytest.mark.parametrize(
    "name, part, n, steps, features, classes",
    [
        ("GunPoint", "TRAIN", 50, 150, 1, {"1", "2"}),
        ("ItalyPowerDemand", "TEST", 1029, 24, 1, {"1", "2"}),
        ("BasicMotions", "TRAIN", 40, 100, 6, {"Standing", "Running", "Walking", "Badminton"}),
        ("JapaneseVowels", "TRAIN", 270, 26, 12, {str(k) for k in range(1, 10)}),
        ("PickupGestureWiimoteZ", "TEST", 50, 324, 1, {str(k) for k in range(1, 11)}),
    ],
)
def test_archive_files_parse_to_their_published_shapes(name, part, n, steps, features, classes) -> None:
    data = parse_ts(archive_lines(name, part), f"{name}_{part}.ts")
    assert data.values.shape == (n, steps, features)
    assert set(data.labels) == classes
    assert data.header.problem_name == name


def test_unequal_lengths_are_front_padded_with_their_true_lengths() -> None:
    lines = archive_lines("PickupGestureWiimoteZ", "TRAIN")
    data = parse_ts(lines, "train")
    assert not data.equal_length
    assert (data.lengths.min(), data.lengths.max()) == (29, 361)
    steps = data.values.shape[1]
    for i, line in enumerate(data_lines(lines)):
        series, label = line.rsplit(":", 1)
        written = np.array([float(v) for v in series.split(",")])
        assert data.lengths[i] == len(written)
        np.testing.assert_array_equal(data.values[i, steps - len(written):, 0], written)
        assert not np.any(data.values[i, : steps - len(written)])
        assert data.labels[i] == label


def test_multivariate_dimensions_become_features_per_step() -> None:
    lines = archive_lines("BasicMotions", "TRAIN")
    data = parse_ts(lines, "train")
    first = data_lines(lines)[0].split(":")
    for dimension in range(6):
        written = [float(v) for v in first[dimension].split(",")]
        np.testing.assert_array_equal(data.values[0, :, dimension], written)
    assert data.labels[0] == first[-1]


HEADER = "@problemName Toy\n@univariate true\n@equalLength true\n@classLabel true a b\n@data\n"


@pytest.mark.parametrize(
    "body, line, message",
    [
        ("1,2,3:a\n1,?,3:b\n", 7, "missing value '?' in dimension 1, position 2"),
        ("1,2,3:a\n1,x,3:b\n", 7, "'x' is not a number"),
        ("1,2,3:a\n1,2,3:c\n", 7, "class label 'c' is not among those declared"),
        ("1,2,3:a\n1,2:b\n", 7, "length 2 differs from the first case's 3"),
        ("1,2,3:a\n1,2,3:4,5,6:b\n", 7, "2 dimensions, expected 1"),
        ("1,2,3\n", 6, "expected values then ':' then the class label"),
        ("1,2,3:\n", 6, "empty class label"),
    ],
)
def test_malformed_cases_name_the_line_and_the_problem(body: str, line: int, message: str) -> None:
    with pytest.raises(TsFormatError) as caught:
        parse_ts((HEADER + body).splitlines(), "toy.ts")
    assert str(caught.value).startswith(f"toy.ts, line {line}: ")
    assert message in str(caught.value)


@pytest.mark.parametrize(
    "text, message",
    [
        ("@problemName Toy\n@classLabel true a\n", "no @data line"),
        ("@problemName Toy\n@data\n1,2:a\n", "line 2: no @classLabel header"),
        ("@timeStamps true\n@classLabel true a\n@data\n", "line 3: @timeStamps true is not supported"),
        ("@classLabel false\n@data\n", "line 1: @classLabel must be true"),
        ("@targetLabel true\n@data\n", "line 1: regression files"),
        ("@univariate maybe\n", "line 1: @univariate must be true or false"),
        ("1,2:a\n@data\n", "line 1: data before the @data line"),
        ("@classLabel true a\n@data\n", "no cases after @data"),
        ("@dimensions 2\n@classLabel true a\n@data\n1,2:3:a\n", "line 4: dimensions of one case differ in length"),
    ],
)
def test_malformed_headers_are_refused(text: str, message: str) -> None:
    with pytest.raises(TsFormatError, match=message):
        parse_ts(text.splitlines(), "toy.ts")


def test_comments_blank_lines_and_case_insensitive_headers() -> None:
    text = "# a comment\n% another\n\n@PROBLEMNAME Toy\n@ClassLabel true x y\n@DATA\n1,2:x\n\n3,4:y\n"
    data = parse_ts(text.splitlines(), "toy.ts")
    np.testing.assert_array_equal(data.values[:, :, 0], [[1, 2], [3, 4]])
    assert list(data.labels) == ["x", "y"]


def test_limits_stop_the_parse_at_the_line_that_crosses_them() -> None:
    body = "".join(f"{i},{i + 1},{i + 2}:{'ab'[i % 2]}\n" for i in range(10))
    lines = (HEADER + body).splitlines()
    with pytest.raises(TsFormatError, match="toy.ts, line 9: more than 3 cases"):
        parse_ts(lines, "toy.ts", max_cases=3)
    with pytest.raises(TsFormatError, match="toy.ts, line 8: more than 6 values"):
        parse_ts(lines, "toy.ts", max_values=6)


def test_one_long_case_is_refused_before_every_case_is_padded_to_it(tmp_path):
    """99,998 one-value cases and one of 10^6 values: padding would allocate 745 GiB before the
    steps limit was checked (a 500 at upload); the limit is checked first."""
    import tracemalloc

    from rntk_core.evaluation.datasets import DatasetError, DatasetLimits, load_dataset

    lines = ["@problemName long", "@timeStamps false", "@missing false", "@univariate true",
             "@equalLength false", "@classLabel true a b", "@data"]
    lines += [f"{k % 7}.0:{'a' if k % 2 else 'b'}" for k in range(99_998)]
    lines.append(",".join(["1.0"] * 1_000_000) + ":a")
    path = tmp_path / "long.ts"
    path.write_text("\n".join(lines) + "\n")
    limits = DatasetLimits(max_samples=10_000_000, max_steps=10_000)
    tracemalloc.start()
    with pytest.raises(DatasetError, match="steps, over the limit"):
        load_dataset(path, limits=limits)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2 << 30, peak  # the parse itself, not a padded array
