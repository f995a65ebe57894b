"""Writes the synthetic Demo Shapes segmentation dataset used by ``configs/demo/``.

Example:
    python tools/make_demo_data.py data/demo_shapes
"""
from __future__ import annotations

import argparse
import sys

from vit_backbones.datasets.demo_shapes import generate_demo_shapes, is_complete


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parses the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('root', help='output folder, e.g. data/demo_shapes')
    parser.add_argument('--num-train', type=int, default=400, help='training images')
    parser.add_argument('--num-val', type=int, default=50, help='validation images')
    parser.add_argument('--size', type=int, default=128, help='image side in pixels')
    parser.add_argument('--seed', type=int, default=0, help='generator seed')
    parser.add_argument('--force', action='store_true', help='replace an existing dataset at ROOT')
    parser.add_argument('--exist-ok', action='store_true', help='succeed without writing if ROOT is already complete')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Generates the dataset; returns the exit code (1 if ROOT exists and neither --force nor --exist-ok allows it)."""
    args = parse_args(argv)
    existed = is_complete(args.root) and not args.force
    try:
        info = generate_demo_shapes(args.root, num_train=args.num_train, num_val=args.num_val, size=args.size,
                                    seed=args.seed, force=args.force, exist_ok=args.exist_ok)
    except FileExistsError as err:
        print(f'make_demo_data: {err}', file=sys.stderr)
        return 1
    verb = 'found' if existed else 'wrote'
    print(f"{verb} {info['num_train']} train + {info['num_val']} val images ({info['size']}x{info['size']}, "
          f"classes: {', '.join(info['classes'])}) in {args.root}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
