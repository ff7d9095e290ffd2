"""`rntk`: the command line."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import numpy as np

from rntk_core import __version__
from rntk_core.inputs import DIRECTIONS, KINDS, POOLS

from .solvers import SOLVERS


def _load_array(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """X (and optional lengths) from a .npy file or an .npz file holding X."""
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False), None
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            if "X" not in archive:
                raise ValueError(f"{path} has no array named 'X'")
            lengths = archive["lengths"] if "lengths" in archive else None
            return archive["X"], lengths
    raise ValueError(f"{path}: expected a .npy or .npz file")


def _gram(args: argparse.Namespace) -> int:
    from rntk_core.api import gram

    x, lengths = _load_array(Path(args.x))
    y, y_lengths = _load_array(Path(args.y)) if args.y else (None, None)
    kernel = gram(
        x, y, kind=args.kind, pool=args.pool, layers=args.layers, direction=args.direction,
        sigma_w=args.sigma_w, sigma_u=args.sigma_u, sigma_b=args.sigma_b,
        sigma_v=args.sigma_v, lengths=lengths, y_lengths=y_lengths, dtype=args.dtype,
    )
    np.save(args.out, kernel)
    print(f"wrote {args.out}: {kernel.shape[0]} x {kernel.shape[1]} {kernel.dtype}")
    return 0


def _config(path: str | None, solver: str | None = None):
    from .config import EvaluationConfig, load_config

    config = load_config(path) if path else EvaluationConfig()
    if solver is not None:  # --solver overrides the config file's field
        config = config.model_copy(update={"solver": solver})
    return config


def _evaluate(args: argparse.Namespace) -> int:
    from .evaluate import evaluate_path

    config = _config(args.config, args.solver)
    command = " ".join(shlex.quote(part) for part in ["rntk", *sys.argv[1:]])
    report = evaluate_path(args.data, config, out_dir=args.out, progress=not args.quiet,
                           n_jobs=args.jobs, dtype=args.dtype, provenance={"command": command},
                           **_placement(args))
    for family, outcome in report["families"].items():
        print(f"{family:>12}: test {100 * outcome['test_accuracy']:6.2f}%  "
              f"validation {100 * outcome['validation_accuracy']:6.2f}%  "
              f"({len(outcome['chosen'])} chosen)")
    failed = report.get("non_converged") or []  # left out of the JSON when empty
    if failed:
        print(f"rntk evaluate: warning: {len(failed)} SVM fit(s) stopped before converging; "
              "see non_converged in report.json", file=sys.stderr)
    print(f"wrote {Path(args.out) / 'report.json'} ({report['timings']['total']:.1f} s)")
    return 0


def _bench_uci(args: argparse.Namespace) -> int:
    from .uci_bench import format_table, run_bench

    config = _config(args.config, args.solver)
    results = run_bench(args.root, args.out, config, names=args.datasets, families=args.families,
                        n_jobs=args.jobs, progress=not args.quiet, dtype=args.dtype, resume=args.resume,
                        **_placement(args))
    for name, message in results["errors"].items():
        print(f"rntk bench-uci: skipped {name}: {message}", file=sys.stderr)
    if results["summary"]:
        print(format_table(results["summary"], len(results["datasets"])))
    print(f"wrote {args.out}")
    return 0 if results["datasets"] else 2


def _placement(args: argparse.Namespace) -> dict:
    grid_memory = args.grid_memory_mb << 20 if args.grid_memory_mb else None
    return {"placement": args.placement, "grid_memory": grid_memory}


def _add_run_options(command: argparse.ArgumentParser) -> None:
    """Options shared by the commands that run the evaluation protocol."""
    command.add_argument("--config", help="evaluation config JSON (default: the paper's protocol)")
    command.add_argument("--jobs", type=_positive_int, help="SVM threads (default: every core)")
    command.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                         help="precision of the recurrent kernels")
    command.add_argument("--quiet", action="store_true", help="no progress bars")
    command.add_argument("--solver", choices=SOLVERS,
                         help="C-SVM solver (default: the config's, auto)")
    command.add_argument("--placement", choices=("auto", "host", "device"), default="auto",
                         help="where the kernels live (auto: the device on a GPU when the grids fit)")
    command.add_argument("--grid-memory-mb", type=_positive_int,
                         help="device memory the recurrent grids may hold at once; larger grids go in "
                              "chunks of sigma pairs (default: half the free device memory)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rntk", description=__doc__)
    parser.add_argument("--version", action="version", version=f"rntk {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    gram_cmd = commands.add_parser("gram", help="compute one Gram matrix K(X, Y) to a .npy file")
    gram_cmd.add_argument("x", help="X as .npy (N, T[, m]) or .npz with X and optional lengths")
    gram_cmd.add_argument("--y", help="Y, likewise; K(X, X) when omitted")
    gram_cmd.add_argument("--out", required=True, help="output .npy path")
    gram_cmd.add_argument("--kind", choices=KINDS, default="ntk")
    gram_cmd.add_argument("--pool", choices=POOLS, default="last")
    gram_cmd.add_argument("--direction", choices=DIRECTIONS, default="fwd")
    gram_cmd.add_argument("--layers", type=int, default=1)
    gram_cmd.add_argument("--sigma-w", type=float, default=2**0.5)
    gram_cmd.add_argument("--sigma-u", type=float, default=1.0)
    gram_cmd.add_argument("--sigma-b", type=float, default=0.0)
    gram_cmd.add_argument("--sigma-v", type=float, default=1.0)
    gram_cmd.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    gram_cmd.set_defaults(handler=_gram)

    evaluate_cmd = commands.add_parser(
        "evaluate", help="run the UCI protocol on one dataset: report.json/.csv/.html and gram/*.npy")
    evaluate_cmd.add_argument(
        "data", help="a UCI folder or .zip, a .csv, a .npz, a .ts, or a folder or .zip with "
        "NAME_TRAIN.ts + NAME_TEST.ts")
    evaluate_cmd.add_argument("--out", required=True, help="output folder")
    _add_run_options(evaluate_cmd)
    evaluate_cmd.set_defaults(handler=_evaluate)

    bench_cmd = commands.add_parser(
        "bench-uci", help="the protocol over UCI folders, with the paper's Table I metrics")
    bench_cmd.add_argument(
        "root", help="folder of dataset folders, UCI or .ts TRAIN/TEST pairs (with datasets.txt)")
    bench_cmd.add_argument("--datasets", nargs="+", help="dataset names (default: datasets.txt)")
    bench_cmd.add_argument("--families", nargs="+",
                           help="families, e.g. RNN RNN-P RNN-P-CK RBF (default: the config's)")
    bench_cmd.add_argument("--out", required=True, help="results JSON path")
    bench_cmd.add_argument("--resume", action="store_true",
                           help="keep the datasets an earlier run wrote to --out and run only the rest")
    _add_run_options(bench_cmd)
    bench_cmd.set_defaults(handler=_bench_uci)
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (ValueError, OSError) as exc:
        message = " ".join(str(exc).split())  # one line, whatever the exception held
        print(f"rntk {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
