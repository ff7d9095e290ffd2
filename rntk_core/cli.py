"""`rntk`: the command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from . import __version__
from .inputs import DIRECTIONS, KINDS, POOLS


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
    from .api import gram

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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (ValueError, OSError) as exc:
        print(f"rntk {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
