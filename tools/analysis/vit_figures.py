"""The ViT paper's analysis figures for any backbone here: patch-embedding filters, position-embedding similarity,
mean attention distance per head against depth, and attention maps (rollout from the cls token, per-query maps).

Each subcommand writes OUT/<subcommand>.png and the numbers behind it as OUT/<subcommand>.json.

Examples:
    python tools/analysis/vit_figures.py filters --type vit_backbones.VisionTransformer --arch base \\
        --checkpoint vit_base_patch16_224.pth --out work_dirs/figures/vit_b
    python tools/analysis/vit_figures.py attention-distance --config configs/swin_t_upernet.py \\
        --checkpoint work_dirs/swin_t/iter_160000.pth --images data/ade/images/validation --num-images 64
    python tools/analysis/vit_figures.py attention-maps --type DeiT ... --query 112 80
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # run from a checkout

from vit_backbones.analysis import (  # noqa: E402
    SUBCOMMANDS,
    build_backbone,
    load_images,
    run_attention_distance,
    run_attention_maps,
    run_filters,
    run_pos_embed,
)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('command', choices=SUBCOMMANDS, help='which figure')
    model = parser.add_argument_group('model (a config, or a registered type)')
    model.add_argument('--config', help='mmseg / mmdet / mmpretrain config; its model.backbone is built')
    model.add_argument('--type', help='registered backbone type, e.g. vit_backbones.SwinTransformer')
    model.add_argument('--arch', help="the type's arch preset (e.g. 'tiny', 'base')")
    model.add_argument('--checkpoint', help='checkpoint in any layout the load hook reads (ours, timm, official, '
                                            'a trained mmseg / mmdet model); none: random weights')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--images', help='image folder (default: the demo data, else random images)')
    parser.add_argument('--num-images', type=int, default=16, help='images for attention-distance (default 16)')
    parser.add_argument('--size', type=int, nargs='+', default=[224], help='input size: S or H W (default 224)')
    parser.add_argument('--batch-size', type=int, default=4, help='images per forward pass')
    parser.add_argument('--image-index', type=int, default=0, help='which image attention-maps shows')
    parser.add_argument('--query', type=float, nargs=2, metavar=('Y', 'X'),
                        help='query pixel of attention-maps (default: the centre)')
    parser.add_argument('--num-filters', type=int, default=28, help='filters / components shown (default 28)')
    parser.add_argument('--filter-mode', choices=('auto', 'pca', 'raw'), default='auto',
                        help='auto: PCA of patchify stems, the raw filters of conv stems')
    parser.add_argument('--max-layers', type=int, default=8, help='query maps shown (evenly spaced layers)')
    parser.add_argument('--device', default='cpu')
    args = parser.parse_args(argv)
    if (args.config is None) == (args.type is None):
        parser.error('give exactly one of --config or --type')
    if len(args.size) not in (1, 2):
        parser.error('--size takes S or H W')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        model = build_backbone(args.config, args.checkpoint, args.type, args.arch).to(args.device)
        if args.checkpoint is None:
            print('note: no --checkpoint, the figures show random weights', file=sys.stderr)
        size = tuple(args.size) if len(args.size) == 2 else args.size[0]
        if args.command == 'filters':
            numbers = run_filters(model, args.out, args.num_filters, args.filter_mode)
            print(f"{numbers['count']} {numbers['mode']} of {numbers['module']} -> {args.out}/filters.png")
        elif args.command == 'pos-embed':
            numbers = run_pos_embed(model, args.out)
            print(numbers.get('note', f'position embeddings -> {args.out}/pos-embed.png'))
        elif args.command == 'attention-distance':
            images, _, source = load_images(args.images, args.num_images, size)
            print(f'attention distance over {source}')
            numbers = run_attention_distance(model, images.to(args.device), args.out, args.batch_size)
            print(f"\n{len(numbers['layers'])} attention layers -> {args.out}/attention-distance.png")
        else:
            images, pictures, source = load_images(args.images, args.image_index + 1, size)
            if args.image_index >= images.shape[0]:
                raise ValueError(f'--image-index {args.image_index}: only {images.shape[0]} images in {source}')
            i = args.image_index
            numbers = run_attention_maps(model, images[i:i + 1].to(args.device), pictures[i], args.out,
                                         tuple(args.query) if args.query else None, args.max_layers)
            print(f"{len(numbers['query_maps'])} query maps, rollout: {'yes' if numbers['rollout'] else 'no'} "
                  f'-> {args.out}/attention-maps.png')
        for name, why in numbers.get('unplaced', {}).items():
            print(f'  not placed: {name}: {why}', file=sys.stderr)
    except (OSError, ValueError, RuntimeError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
