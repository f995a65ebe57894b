"""Offline checkpoint conversion between files: read any supported layout, write ours or timm's, atomically."""
import io
import os
from pathlib import Path
from typing import Callable, Union

import torch

from ..engine.checkpoint_io import AtomicLocalBackend, load_checkpoint_file
from .common import Converted, backbone_state_dict
from .pvt import convert_pvt_to_ours, pvt_ours_to_timm
from .swin import convert_swin_to_ours, swin_ours_to_timm

# family -> target -> converter from any known layout of that family
CONVERTERS: dict[str, dict[str, Callable[[dict], Converted]]] = {
    'swin': {
        'ours': convert_swin_to_ours,
        'timm': lambda sd: swin_ours_to_timm(convert_swin_to_ours(sd).state_dict),
    },
    'pvt': {
        'ours': convert_pvt_to_ours,
        'timm': lambda sd: pvt_ours_to_timm(convert_pvt_to_ours(sd).state_dict),
    },
}


def convert_checkpoint_file(src: Union[str, Path], dst: Union[str, Path], family: str,
                            target: str = 'ours', force: bool = False) -> Converted:
    """Convert the checkpoint ``src`` of a backbone ``family`` to the ``target`` layout and save it to ``dst``.

    ``src`` may also be a whole mmdet/mmseg model checkpoint: its ``backbone.*`` part is converted. The output is
    a plain state dict written atomically; ``src`` is never overwritten and an existing ``dst``
    only with ``force``.

    Raises:
        ValueError: unknown family/target, or ``dst`` is ``src``.
        FileExistsError: ``dst`` exists and ``force`` is False.
    """
    if family not in CONVERTERS or target not in CONVERTERS[family]:
        known = {f: sorted(t) for f, t in CONVERTERS.items()}
        raise ValueError(f'cannot convert family {family!r} to {target!r}; supported: {known}')
    if os.path.exists(dst) and os.path.samefile(src, dst):
        raise ValueError(f'refusing to overwrite the source checkpoint {src}; choose another output path')
    if os.path.exists(dst) and not force:
        raise FileExistsError(f'{dst} exists; pass force=True (--force) to replace it')
    state_dict = backbone_state_dict(load_checkpoint_file(src, map_location='cpu'))
    result = CONVERTERS[family][target](state_dict)
    buffer = io.BytesIO()
    torch.save(result.state_dict, buffer)
    AtomicLocalBackend().put(buffer.getvalue(), dst)
    return result
