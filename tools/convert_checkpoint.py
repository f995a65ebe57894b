"""Convert a backbone checkpoint between layouts (timm / official -> ours, ours -> timm).

Example:
    python tools/convert_checkpoint.py swin swin_tiny_patch4_window7_224.pth swin_t_ours.pth
    python tools/convert_checkpoint.py swin work_dirs/swin_t.pth swin_t_timm.pth --to timm
"""
import argparse
import sys

from vit_backbones.converters.files import CONVERTERS, convert_checkpoint_file


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('family', choices=sorted(CONVERTERS), help='backbone family')
    parser.add_argument('src', help='input checkpoint (layout detected from its keys)')
    parser.add_argument('dst', help='output path (written atomically)')
    parser.add_argument('--to', default='ours', choices=['ours', 'timm'], help='target layout')
    parser.add_argument('--force', action='store_true', help='replace an existing output file')
    args = parser.parse_args()
    try:
        result = convert_checkpoint_file(args.src, args.dst, args.family, args.to, args.force)
    except (OSError, ValueError, RuntimeError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    print(f'read a {result.source} {args.family} checkpoint, wrote {len(result.state_dict)} tensors to '
          f'{args.dst} ({args.to} layout)')
    for key, why in sorted(result.dropped.items()):
        print(f'  dropped {key}: {why}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
