""".ts uploads over real HTTP: a TRAIN/TEST zip and a single file are stored; a malformed file
gets a 422 that names the line and the problem, and nothing is stored."""

from __future__ import annotations

from tests.helpers import TS_DATA, archive_ts_lines


def stored(service) -> list:
    root = service.data_dir / "datasets"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_ts_uploads(service_factory) -> None:
    service = service_factory()
    service.start_server()
    client = service.client()

    response = client.post("/datasets", files={"file": ("JapaneseVowels.zip", (TS_DATA / "JapaneseVowels.zip").read_bytes())})
    assert response.status_code == 201, response.text
    view = response.json()
    assert (view["format"], view["n_samples"], view["n_steps"], view["n_features"], view["n_classes"]) == (
        "ts", 640, 29, 12, 9)
    assert (view["test_folds"], view["selection"]) == (1, "cv")  # TRAIN/TEST: one fold, CV inside TRAIN

    single = "\n".join(archive_ts_lines("ItalyPowerDemand", "TRAIN")).encode()
    response = client.post("/datasets", files={"file": ("ItalyPowerDemand_TRAIN.ts", single)})
    assert response.status_code == 201, response.text
    assert (response.json()["format"], response.json()["n_samples"]) == ("ts", 67)
    before = stored(service)

    lines = archive_ts_lines("GunPoint", "TRAIN")
    data_line = next(i for i, line in enumerate(lines) if line.strip().lower() == "@data") + 3
    lines[data_line - 1] = lines[data_line - 1].replace(",", ",?,", 1)
    response = client.post("/datasets", files={"file": ("GunPoint_TRAIN.ts", "\n".join(lines).encode())})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert f"GunPoint_TRAIN.ts, line {data_line}: missing value '?' in dimension 1, position 2" in detail
    assert stored(service) == before
