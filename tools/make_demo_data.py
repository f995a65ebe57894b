"""Writes the synthetic Demo Shapes datasets used by ``configs/demo/``: segmentation maps, COCO instances or classes.

Examples:
    python tools/make_demo_data.py data/demo_shapes               # mmseg layout (configs/demo/swin_t_upernet_demo.py)
    python tools/make_demo_data.py data/demo_coco --kind det      # COCO instances (configs/demo/mask-rcnn_*_demo.py)
    python tools/make_demo_data.py data/demo_cls --kind cls       # one shape per image (configs/demo/swin_t_cls_demo)
"""
from __future__ import annotations

import argparse
import os.path as osp
import sys

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO_ROOT not in sys.path:  # run from a checkout, installed or not
    sys.path.insert(0, REPO_ROOT)
from vit_backbones.datasets import demo_cls, demo_coco, demo_shapes  # noqa: E402

GENERATORS = {'seg': (demo_shapes.generate_demo_shapes, demo_shapes.is_complete),
              'det': (demo_coco.generate_demo_coco, demo_coco.is_complete),
              'cls': (demo_cls.generate_demo_cls, demo_cls.is_complete)}
# Defaults of --num-train, --num-val and --size per kind: what the demo configs of that kind read.
DEFAULTS = {'seg': (400, 50, 128), 'det': (400, 50, 128), 'cls': (2000, 200, 64)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parses the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('root', help='output folder, e.g. data/demo_shapes (seg), data/demo_coco (det), data/demo_cls')
    parser.add_argument('--kind', choices=sorted(GENERATORS), default='seg',
                        help='seg: label maps for mmseg (default); det: COCO instance annotations for mmdet; '
                        'cls: one shape per image in class folders for mmpretrain')
    parser.add_argument('--num-train', type=int, help='training images (default: 400; cls: 2000)')
    parser.add_argument('--num-val', type=int, help='validation images (default: 50; cls: 200)')
    parser.add_argument('--size', type=int, help='image side in pixels (default: 128; cls: 64)')
    parser.add_argument('--seed', type=int, default=0, help='generator seed')
    parser.add_argument('--force', action='store_true', help='replace an existing dataset at ROOT')
    parser.add_argument('--exist-ok', action='store_true', help='succeed without writing if ROOT is already complete')
    args = parser.parse_args(argv)
    for key, default in zip(('num_train', 'num_val', 'size'), DEFAULTS[args.kind]):
        if getattr(args, key) is None:
            setattr(args, key, default)
    return args


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
    if 'class_counts' in info:
        extra = f", {'/'.join(map(str, info['class_counts']['train']))} train images per class"
    if 'instance_counts' in info:
        extra = f", {sum(info['instance_counts']['train'])} + {sum(info['instance_counts']['val'])} instances"
    print(f"{verb} {info['num_train']} train + {info['num_val']} val images ({info['size']}x{info['size']}, "
          f"classes: {', '.join(info['classes'])}{extra}) in {args.root}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
