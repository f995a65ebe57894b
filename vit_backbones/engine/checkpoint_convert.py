"""Offline checkpoint conversion between files: read any registered layout, write ours or an exporter's, atomically.

The conversion itself is the registry's (:mod:`vit_backbones.converters.registry`, pure functions); this module
adds the file side: checks on the paths, reading through :func:`load_checkpoint_file` and an all-or-nothing write.
"""
import io
import os
import os.path as osp
from collections import OrderedDict
from pathlib import Path
from typing import Union

import torch

from ..converters import OURS, Converted, backbone_state_dict, export_from_ours, get_family
from ..registry import MODELS
from .checkpoint_io import AtomicLocalBackend, load_checkpoint_file


def _check_output(src: str, dst: str, force: bool) -> None:
    """Refuse outputs that would lose work or land somewhere unintended."""
    if osp.isdir(dst):
        raise IsADirectoryError(f'output {dst} is a directory; give the path of the file to write')
    folder = osp.dirname(osp.abspath(dst))
    if not osp.isdir(folder):
        raise FileNotFoundError(f'the folder of the output {dst} does not exist ({folder}); create it first')
    if osp.exists(dst) and osp.exists(src) and osp.samefile(src, dst):
        raise ValueError(f'refusing to overwrite the source checkpoint {src}; choose another output path')
    if osp.exists(dst) and not force:
        raise FileExistsError(f'{dst} exists; pass force=True (--force) to replace it')


def layout_version(family: str) -> int:
    """The state-dict ``_version`` of our layout for ``family`` (its backbones share one)."""
    return max(MODELS.get(name)._version for name in get_family(family).backbones)


def convert_checkpoint_file(src: Union[str, Path], dst: Union[str, Path], family: str, target: str = OURS,
                            force: bool = False) -> Converted:
    """Convert the checkpoint ``src`` of a backbone ``family`` to the ``target`` layout and save it to ``dst``.

    ``src`` may also be a whole mmdet/mmseg model checkpoint: its ``backbone.*`` part is converted. The output is
    a plain state dict (ours carries its layout version, as ``model.state_dict()`` does) written atomically;
    ``src`` is never overwritten and an existing ``dst`` only with ``force``. Nothing is written on any error.

    Raises:
        ValueError: unknown family/target, or ``dst`` is ``src``.
        UnknownLayoutError: ``src`` is in no layout of ``family`` (the message says what it looks like).
        FileExistsError: ``dst`` exists and ``force`` is False.
        FileNotFoundError: ``src`` or the folder of ``dst`` does not exist.
        IsADirectoryError: ``dst`` is a directory.
    """
    src, dst = os.fspath(src), os.fspath(dst)
    get_family(family)
    _check_output(src, dst, force)
    state_dict = backbone_state_dict(load_checkpoint_file(src, map_location='cpu'))
    result = export_from_ours(state_dict, family, target)
    out = OrderedDict(result.state_dict)
    if target == OURS:
        out._metadata = OrderedDict({'': {'version': layout_version(family)}})  # type: ignore[attr-defined]
    buffer = io.BytesIO()
    torch.save(out, buffer)
    AtomicLocalBackend().put(buffer.getvalue(), dst)
    return result
