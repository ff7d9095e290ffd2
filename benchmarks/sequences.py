"""A seeded generator of labelled sequences for the scale benchmarks (N up to 10^6).

Class c is a sinusoid of its own frequency with a random phase, amplitude jitter and noise:
every series has mean ~0 and the same spread, so a classifier must read the sequence's
shape in time, not a summary of its values. Written in chunks, so 10^6 series never sit in
memory twice.

    python -m benchmarks.sequences --n 100000 --steps 32 --classes 4 --out build/seq-1e5.zip
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

__all__ = ["make_sequences", "write_archive"]

_CHUNK = 65536


def make_sequences(n: int, steps: int = 32, classes: int = 4, *, seed: int = 0,
                   noise: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
    """(X float32 (n, steps), y int64 (n,)): classes interleaved, deterministic in ``seed``."""
    X = np.empty((n, steps), np.float32)
    y = np.arange(n, dtype=np.int64) % classes
    t = np.linspace(0.0, 1.0, steps, dtype=np.float64)
    frequencies = 1.0 + 0.75 * np.arange(classes)  # cycles over the series
    for start in range(0, n, _CHUNK):
        rng = np.random.default_rng([seed, start])
        stop = min(n, start + _CHUNK)
        labels = y[start:stop]
        phase = rng.uniform(0, 2 * np.pi, (stop - start, 1))
        amplitude = rng.uniform(0.7, 1.3, (stop - start, 1))
        signal = amplitude * np.sin(2 * np.pi * frequencies[labels][:, None] * t[None, :] + phase)
        X[start:stop] = signal + noise * rng.normal(size=signal.shape)
    return X, y


def write_archive(path: Path, n: int, steps: int, classes: int, *, seed: int = 0,
                  test_fraction: float = 0.2) -> Path:
    """A UCR/UEA-style ``.zip`` of ``<name>_TRAIN.ts`` and ``<name>_TEST.ts`` that the service
    and ``rntk evaluate`` read: one predefined train/test split (selection by CV inside TRAIN),
    a random ``test_fraction`` of the series in TEST."""
    import zipfile

    X, y = make_sequences(n, steps, classes, seed=seed)
    test = np.zeros(n, bool)
    test[np.random.default_rng(seed + 1).permutation(n)[: int(round(test_fraction * n))]] = True
    path.parent.mkdir(parents=True, exist_ok=True)
    name = path.stem
    header = (f"@problemName {name}\n@timeStamps false\n@missing false\n@univariate true\n@equalLength true\n"
              f"@seriesLength {steps}\n@classLabel true {' '.join(map(str, range(classes)))}\n@data\n")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for part, rows in (("TRAIN", np.flatnonzero(~test)), ("TEST", np.flatnonzero(test))):
            with archive.open(f"{name}_{part}.ts", "w") as handle:
                handle.write(header.encode())
                for start in range(0, rows.size, _CHUNK):
                    chunk = rows[start:start + _CHUNK]
                    lines = [",".join(f"{v:.6g}" for v in X[i]) + f":{y[i]}" for i in chunk]
                    handle.write(("\n".join(lines) + "\n").encode())
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    print(write_archive(args.out, args.n, args.steps, args.classes, seed=args.seed))


if __name__ == "__main__":
    main()
