"""PVT v1 / v2 checkpoint layouts <-> ours.

Layouts:
    * ``official``: whai362/PVT. ``patch_embed{i}``, ``block{i}.{j}``, v2 ``norm{i}`` and ``mlp.dwconv.dwconv``;
      v1 ``pos_embed{i}`` of shape (1, N, C) (the last one with a cls row in classification checkpoints),
      ``cls_token`` and a final ``norm``; ``head``.
    * ``timm`` (v2): our names plus ``head``.
    * ours: ``patch_embed``, ``stages.{i}.downsample`` (i >= 1), ``stages.{i}.blocks.{j}``, v2 ``stages.{i}.norm``,
      v1 ``stages.{i}.pos_embed`` of shape (1, C, h, w).
"""
import re
from typing import Any

from .common import Converted, drop_keys, rename_keys


def detect_pvt_layout(state_dict: dict[str, Any]) -> str:
    """Name the layout of a PVT state dict: ``'official'``, ``'timm'``, ``'vit_backbones'`` or ``'unknown'``."""
    keys = state_dict.keys()
    if 'patch_embed1.proj.weight' in keys:
        return 'official'
    if 'patch_embed.proj.weight' in keys and any(k.startswith('stages.') for k in keys):
        return 'timm' if any(k.startswith('head.') for k in keys) else 'vit_backbones'
    return 'unknown'


def _pos_embed_to_grid(pos: Any) -> Any:
    """(1, N, C) -> (1, C, h, w), dropping a leading cls row when N - 1 (not N) is a square."""
    n = pos.shape[1]
    side = round(n ** 0.5)
    if side * side != n:
        side = round((n - 1) ** 0.5)
        if side * side != n - 1:
            raise ValueError(f'position embedding of shape {tuple(pos.shape)} is not a square grid (+ cls row)')
        pos = pos[:, 1:]
    return pos.transpose(1, 2).reshape(1, -1, side, side)  # (1, N, C) -> (1, C, N) -> (1, C, h, w)


def pvt_official_to_ours(state_dict: dict[str, Any]) -> Converted:
    """Official PVT v1 or v2 -> ours."""
    dropped: dict[str, str] = {}
    sd = drop_keys(state_dict, [
        (r'^head\.', 'classification head'),
        (r'^cls_token$', 'classification cls token; the dense v1 has none'),
        (r'^norm\.', 'v1 classification final norm; the dense v1 has no output norm'),
    ], dropped)
    sd = rename_keys(sd, [
        (r'^patch_embed1\.', 'patch_embed.'),
        (r'^patch_embed(\d)\.', lambda m: f'stages.{int(m.group(1)) - 1}.downsample.'),
        (r'^pos_embed(\d)$', lambda m: f'stages.{int(m.group(1)) - 1}.pos_embed'),
        (r'^block(\d)\.(\d+)\.', lambda m: f'stages.{int(m.group(1)) - 1}.blocks.{m.group(2)}.'),
        (r'^norm(\d)\.', lambda m: f'stages.{int(m.group(1)) - 1}.norm.'),
        (r'\.dwconv\.dwconv\.', '.dwconv.'),
    ])
    for key in [k for k in sd if k.endswith('pos_embed') and sd[k].ndim == 3]:
        sd[key] = _pos_embed_to_grid(sd[key])
    return Converted(sd, 'official', dropped)


def pvt_timm_to_ours(state_dict: dict[str, Any]) -> Converted:
    """timm PVT v2 -> ours: the same names; the classifier is dropped."""
    dropped: dict[str, str] = {}
    sd = drop_keys(state_dict, [(r'^head\.', 'classification head')], dropped)
    return Converted(sd, 'timm', dropped)


def pvt_ours_to_timm(state_dict: dict[str, Any]) -> Converted:
    """Ours (PVT v2) -> timm's headless ``pvt_v2_*``.

    Raises:
        ValueError: the state dict is a v1 (it has position embeddings; timm has no PVT v1).
    """
    if any(re.search(r'(^|\.)pos_embed$', k) for k in state_dict):
        raise ValueError('timm has no PVT v1: only PVT v2 state dicts (no pos_embed) can be exported')
    return Converted(dict(state_dict), 'vit_backbones', {})


def convert_pvt_to_ours(state_dict: dict[str, Any]) -> Converted:
    """Recognise the layout of a PVT state dict by its keys and convert it to ours."""
    layout = detect_pvt_layout(state_dict)
    if layout == 'official':
        return pvt_official_to_ours(state_dict)
    if layout == 'timm':
        return pvt_timm_to_ours(state_dict)
    return Converted(dict(state_dict), layout, {})
