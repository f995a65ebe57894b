"""Swin Transformer checkpoint layouts <-> ours.

Layouts:
    * ``timm``: ``timm.models.swin_transformer``; downsampling at the start of a stage (as ours), final ``norm``,
      classifier ``head.fc``.
    * ``official``: microsoft/Swin-Transformer; downsampling at the end of a stage (``layers.i.downsample`` is
      our ``layers.{i+1}.downsample``), ``head``, persistent ``attn_mask`` / ``relative_position_index``
      buffers, optional ``absolute_pos_embed`` of shape (1, N, C).
    * ours: timm's names, plus per-output norms ``norms.{i}`` and ``absolute_pos_embed`` of shape (1, C, h, w).
"""
import re
from typing import Any

from .common import Converted, drop_keys, rename_keys

BUFFER_RULES = [(r'(^|\.)(relative_position_index|attn_mask)$', 'derived buffer, rebuilt by the model')]


def _num_stages(state_dict: dict[str, Any]) -> int:
    stages = [int(m.group(1)) for k in state_dict if (m := re.match(r'layers\.(\d+)\.', k))]
    if not stages:
        raise ValueError('not a Swin state dict: no "layers.N." keys')
    return max(stages) + 1


def detect_swin_layout(state_dict: dict[str, Any]) -> str:
    """Name the layout of a Swin state dict: ``'official'``, ``'timm'``, ``'vit_backbones'`` or ``'unknown'``."""
    keys = state_dict.keys()
    if not any(k.startswith('layers.') for k in keys):
        return 'unknown'
    if 'layers.0.downsample.reduction.weight' in keys:
        return 'official'
    if any(k.startswith('norms.') for k in keys):
        return 'vit_backbones'
    if 'norm.weight' in keys or any(k.startswith('head.') for k in keys):
        return 'timm'
    return 'vit_backbones'  # headless, norm-less: timm and ours coincide


def swin_timm_to_ours(state_dict: dict[str, Any]) -> Converted:
    """timm Swin -> ours: final ``norm`` becomes the last stage's output norm; head and buffers dropped."""
    dropped: dict[str, str] = {}
    last = _num_stages(state_dict) - 1
    sd = drop_keys(state_dict, BUFFER_RULES + [(r'^head\.', 'classification head')], dropped)
    sd = rename_keys(sd, [(r'^norm\.', f'norms.{last}.')])
    return Converted(sd, 'timm', dropped)


def swin_official_to_ours(state_dict: dict[str, Any]) -> Converted:
    """Official Swin -> ours: shift downsample layers one stage later, reshape ``absolute_pos_embed``."""
    dropped: dict[str, str] = {}
    last = _num_stages(state_dict) - 1
    sd = drop_keys(state_dict, BUFFER_RULES + [(r'^head\.', 'classification head')], dropped)
    sd = rename_keys(sd, [
        (r'^layers\.(\d+)\.downsample\.', lambda m: f'layers.{int(m.group(1)) + 1}.downsample.'),
        (r'^norm\.', f'norms.{last}.'),
    ])
    if 'absolute_pos_embed' in sd and sd['absolute_pos_embed'].ndim == 3:
        pos = sd['absolute_pos_embed']
        side = round(pos.shape[1] ** 0.5)
        if side * side != pos.shape[1]:
            raise ValueError(f'absolute_pos_embed of shape {tuple(pos.shape)} is not a square grid')
        # (1, N, C) -> (1, C, N) -> (1, C, h, w)
        sd['absolute_pos_embed'] = pos.transpose(1, 2).reshape(1, -1, side, side)
    return Converted(sd, 'official', dropped)


def swin_ours_to_timm(state_dict: dict[str, Any]) -> Converted:
    """Ours -> timm Swin (headless): last output norm becomes ``norm``; other output norms are dropped."""
    dropped: dict[str, str] = {}
    last = _num_stages(state_dict) - 1
    sd = drop_keys(state_dict, [
        (rf'^norms\.(?!{last}\.)', 'per-output norm of an intermediate stage; timm has none'),
        (r'^absolute_pos_embed$', 'timm Swin has no absolute position embedding'),
    ], dropped)
    sd = rename_keys(sd, [(rf'^norms\.{last}\.', 'norm.')])
    return Converted(sd, 'vit_backbones', dropped)


def convert_swin_to_ours(state_dict: dict[str, Any]) -> Converted:
    """Recognise the layout of a Swin state dict by its keys and convert it to ours."""
    layout = detect_swin_layout(state_dict)
    if layout == 'timm':
        return swin_timm_to_ours(state_dict)
    if layout == 'official':
        return swin_official_to_ours(state_dict)
    dropped: dict[str, str] = {}
    sd = drop_keys(state_dict, BUFFER_RULES, dropped)
    return Converted(sd, layout, dropped)
