"""`make bench-scale`: the landmark (Nystrom) path against the dense one, and its cost in N.

Eight parts, each printing one JSON line per run (and most a summary):

- ``accuracy``: dense vs landmark test accuracy per family on UCI sets with N >= 2000 and the
  archive problems in tests/data/ts, with the Nystrom error of the chosen kernels; the summary
  gives each family's mean and worst gap (dense - landmarks, points).
- ``methods``: the Nystrom error of stratified vs k-means++ landmarks for the same kernels.
- ``schemes``: test accuracy of a C-SVM on the Nystrom features of one kernel from five
  landmark schemes (the service's two, distinct rows only, and two chosen on the kernel itself:
  randomly pivoted and greedy pivoted Cholesky), against the dense C-SVM, on every fold.
- ``duplicates``: the same kernel's dense and landmark (stratified) test accuracy on the test
  rows with an exact copy among their fold's training rows, and on the rest.
- ``solvers``: the landmark path's linear C-SVMs under ``solver="jax"`` (interior point only)
  and ``"auto"`` (libsvm on Phi Phi' first), in one process: seconds per stage, the ratio,
  and whether the chosen models' test accuracies agree.
- ``fits``: the linear C-SVMs of generated sequences' landmark features past LINEAR_KERNEL_ROWS
  training rows, ``solver="jax"`` (the interior point on working sets; ``--baseline
  unshrunk``: libsvm's sets never cut to their support vectors) against ``"auto"`` (libsvm
  on the working sets), in one process: seconds, ratio, and agreement.
- ``blocks``: one K(X, Z) block of generated sequences for a forward kernel (RNN's), the
  engine's one sweep against both sweeps (what every block ran before its plan named its
  directions), in one process: median seconds and the ratio.
- ``scale``: generated sequences (benchmarks.sequences) at growing N, one sigma pair, in a
  fresh process each (``rntk evaluate``'s code path), timing each stage and the peak RSS;
  the summary gives the cost per sample relative to the smallest N (1.0 = linear).

    python -m benchmarks.scale_benchmark accuracy --landmarks 1024
    python -m benchmarks.scale_benchmark schemes --datasets wine-quality-white --landmarks 512 1024
    python -m benchmarks.scale_benchmark duplicates --datasets wine-quality-white --landmarks 1024 2048
    python -m benchmarks.scale_benchmark solvers --datasets cardiotocography-3clases waveform
    python -m benchmarks.scale_benchmark fits --n 25000 100000
    python -m benchmarks.scale_benchmark blocks --rows 4096 --landmarks 512 --steps 32
    python -m benchmarks.scale_benchmark scale --n 25000 50000 100000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
UCI = Path(os.environ.get("RNTK_UCI_DATA", REPO.parent / "shared" / "data" / "uci"))  # elsewhere on a GPU host
ARCHIVES = REPO / "tests" / "data" / "ts"
LARGE_UCI = ("abalone", "waveform", "wine-quality-white")
#: The goal's sets: every UCI set with N >= 2,000, and the archive problems of tests/data/ts.
GOAL_SETS = ("cardiotocography-10clases", "cardiotocography-3clases", "titanic", "statlog-image", "ozone",
             "molec-biol-splice", "chess-krvkp", "abalone", "bank", "spambase", "wine-quality-white", "waveform",
             "waveform-noise", *sorted(path.stem for path in ARCHIVES.glob("*.zip")))
GRID = {"families": ["RNN", "BI-RNN-AVG", "RBF"], "sigma_u": [0.5, 1.0], "sigma_b": [0.1], "layers": [1, 2],
        "C": [1.0, 100.0, 1e4], "rbf_gamma": [0.5, 8.0, 128.0]}


def _dataset(name: str):
    from rntk_core.evaluation.datasets import load_dataset

    path = UCI / name if (UCI / name).exists() else ARCHIVES / f"{name}.zip"
    return load_dataset(path)


def accuracy(names: list[str], landmarks: int, selection: int) -> list[dict]:
    from rntk_core.evaluation.config import parse_config
    from rntk_core.evaluation.evaluate import evaluate_dataset

    rows = []
    for name in names:
        dataset = _dataset(name)
        results = {}
        for method, extra in (("dense", {}), ("landmarks", {"landmarks": landmarks, "selection_samples": selection})):
            started = time.perf_counter()
            report = evaluate_dataset(dataset, parse_config({**GRID, **extra}))
            results[method] = (report, time.perf_counter() - started)
        dense, landmark = results["dense"][0], results["landmarks"][0]
        row = {"dataset": name, "n": dataset.n_samples, "M": landmarks,
               "seconds": {k: round(v[1], 1) for k, v in results.items()},
               "nystrom_error_max": landmark["scale"]["nystrom_error_max"],
               "families": {f: {"dense": round(dense["families"][f]["test_accuracy"], 4),
                                "landmarks": round(landmark["families"][f]["test_accuracy"], 4)}
                            for f in dense["families"]}}
        print(json.dumps(row), flush=True)
        rows.append(row)
    gaps: dict[str, list[float]] = {}
    for row in rows:
        for family, v in row["families"].items():
            gaps.setdefault(family, []).append(100 * (v["dense"] - v["landmarks"]))
    print(json.dumps({"summary": "accuracy", "M": landmarks, "sets": len(rows),
                      "mean_gap_points": {f: round(float(np.mean(g)), 2) for f, g in gaps.items()},
                      "worst_gap_points": {f: round(float(np.max(g)), 2) for f, g in gaps.items()}}))
    return rows


def methods(names: list[str], landmarks: int) -> None:
    from rntk_core import gram
    from rntk_core.evaluation.protocol import normalise
    from rntk_core.evaluation.scale.landmarks import choose_landmarks, nystrom_map, relative_error

    for name in names:
        dataset = _dataset(name)
        X, _ = normalise(dataset.X)
        rng = np.random.default_rng(0)
        rows = np.sort(rng.choice(dataset.n_samples, min(1024, dataset.n_samples), replace=False))
        errors = {}
        for method in ("stratified", "kmeans++"):
            Z = choose_landmarks(dataset.y, landmarks, method=method, X=X, seed=0)
            k_xz = gram(X[rows], X[Z], kind="ntk", layers=2, sigma_u=0.5, sigma_b=0.1, dtype="float64")
            k_zz = gram(X[Z], kind="ntk", layers=2, sigma_u=0.5, sigma_b=0.1, dtype="float64")
            exact = gram(X[rows], kind="ntk", layers=2, sigma_u=0.5, sigma_b=0.1, dtype="float64")
            phi = nystrom_map(k_zz).features(k_xz)
            errors[method] = round(relative_error(exact, phi, phi), 6)
        print(json.dumps({"dataset": name, "M": landmarks, "nystrom_error": errors}), flush=True)


def _pivoted_cholesky(K: np.ndarray, count: int, rng: np.random.Generator, *, randomly: bool) -> np.ndarray:
    """Pivots of a partial Cholesky factorisation of K: each next one drawn in proportion to the
    residual diagonal (randomly pivoted, Chen et al. 2022) or the largest of it (greedy)."""
    residual, factor, pivots = np.diag(K).astype(np.float64).copy(), np.zeros((K.shape[0], count)), []
    for column in range(count):
        weights = np.maximum(residual, 0.0)
        pick = int(rng.choice(weights.size, p=weights / weights.sum())) if randomly else int(np.argmax(weights))
        pivots.append(pick)
        g = K[:, pick] - factor[:, :column] @ factor[pick, :column]
        factor[:, column] = g / np.sqrt(max(g[pick], 1e-300))
        residual -= factor[:, column] ** 2
        residual[pivots] = 0.0
    return np.sort(np.asarray(pivots))


def _correct(K: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray, C: float,
             landmarks: np.ndarray | None = None) -> np.ndarray:
    """Per test row, whether libsvm on the exact K (``landmarks`` None) or on the Nystrom
    features' Phi Phi' predicts its label."""
    from sklearn.svm import SVC

    from rntk_core.evaluation.scale.landmarks import nystrom_map

    if landmarks is None:
        fit_k, test_k = K[np.ix_(train, train)], K[np.ix_(test, train)]
    else:
        projection = nystrom_map(K[np.ix_(landmarks, landmarks)])
        phi_train = projection.features(K[np.ix_(train, landmarks)])
        fit_k, test_k = phi_train @ phi_train.T, projection.features(K[np.ix_(test, landmarks)]) @ phi_train.T
    return SVC(kernel="precomputed", C=C).fit(fit_k, y[train]).predict(test_k) == y[test]


def _one_kernel(name: str):
    """The dataset, its normalised rows flattened, and BI-RNN-AVG's NTK (L = 1) in float64."""
    from rntk_core import gram
    from rntk_core.evaluation.protocol import normalise, resolve_splits

    dataset = _dataset(name)
    X, _ = normalise(dataset.X)
    splits, _ = resolve_splits(dataset, "auto", 0)
    K = gram(X, kind="ntk", pool="avg", layers=1, direction="bi", sigma_u=1.0, sigma_b=0.1, dtype="float64")
    return dataset, X, X.reshape(len(X), -1), splits, K


def duplicates(names: list[str], sizes: list[int], C: float = 100.0) -> None:
    """Where the landmark gap comes from: test rows with an exact copy (same features) among
    their fold's training rows against the rest, dense against stratified landmarks, on the
    kernel of ``schemes``; with how often the copy's own label is right."""
    from rntk_core.evaluation.scale.landmarks import choose_landmarks

    for name in names:
        dataset, _, flat, splits, K = _one_kernel(name)
        y = dataset.y
        for M in sizes:
            counts: dict[str, Counter] = {"copy in training": Counter(), "no copy": Counter()}
            for train, test in splits.folds:
                train, test = np.asarray(train), np.asarray(test)
                label_of = {row.tobytes(): label for row, label in zip(flat[train], y[train])}
                copied = np.array([flat[i].tobytes() in label_of for i in test])
                copy_right = np.array([label_of.get(flat[i].tobytes(), -1) == y[i] for i in test])
                dense = _correct(K, y, train, test, C)
                landmarks = _correct(K, y, train, test, C, train[choose_landmarks(y[train], M)])
                for part, rows in (("copy in training", copied), ("no copy", ~copied)):
                    counts[part].update({"rows": int(rows.sum()), "dense": int(dense[rows].sum()),
                                         "landmarks": int(landmarks[rows].sum()),
                                         "copy's label": int(copy_right[rows].sum())})
            total = sum(c["rows"] for c in counts.values())
            for part, c in counts.items():
                rows = max(c["rows"], 1)
                print(json.dumps({
                    "dataset": name, "M": M, "C": C, "test rows": part, "rows": c["rows"],
                    "accuracy": {key: round(100 * c[key] / rows, 2) for key in ("dense", "landmarks", "copy's label")},
                    "gap_points_of_all_rows": round(100 * (c["dense"] - c["landmarks"]) / total, 2)}), flush=True)


def schemes(names: list[str], sizes: list[int], C: float = 100.0) -> None:
    """Landmark schemes on one kernel (BI-RNN-AVG's NTK, L = 1), scored by the test accuracy of
    libsvm on the features' Phi Phi' against libsvm on the exact K, fold by fold."""
    from rntk_core.evaluation.scale.landmarks import choose_landmarks

    def score(K, y, train, test, landmarks=None):
        return float(np.mean(_correct(K, y, train, test, C, landmarks)))

    for name in names:
        dataset, X, flat, splits, K = _one_kernel(name)
        y = dataset.y
        for M in sizes:
            scores: dict[str, list[float]] = {}
            for train, test in splits.folds:
                train, test = np.asarray(train), np.asarray(test)
                rng = np.random.default_rng(0)
                distinct = np.sort(np.unique(flat[train], axis=0, return_index=True)[1])
                train_kernel = K[np.ix_(train, train)]
                chosen = {
                    "dense": None,
                    "stratified": train[choose_landmarks(y[train], M)],
                    "kmeans++": train[choose_landmarks(y[train], M, method="kmeans++", X=X[train])],
                    "distinct rows": train[distinct[choose_landmarks(y[train][distinct], M)]],
                    "randomly pivoted Cholesky": train[_pivoted_cholesky(train_kernel, M, rng, randomly=True)],
                    "greedy pivoted Cholesky": train[_pivoted_cholesky(train_kernel, M, rng, randomly=False)],
                }
                for scheme, landmarks in chosen.items():
                    scores.setdefault(scheme, []).append(score(K, y, train, test, landmarks))
            print(json.dumps({"dataset": name, "n": dataset.n_samples, "M": M, "C": C, "folds": len(splits.folds),
                              "test_accuracy": {k: round(float(np.mean(v)), 4) for k, v in scores.items()}}),
                  flush=True)


def solvers(names: list[str], landmarks: int, selection: int, compared: tuple[str, str] = ("jax", "auto")) -> None:
    from rntk_core.evaluation.config import parse_config
    from rntk_core.evaluation.evaluate import evaluate_dataset

    ratios = []
    for name in names:
        dataset = _dataset(name)
        runs = {}
        for solver in compared:  # the baseline first, in the same process
            config = parse_config({**GRID, "landmarks": landmarks, "selection_samples": selection, "solver": solver})
            started = time.perf_counter()
            report = evaluate_dataset(dataset, config)
            runs[solver] = (time.perf_counter() - started, report)
        first, second = compared
        (base, slow), (seconds, fast) = runs[first], runs[second]
        ratios.append(base / seconds)
        print(json.dumps({
            "dataset": name, "n": dataset.n_samples, "M": landmarks,
            "seconds": {first: round(base, 1), second: round(seconds, 1)}, "speedup": round(base / seconds, 1),
            "stages": {solver: {k: round(v, 1) for k, v in report["timings"].items()}
                       for solver, (_, report) in runs.items()},
            "fits": {solver: report["solver"]["fits"] for solver, (_, report) in runs.items()},
            "test_accuracy": {f: {first: round(slow["families"][f]["test_accuracy"], 4),
                                  second: round(fast["families"][f]["test_accuracy"], 4)} for f in fast["families"]}}),
              flush=True)
    print(json.dumps({"summary": "solvers", "median_speedup": round(float(np.median(ratios)), 1)}))


def fits(sizes: list[int], landmarks: int, Cs: tuple[float, ...] = (1.0, 100.0), baseline: str = "jax") -> None:
    """``auto`` against a baseline on the same features: an 80/20 split of ``n`` generated
    sequences (T = 32, 4 classes), RNN NTK L = 1 against ``landmarks`` stratified landmarks.
    ``baseline``: ``"jax"`` (the interior point on every set) or ``"unshrunk"`` (``auto``
    with libsvm's sets never cut to their support vectors, as before 2026-12-07)."""
    from rntk_core.evaluation.solvers import linear_svm
    from benchmarks.sequences import make_sequences
    from rntk_core import gram
    from rntk_core.evaluation.protocol import normalise
    from rntk_core.evaluation.scale.landmarks import choose_landmarks, nystrom_map
    from rntk_core.evaluation.solvers.linear_svm import LinearTask, fit_predict_linear

    for n in sizes:
        X, y = make_sequences(n, 32, 4, seed=0)
        X, _ = normalise(X[:, :, None])
        Z = choose_landmarks(y, landmarks, seed=0)
        k_xz = gram(X, X[Z], kind="ntk", layers=1, sigma_u=0.5, sigma_b=0.1, dtype="float32")
        phi = nystrom_map(k_xz[Z]).features(k_xz)
        train, test = np.arange(int(0.8 * n)), np.arange(int(0.8 * n), n)
        seconds, results = {}, {}
        for label in (baseline, "auto"):
            linear_svm.SHRINK_LIBSVM_SETS = label != "unshrunk"
            started = time.perf_counter()
            [results[label]] = fit_predict_linear([LinearTask(phi[train], y[train], phi[test], list(Cs))],
                                                  solver="auto" if label == "unshrunk" else label)
            seconds[label] = time.perf_counter() - started
        linear_svm.SHRINK_LIBSVM_SETS = True
        jax_fits, auto_fits = results[baseline], results["auto"]
        print(json.dumps({
            "n_train": int(train.size), "M": landmarks, "Cs": list(Cs), "baseline": baseline,
            "seconds": {k: round(v, 1) for k, v in seconds.items()},
            "speedup": round(seconds[baseline] / seconds["auto"], 1),
            "solvers": {str(C): auto_fits[C].solver for C in Cs},
            "same_predictions": all(np.array_equal(jax_fits[C].predictions, auto_fits[C].predictions) for C in Cs),
            "objective_max_rel_diff": max((float(np.max(np.abs(np.subtract(jax_fits[C].objectives,
                                                                           auto_fits[C].objectives))
                                                       / np.abs(jax_fits[C].objectives)))
                                           for C in Cs if auto_fits[C].objectives), default=None),  # libsvm whole: none
            "test_accuracy": {str(C): round(float(np.mean(auto_fits[C].predictions == y[test])), 5) for C in Cs}}),
              flush=True)


CHILD = r"""
import json, resource, sys, time, tempfile
start = time.perf_counter()
from benchmarks.sequences import make_sequences
from rntk_core.evaluation.config import parse_config
from rntk_core.evaluation.datasets import Dataset, Splits
from rntk_core.evaluation.evaluate import evaluate_dataset
import numpy as np
n, steps, m = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
X, y = make_sequences(n, steps, 4, seed=0)
test = np.zeros(n, bool); test[np.random.default_rng(1).permutation(n)[: n // 5]] = True
train, held = np.flatnonzero(~test), np.flatnonzero(test)
splits = Splits(train=train, validation=held, folds=[(train, held)], selection="cv")
dataset = Dataset(X[:, :, None], y, np.arange(4), "sequences", "npz", splits=splits)
del X
config = parse_config({"families": ["RNN"], "kinds": ["ntk"], "sigma_u": [0.5], "sigma_b": [0.1], "layers": [1],
                       "C": [1.0], "landmarks": m, "selection_samples": 2048, "cv_folds": 2})
built = time.perf_counter() - start
with tempfile.TemporaryDirectory() as out:
    report = evaluate_dataset(dataset, config, out_dir=out, grams="none")
print(json.dumps({"n": n, "steps": steps, "M": m, "seconds": round(time.perf_counter() - start, 1),
                  "data_seconds": round(built, 1), "timings": {k: round(v, 1) for k, v in report["timings"].items()},
                  "test_accuracy": report["families"]["RNN"]["test_accuracy"],
                  "nystrom_error_max": report["scale"]["nystrom_error_max"],
                  "blocks": report["scale"]["blocks"]["total"],
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}))
"""


def scale(sizes: list[int], steps: int, landmarks: int) -> None:
    runs = []
    for n in sizes:
        run = subprocess.run([sys.executable, "-c", CHILD, str(n), str(steps), str(landmarks)], cwd=REPO,
                             capture_output=True, text=True)
        if run.returncode != 0:
            print(json.dumps({"n": n, "failed": run.stderr[-2000:]}), flush=True)
            continue
        result = json.loads(run.stdout.strip().splitlines()[-1])
        print(json.dumps(result), flush=True)
        runs.append(result)
    if len(runs) > 1:
        base = runs[0]
        per_sample = {str(r["n"]): round((r["seconds"] / r["n"]) / (base["seconds"] / base["n"]), 2) for r in runs}
        print(json.dumps({"summary": "scale", "cost_per_sample_vs_smallest": per_sample}))


def blocks(rows: int, landmarks: int, steps: int, repeats: int) -> None:
    import statistics

    from benchmarks.sequences import make_sequences
    from rntk_core import gram_grid

    X = make_sequences(rows + landmarks, steps, 4)[0][:, :, None]
    X /= np.linalg.norm(X.reshape(len(X), -1), axis=1)[:, None, None]
    block, Z = X[:rows], X[rows:]
    import jax

    key = ("ntk", "last", 1, "fwd", 0.5, 0.1)
    output = "host" if jax.default_backend() == "cpu" else "device"  # as the blocks do (kernel_rows)
    seconds, values = {}, {}
    for label, directions in (("both sweeps", ("fwd", "rev")), ("one sweep", ("fwd",))):
        def run():
            return np.asarray(gram_grid(block, Z, layers=1, pairs=[(0.5, 0.1)], directions=directions,
                                        output=output)[key])

        values[label] = run()  # compiles this shape
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            run()
            times.append(time.perf_counter() - started)
        seconds[label] = statistics.median(times)
    print(json.dumps({"summary": "blocks", "rows": rows, "landmarks": landmarks, "steps": steps, "repeats": repeats,
                      "output": output,
                      "seconds": {k: round(v, 4) for k, v in seconds.items()},
                      "one_over_both": round(seconds["one sweep"] / seconds["both sweeps"], 3),
                      "max_abs_difference": float(np.max(np.abs(values["one sweep"] - values["both sweeps"])))}))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="part", required=True)
    one = sub.add_parser("accuracy")
    one.add_argument("--datasets", nargs="+", default=list(GOAL_SETS))
    one.add_argument("--landmarks", type=int, default=1024)
    one.add_argument("--selection-samples", type=int, default=4096)
    two = sub.add_parser("methods")
    two.add_argument("--datasets", nargs="+", default=list(LARGE_UCI))
    two.add_argument("--landmarks", type=int, default=128)
    schemes_part = sub.add_parser("schemes")
    schemes_part.add_argument("--datasets", nargs="+", default=["wine-quality-white"])
    schemes_part.add_argument("--landmarks", type=int, nargs="+", default=[512, 1024])
    copies = sub.add_parser("duplicates")
    copies.add_argument("--datasets", nargs="+", default=["wine-quality-white", "molec-biol-splice"])
    copies.add_argument("--landmarks", type=int, nargs="+", default=[1024, 2048])
    solver = sub.add_parser("solvers")
    solver.add_argument("--datasets", nargs="+", default=["cardiotocography-3clases", "waveform"])
    solver.add_argument("--landmarks", type=int, default=512)
    solver.add_argument("--selection-samples", type=int, default=4096)
    solver.add_argument("--solvers", nargs=2, default=["jax", "auto"], metavar=("BASELINE", "OTHER"),
                        help="the two config solvers compared (on a GPU: jax libsvm)")
    fit_part = sub.add_parser("fits")
    fit_part.add_argument("--n", type=int, nargs="+", default=[25_000, 100_000])
    fit_part.add_argument("--landmarks", type=int, default=512)
    fit_part.add_argument("--baseline", choices=["jax", "unshrunk"], default="jax")
    block_part = sub.add_parser("blocks")
    block_part.add_argument("--rows", type=int, default=4096)
    block_part.add_argument("--landmarks", type=int, default=512)
    block_part.add_argument("--steps", type=int, default=32)
    block_part.add_argument("--repeats", type=int, default=5)
    three = sub.add_parser("scale")
    three.add_argument("--n", type=int, nargs="+", default=[25_000, 50_000, 100_000])
    three.add_argument("--steps", type=int, default=32)
    three.add_argument("--landmarks", type=int, default=512)
    args = parser.parse_args(argv)
    if args.part == "accuracy":
        accuracy(args.datasets, args.landmarks, args.selection_samples)
    elif args.part == "solvers":
        solvers(args.datasets, args.landmarks, args.selection_samples, tuple(args.solvers))
    elif args.part == "schemes":
        schemes(args.datasets, args.landmarks)
    elif args.part == "duplicates":
        duplicates(args.datasets, args.landmarks)
    elif args.part == "fits":
        fits(args.n, args.landmarks, baseline=args.baseline)
    elif args.part == "methods":
        methods(args.datasets, args.landmarks)
    elif args.part == "blocks":
        blocks(args.rows, args.landmarks, args.steps, args.repeats)
    else:
        scale(args.n, args.steps, args.landmarks)


if __name__ == "__main__":
    main()
