"""Convert a backbone checkpoint between layouts (timm / official / mmdet-mmseg / Hugging Face -> ours, and back).

The input layout is recognised from its keys; a file that is in no layout of the family named (another family's
checkpoint, an empty or unrelated file) is refused with a non-zero exit and nothing is written.

Example:
    python tools/convert_checkpoint.py swin swin_tiny_patch4_window7_224.pth swin_t_ours.pth
    python tools/convert_checkpoint.py swin work_dirs/swin_t.pth swin_t_timm.pth --to timm
    python tools/convert_checkpoint.py cvt pytorch_model.bin cvt13_ours.pth         # Hugging Face microsoft/cvt-13
    python tools/convert_checkpoint.py cvt cvt13_ours.pth cvt13_official.pth --to official
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout, installed or not

from vit_backbones.converters import FAMILIES, OURS  # noqa: E402
from vit_backbones.engine.checkpoint_convert import convert_checkpoint_file  # noqa: E402


def main() -> int:
    targets = sorted({OURS, 'ours', *(t for fam in FAMILIES.values() for t in fam.exporters())})
    layouts = '\n'.join(f'  {name}: ' + ', '.join(layout.name for layout in fam.layouts)
                        for name, fam in sorted(FAMILIES.items()))
    parser = argparse.ArgumentParser(description=__doc__, epilog=f'layouts read per family:\n{layouts}',
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('family', choices=sorted(FAMILIES), help='backbone family')
    parser.add_argument('src', help='input checkpoint (layout detected from its keys)')
    parser.add_argument('dst', help='output file (written atomically; its folder must exist)')
    parser.add_argument('--to', default='ours', choices=targets, help='target layout (default: ours)')
    parser.add_argument('--force', action='store_true', help='replace an existing output file')
    args = parser.parse_args()
    target = OURS if args.to == 'ours' else args.to
    try:
        result = convert_checkpoint_file(args.src, args.dst, args.family, target, args.force)
    except (OSError, ValueError, RuntimeError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    print(f'read a {args.family} checkpoint in the {result.source} layout, wrote {len(result.state_dict)} tensors '
          f'to {args.dst} ({args.to} layout)')
    for key, why in sorted(result.dropped.items()):
        print(f'  dropped {key}: {why}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
