"""Swin Transformer checkpoint layouts <-> ours.

Layouts:
    * ``timm``: ``timm.models.swin_transformer``; downsampling at the start of a stage (as ours), final ``norm``,
      classifier ``head.fc``.
    * ``official``: microsoft/Swin-Transformer; downsampling at the end of a stage (``layers.i.downsample`` is
      our ``layers.{i+1}.downsample``), ``head``, persistent ``attn_mask`` / ``relative_position_index``
      buffers, optional ``absolute_pos_embed`` of shape (1, N, C).
    * ``mm``: mmdet / mmseg / mmpretrain ``SwinTransformer`` (one layout). ``patch_embed.projection``,
      ``stages.{i}.blocks.{j}.attn.w_msa``, ``ffn.layers.0.0`` / ``ffn.layers.1`` for fc1 / fc2, downsampling at
      the end of a stage (``stages.i.downsample`` is our ``layers.{i+1}.downsample``) with its 4C channels in
      ``nn.Unfold`` order, output norms ``norm{i}`` (mmpretrain's state dicts before its version 2: ``norm``, the
      last stage's), persistent ``relative_position_index`` (and before version 3 ``attn_mask``) buffers and an
      optional ``absolute_pos_embed`` of shape (1, N, C).
    * ours: timm's names, plus per-output norms ``norms.{i}`` and ``absolute_pos_embed`` of shape (1, C, h, w).
"""
import re
from typing import Any, Mapping

from torch import Tensor

from .common import Converted, drop_keys, rename_keys
from .registry import OURS, CheckpointFamily, Layout, register_family

BUFFER_RULES = [(r'(^|\.)(relative_position_index|attn_mask)$', 'derived buffer, rebuilt by the model')]

MM_TO_OURS_RULES = [
    (r'^patch_embed\.projection\.', 'patch_embed.proj.'),
    (r'^stages\.(\d+)\.downsample\.', lambda m: f'layers.{int(m.group(1)) + 1}.downsample.'),
    (r'^stages\.', 'layers.'),
    (r'\.attn\.w_msa\.', '.attn.'),
    (r'\.ffn\.layers\.0\.0\.', '.mlp.fc1.'),
    (r'\.ffn\.layers\.1\.', '.mlp.fc2.'),
    (r'^norm(\d+)\.', r'norms.\1.'),
]
OURS_TO_MM_RULES = [
    (r'^patch_embed\.proj\.', 'patch_embed.projection.'),
    (r'^layers\.(\d+)\.downsample\.', lambda m: f'stages.{int(m.group(1)) - 1}.downsample.'),
    (r'^layers\.', 'stages.'),
    (r'\.attn\.', '.attn.w_msa.'),
    (r'\.mlp\.fc1\.', '.ffn.layers.0.0.'),
    (r'\.mlp\.fc2\.', '.ffn.layers.1.'),
    (r'^norms\.(\d+)\.', r'norm\1.'),
]
# The patch-merging tensors whose 4C input channels follow the 2x2 neighbourhood order.
MERGE_CHANNEL_KEY = r'\.downsample\.(reduction\.weight|norm\.weight|norm\.bias)$'


def _num_stages(state_dict: dict[str, Any]) -> int:
    stages = [int(m.group(1)) for k in state_dict if (m := re.match(r'layers\.(\d+)\.', k))]
    if not stages:
        raise ValueError('not a Swin state dict: no "layers.N." keys')
    return max(stages) + 1


def _abs_pos_embed_to_grid(pos: Tensor) -> Tensor:
    """(1, N, C) -> (1, C, h, w) for a square grid of N = h * w tokens."""
    side = round(pos.shape[1] ** 0.5)
    if side * side != pos.shape[1]:
        raise ValueError(f'absolute_pos_embed of shape {tuple(pos.shape)} is not a square grid')
    return pos.transpose(1, 2).reshape(1, -1, side, side)  # (1, N, C) -> (1, C, N) -> (1, C, h, w)


def merge_channels_unfold_to_official(x: Tensor) -> Tensor:
    """Reorder the 4C patch-merging channels (last dim) from ``nn.Unfold`` order to the official one.

    ``nn.Unfold`` (mmdet/mmseg) puts input channel c of the 2x2 neighbour at (row, col) offset (dh, dw) at
    index ``c * 4 + dh * 2 + dw``; the official/timm/our order is ``(dw * 2 + dh) * C + c``, i.e. neighbours
    (0, 0), (1, 0), (0, 1), (1, 1) each holding all C channels. Reversing the three axes maps one to the other.
    """
    c = x.shape[-1] // 4
    # (..., C, dh, dw) -> (..., dw, dh, C) -> (..., 4C)
    return x.unflatten(-1, (c, 2, 2)).transpose(-3, -1).flatten(-3)


def merge_channels_official_to_unfold(x: Tensor) -> Tensor:
    """Inverse of :func:`merge_channels_unfold_to_official`."""
    c = x.shape[-1] // 4
    # (..., dw, dh, C) -> (..., C, dh, dw) -> (..., 4C)
    return x.unflatten(-1, (2, 2, c)).transpose(-3, -1).flatten(-3)


_MM_ATTENTION = re.compile(r'stages\.\d+\.blocks\.\d+\.attn\.w_msa\.')


def _is_mm(sd: Mapping[str, Any]) -> bool:
    has_stages = any(k.startswith('stages.') for k in sd)  # a plain mm ViT has the same stem but ``layers.``
    return ('patch_embed.projection.weight' in sd and has_stages) or any(_MM_ATTENTION.match(k) for k in sd)


_STAGE_ATTENTION = re.compile(r'layers\.\d+\.blocks\.\d+\.attn\.qkv\.')


def _has_stages(sd: Mapping[str, Any]) -> bool:
    return any(_STAGE_ATTENTION.match(k) for k in sd)


def _is_official(sd: Mapping[str, Any]) -> bool:
    return _has_stages(sd) and 'layers.0.downsample.reduction.weight' in sd


def _is_timm(sd: Mapping[str, Any]) -> bool:
    has_head = 'norm.weight' in sd or any(k.startswith('head.') for k in sd)
    return _has_stages(sd) and has_head and not any(k.startswith('norms.') for k in sd)


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
        sd['absolute_pos_embed'] = _abs_pos_embed_to_grid(sd['absolute_pos_embed'])
    return Converted(sd, 'official', dropped)


def swin_mm_to_ours(state_dict: dict[str, Any]) -> Converted:
    """mmdet/mmseg/mmpretrain Swin -> ours.

    Renames keys, moves downsampling one stage later, restores the official patch-merging channel order (the
    reduction's input channels and the merge norm's weight and bias), reshapes ``absolute_pos_embed`` to a grid
    and drops the ``relative_position_index`` buffers.
    """
    dropped: dict[str, str] = {}
    sd = drop_keys(state_dict, BUFFER_RULES, dropped)
    sd = rename_keys(sd, MM_TO_OURS_RULES)
    if any(k.startswith('norm.') for k in sd):  # mmpretrain before version 2: the last stage's output norm
        sd = rename_keys(sd, [(r'^norm\.', f'norms.{_num_stages(sd) - 1}.')])
    for key in [k for k in sd if re.search(MERGE_CHANNEL_KEY, k)]:
        sd[key] = merge_channels_unfold_to_official(sd[key])
    if 'absolute_pos_embed' in sd and sd['absolute_pos_embed'].ndim == 3:
        sd['absolute_pos_embed'] = _abs_pos_embed_to_grid(sd['absolute_pos_embed'])
    return Converted(sd, 'mm', dropped)


def swin_ours_to_mm(state_dict: dict[str, Any]) -> Converted:
    """Ours -> mmdet/mmseg Swin (backbone keys, no ``backbone.`` prefix).

    mmdet/mmseg rebuild their persistent ``relative_position_index`` buffers at construction; load the result
    with ``strict=False`` (as their ``init_weights`` does) or expect those keys as missing.
    """
    sd = rename_keys(state_dict, OURS_TO_MM_RULES)
    for key in [k for k in sd if re.search(MERGE_CHANNEL_KEY, k)]:
        sd[key] = merge_channels_official_to_unfold(sd[key])
    if 'absolute_pos_embed' in sd and sd['absolute_pos_embed'].ndim == 4:
        sd['absolute_pos_embed'] = sd['absolute_pos_embed'].flatten(2).transpose(1, 2)  # (1, C, h, w) -> (1, N, C)
    return Converted(sd, OURS, {})


def swin_ours_to_timm(state_dict: dict[str, Any]) -> Converted:
    """Ours -> timm Swin (headless): last output norm becomes ``norm``; other output norms are dropped."""
    dropped: dict[str, str] = {}
    last = _num_stages(state_dict) - 1
    sd = drop_keys(state_dict, [
        (rf'^norms\.(?!{last}\.)', 'per-output norm of an intermediate stage; timm has none'),
        (r'^absolute_pos_embed$', 'timm Swin has no absolute position embedding'),
    ], dropped)
    sd = rename_keys(sd, [(rf'^norms\.{last}\.', 'norm.')])
    return Converted(sd, OURS, dropped)


def swin_ours_to_ours(state_dict: dict[str, Any]) -> Converted:
    """Ours (or timm's headless, norm-less form, which coincides with ours): derived buffers dropped."""
    dropped: dict[str, str] = {}
    return Converted(drop_keys(state_dict, BUFFER_RULES, dropped), OURS, dropped)


SWIN = register_family(CheckpointFamily(
    name='swin',
    backbones=('SwinTransformer',),
    layouts=(  # detection order: the first matching signature wins
        Layout('mm', _is_mm, swin_mm_to_ours, swin_ours_to_mm,
               'mmdet/mmseg/mmpretrain SwinTransformer (patch_embed.projection, attn.w_msa, nn.Unfold merge order)'),
        Layout('official', _is_official, swin_official_to_ours, None,
               'microsoft/Swin-Transformer (downsample at the end of a stage, head)'),
        Layout('timm', _is_timm, swin_timm_to_ours, swin_ours_to_timm, 'timm swin_* (final norm, head.fc)'),
        Layout(OURS, _has_stages, swin_ours_to_ours, None, 'vit_backbones SwinTransformer'),
    )))
