"""The UCI folder format of Fernandez-Delgado et al., as a folder or a zip of one."""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np

from .common import (
    BLOCK_ROWS,
    BLOCK_VALUES,
    MACOS_JUNK,
    N_FOLDS,
    SPLIT_KEYS,
    Dataset,
    DatasetError,
    DatasetLimits,
    Splits,
    check_size,
    finish,
    first_nonfinite,
    indices,
    row_limit,
    parse_floats,
    rows_to_sequences,
    step_layout,
    text_lines,
)
from .archive import extracted

def load_uci_folder(
    folder: Path, steps: int | None, features_per_step: int, limits: DatasetLimits
) -> Dataset:
    """Load a UCI folder: description, data file and both split files are required."""
    description = _find_description(folder)
    name = description.stem
    n_features, n_classes, n_rows, data_name = _read_description(description, limits)
    if n_rows > limits.max_samples:
        raise DatasetError(f"{description.name}: n_patrons1={n_rows}, over the limit of {limits.max_samples}")
    # Check the step layout before reading a possibly large file.
    t, m = step_layout(n_features, steps, features_per_step, description.name)
    check_size(n_rows, t, m, description.name, limits)

    data_path = _member_file(folder, data_name, f"the data file named by fich1 in {description.name}")
    split_path = _member_file(folder, "conxuntos.dat", "the train/validation split")
    kfold_path = _member_file(folder, "conxuntos_kfold.dat", "the 4 test folds")

    features, labels = _read_uci_data(data_path, n_features, n_classes, limits)
    if features.shape[0] != n_rows:
        raise DatasetError(
            f"{data_path.name}: {features.shape[0]} data rows, but {description.name} "
            f"says n_patrons1={n_rows}"
        )
    X = rows_to_sequences(features, steps, features_per_step, data_path.name, limits)

    n = features.shape[0]
    parts = _read_index_lines(split_path, n, limits, SPLIT_KEYS[:2])
    parts |= _read_index_lines(kfold_path, n, limits, SPLIT_KEYS[2:])
    splits = Splits(
        train=parts["train"][1],
        validation=parts["validation"][1],
        folds=[(parts[f"fold{k}_train"][1], parts[f"fold{k}_test"][1]) for k in range(N_FOLDS)],
    )
    sources = {part: where for part, (where, _) in parts.items()}
    return finish(X, labels, name, "uci", splits=splits, split_sources=sources)


def _find_description(folder: Path) -> Path:
    """Find ``<name>.txt``: the folder's namesake, else the only (or only paired) .txt."""
    own = folder / f"{folder.name}.txt"
    if own.is_file():
        return own
    texts = sorted(p for p in folder.glob("*.txt") if p.is_file())
    if len(texts) == 1:
        return texts[0]
    paired = [p for p in texts if (folder / f"{p.stem}_R.dat").is_file()]
    if len(paired) == 1:
        return paired[0]
    if not texts:
        raise DatasetError(f"UCI folder {folder.name!r} is missing its <name>.txt description file")
    raise DatasetError(
        f"UCI folder {folder.name!r}: cannot tell which .txt is the description "
        f"({', '.join(p.name for p in texts[:5])})"
    )


def _member_file(folder: Path, name: str, what: str) -> Path:
    """Resolve a file named inside a UCI folder, refusing paths that leave the folder."""
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        raise DatasetError(f"UCI folder {folder.name!r}: {what} has an invalid name {name!r}")
    path = folder / name
    if not path.is_file():
        raise DatasetError(f"UCI folder {folder.name!r} is missing {name} ({what})")
    return path


_KEY_VALUE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


class _Description(NamedTuple):
    """The keys of ``<name>.txt`` that the loader needs."""

    n_features: int  # n_entradas
    n_classes: int  # n_clases
    n_rows: int  # n_patrons1
    data_file: str  # fich1


def _read_description(path: Path, limits: DatasetLimits) -> _Description:
    """Parse the ``key= value`` lines of ``<name>.txt``."""
    values: dict[str, tuple[str, int]] = {}
    for line_no, line in enumerate(text_lines(path, limits), start=1):
        if not line.strip():
            continue
        match = _KEY_VALUE.match(line)
        if match is None:
            raise DatasetError(f"{path.name}: line {line_no}: expected 'key= value', got {line.strip()[:60]!r}")
        values[match.group(1)] = (match.group(2), line_no)
    for key in ("n_entradas", "n_clases", "n_patrons1", "fich1"):
        if key not in values:
            raise DatasetError(f"{path.name}: missing the '{key}=' line")
    numbers: dict[str, int] = {}
    for key in ("n_entradas", "n_clases", "n_patrons1"):
        text, line_no = values[key]
        try:
            number = int(text)
        except ValueError:
            raise DatasetError(f"{path.name}: line {line_no}: {key}= must be an integer, got {text!r}") from None
        if number < 1:
            raise DatasetError(f"{path.name}: line {line_no}: {key}= must be positive, got {number}")
        numbers[key] = number
    if "n_arquivos" in values and values["n_arquivos"][0].strip() != "1":
        text, line_no = values["n_arquivos"]
        raise DatasetError(
            f"{path.name}: line {line_no}: n_arquivos={text}; only single-file datasets are supported"
        )
    return _Description(numbers["n_entradas"], numbers["n_clases"], numbers["n_patrons1"], values["fich1"][0])


def _read_uci_data(
    path: Path, n_features: int, n_classes: int, limits: DatasetLimits
) -> tuple[np.ndarray, np.ndarray]:
    """Read ``<name>_R.dat``: header line, then ``index f1..fd label`` rows, as a stream of
    blocks of about :data:`.common.BLOCK_VALUES` values (the parse holds about twice the table).

    Returns:
        features (N, d) float64 and labels (N,) int64.
    """
    n_columns = n_features + 2
    names = ["1 (index)"] + [f"{j + 2} (f{j + 1})" for j in range(n_features)] + [f"{n_columns} (label)"]
    most_rows = row_limit(n_features, limits)
    block_rows = max(1, min(BLOCK_ROWS, BLOCK_VALUES // n_columns))
    features: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    lines: list[str] = []
    line_numbers: list[int] = []
    n_rows = 0
    # Line 1 is the header; data rows are whitespace-separated, blank lines are skipped.
    for line_no, line in enumerate(text_lines(path, limits), start=1):
        if line_no == 1 or not line.strip():
            continue
        if n_rows >= most_rows:
            raise DatasetError(f"{path.name}: line {line_no}: more than {most_rows} samples (limit)")
        lines.append(line)
        line_numbers.append(line_no)
        n_rows += 1
        if len(lines) == block_rows:
            _add_block(lines, line_numbers, path.name, names, n_classes, features, labels)
            lines, line_numbers = [], []
    if lines:
        _add_block(lines, line_numbers, path.name, names, n_classes, features, labels)
    if not n_rows:
        raise DatasetError(f"{path.name}: no data rows after the header line")
    table = features[0] if len(features) == 1 else np.concatenate(features)
    features.clear()
    return table, np.concatenate(labels)


def _add_block(lines: list[str], line_numbers: list[int], where: str, names: list[str], n_classes: int,
               features: list[np.ndarray], labels: list[np.ndarray]) -> None:
    """Parse one block of data rows (non-blank lines) into ``features`` and ``labels``."""
    n_columns = len(names)
    try:
        # Fast C parser for the common, well-formed case.
        table = np.loadtxt(lines, dtype=np.float64, comments=None, ndmin=2)
        if table.shape != (len(lines), n_columns):
            raise ValueError("ragged")
    except ValueError:
        # Slow pass that names the offending line and column.
        rows: list[list[float]] = []
        for line_no, line in zip(line_numbers, lines):
            tokens = line.split()
            if len(tokens) != n_columns:
                raise DatasetError(
                    f"{where}: line {line_no}: expected {n_columns} columns "
                    f"(index, {n_columns - 2} features, label), found {len(tokens)}"
                ) from None
            rows.append(parse_floats(tokens, line_no, where, names))
        table = np.asarray(rows, dtype=np.float64)
    bad = first_nonfinite(table)
    if bad is not None:
        row, col = bad
        raise DatasetError(
            f"{where}: line {line_numbers[row]}, column {names[col]}: value {table[row, col]} is not finite"
        )
    label = table[:, -1]
    not_int = np.flatnonzero((label != np.round(label)) | (label < 0) | (label >= n_classes))
    if not_int.size:
        row = not_int[0]
        raise DatasetError(
            f"{where}: line {line_numbers[row]}, column {names[-1]}: label {label[row]:g} is "
            f"not an integer in 0..{n_classes - 1} (n_clases={n_classes})"
        )
    features.append(np.ascontiguousarray(table[:, 1:-1]))
    labels.append(label.astype(np.int64))


def _read_index_lines(
    path: Path, n: int, limits: DatasetLimits, part_names: Sequence[str]
) -> dict[str, tuple[str, np.ndarray]]:
    """Read a split file with one line of 0-based indices per part (blank lines skipped).

    Returns:
        part name -> (description "file line k (part)", indices (k,) int64).
    """
    expected = len(part_names)
    found: dict[str, tuple[str, np.ndarray]] = {}
    for line_no, line in enumerate(text_lines(path, limits), start=1):
        tokens = line.split()
        if not tokens:
            continue
        if len(found) == expected:
            raise DatasetError(f"{path.name}: line {line_no}: expected exactly {expected} lines of indices")
        part = part_names[len(found)]
        where = f"{path.name} line {line_no} ({part})"
        try:
            values = [int(token) for token in tokens]
        except ValueError:
            token = next(t for t in tokens if not re.fullmatch(r"[+-]?\d+", t))
            raise DatasetError(f"{where}: {token!r} is not an integer index") from None
        found[part] = (where, indices(values, n, where))
    if len(found) != expected:
        raise DatasetError(f"{path.name}: expected {expected} lines of indices, found {len(found)}")
    return found


def load_uci_zip(path: Path, steps: int | None, features_per_step: int, limits: DatasetLimits) -> Dataset:
    """Extract a zipped UCI folder into a temporary directory and load it."""
    with extracted(path, limits) as root:
        folder = _find_uci_root(root, path.name)
        return load_uci_folder(folder, steps, features_per_step, limits)


def _looks_like_uci(folder: Path) -> bool:
    return (folder / "conxuntos.dat").is_file() or any(folder.glob("*_R.dat"))


def _find_uci_root(root: Path, archive_name: str) -> Path:
    """The UCI folder is the archive root or its single top-level directory."""
    if _looks_like_uci(root):
        return root
    dirs = [p for p in root.iterdir() if p.is_dir() and p.name != MACOS_JUNK]
    if len(dirs) == 1 and _looks_like_uci(dirs[0]):
        return dirs[0]
    raise DatasetError(
        f"{archive_name}: no UCI dataset folder (with conxuntos.dat or <name>_R.dat) "
        "at the archive root or one directory down"
    )


