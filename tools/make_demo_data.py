"""Writes the synthetic Demo Shapes datasets used by ``configs/demo/``: segmentation maps or COCO instances.

Examples:
    python tools/make_demo_data.py data/demo_shapes               # mmseg layout (configs/demo/swin_t_upernet_demo.py)
    python tools/make_demo_data.py data/demo_coco --kind det      # COCO instances (configs/demo/mask-rcnn_*_demo.py)
"""
from __future__ import annotations

import argparse
import os.path as osp
import sys

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO_ROOT not in sys.path:  # run from a checkout, installed or not
    sys.path.insert(0, REPO_ROOT)
from vit_backbones.datasets import demo_coco, demo_shapes  # noqa: E402

GENERATORS = {'seg': (demo_shapes.generate_demo_shapes, demo_shapes.is_complete),
              'det': (demo_coco.generate_demo_coco, demo_coco.is_complete)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parses the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('root', help='output folder, e.g. data/demo_shapes (seg) or data/demo_coco (det)')
    parser.add_argument('--kind', choices=sorted(GENERATORS), default='seg',
                        help='seg: label maps for mmseg (default); det: COCO instance annotations for mmdet')
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
    generate, is_complete = GENERATORS[args.kind]
    existed = is_complete(args.root) and not args.force
    try:
        info = generate(args.root, num_train=args.num_train, num_val=args.num_val, size=args.size, seed=args.seed,
                        force=args.force, exist_ok=args.exist_ok)
    except FileExistsError as err:
        print(f'make_demo_data: {err}', file=sys.stderr)
        return 1
    verb = 'found' if existed else 'wrote'
    extra = ''
    if 'instance_counts' in info:
        extra = f", {sum(info['instance_counts']['train'])} + {sum(info['instance_counts']['val'])} instances"
    print(f"{verb} {info['num_train']} train + {info['num_val']} val images ({info['size']}x{info['size']}, "
          f"classes: {', '.join(info['classes'])}{extra}) in {args.root}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
