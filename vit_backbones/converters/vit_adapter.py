"""ViT-Adapter checkpoint layouts <-> ours.

Layouts:
    * ``official``: czczup/ViT-Adapter (the backbone part of its mmdet / mmseg checkpoints; a whole-model
      checkpoint's ``backbone.`` prefix is stripped before conversion). The ViT is ``patch_embed.proj``,
      ``pos_embed`` of shape (1, 1 + h*w, C) whose first (cls) row the model never uses, and
      ``blocks.{i}.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}`` with LayerScale ``gamma1`` / ``gamma2``
      (the official ViT's default ``layer_scale=True``); the adapter is ``level_embed``, ``spm.*``,
      ``interactions.{i}.{injector,extractor,extra_extractors.{j}}.*``, ``up`` and the output norms
      ``norm1..norm4``.
    * ours: the same names, with timm's LayerScale names ``blocks.{i}.ls{1,2}.gamma`` and the position embedding
      without the unused cls row, (1, h*w, C).

A plain ViT checkpoint (timm, DeiT, mmseg, ...) initialises the ViT part only: :class:`ViTAdapter` reads it
through the ``vit`` family and keeps its random adapter weights (see ``ViTAdapter.convert_state_dict``).
"""
import math
import re
from typing import Any, Mapping

import torch

from .common import Converted, rename_keys
from .registry import OURS, CheckpointFamily, Layout, register_family

OFFICIAL_TO_OURS_RULES = [(r'^(blocks\.\d+)\.gamma([12])$', r'\1.ls\2.gamma')]
OURS_TO_OFFICIAL_RULES = [(r'^(blocks\.\d+)\.ls([12])\.gamma$', r'\1.gamma\2')]


def _is_square(n: int) -> bool:
    return n > 0 and math.isqrt(n) ** 2 == n


def _has_adapter(sd: Mapping[str, Any]) -> bool:
    return 'level_embed' in sd and 'spm.stem.0.weight' in sd and 'interactions.0.injector.gamma' in sd


def _has_cls_row(sd: Mapping[str, Any]) -> bool:
    """Whether ``pos_embed`` is one row plus a square grid (the official layout), not a grid of its own."""
    pos = sd.get('pos_embed')
    rows = pos.shape[1] if getattr(pos, 'ndim', 0) == 3 else 0
    return _is_square(rows - 1) and not _is_square(rows)


def _is_official(sd: Mapping[str, Any]) -> bool:
    return _has_adapter(sd) and (any(re.match(r'blocks\.\d+\.gamma[12]$', k) for k in sd) or _has_cls_row(sd))


def _is_ours(sd: Mapping[str, Any]) -> bool:
    return _has_adapter(sd) and not _is_official(sd)


def vit_adapter_official_to_ours(state_dict: dict[str, Any]) -> Converted:
    """Official -> ours: ``gamma{1,2}`` become ``ls{1,2}.gamma``; the unused cls row of ``pos_embed`` goes."""
    sd = rename_keys(state_dict, OFFICIAL_TO_OURS_RULES)
    if _has_cls_row(sd):
        sd['pos_embed'] = sd['pos_embed'][:, 1:]  # (1, 1 + h*w, C) -> (1, h*w, C)
    return Converted(sd, 'official', {})


def vit_adapter_ours_to_official(state_dict: dict[str, Any]) -> Converted:
    """Ours -> official: ``ls{1,2}.gamma`` become ``gamma{1,2}``, a zero cls row goes in front of ``pos_embed``.

    Blocks without LayerScale get ``gamma{1,2}`` of ones (the identity), so that the result loads strictly into the
    official model with its default ``layer_scale=True``.
    """
    sd = rename_keys(state_dict, OURS_TO_OFFICIAL_RULES)
    blocks = sorted({int(m.group(1)) for k in sd if (m := re.match(r'blocks\.(\d+)\.norm1\.weight$', k))})
    for i in blocks:
        for j in (1, 2):
            if f'blocks.{i}.gamma{j}' not in sd:
                sd[f'blocks.{i}.gamma{j}'] = torch.ones_like(sd[f'blocks.{i}.norm1.weight'])
    pos = sd.get('pos_embed')
    if pos is not None:
        sd['pos_embed'] = torch.cat([pos.new_zeros(1, 1, pos.shape[2]), pos], dim=1)  # (1, N, C) -> (1, 1 + N, C)
    return Converted(sd, OURS, {})


def vit_adapter_ours_to_ours(state_dict: dict[str, Any]) -> Converted:
    """Ours: unchanged."""
    return Converted(dict(state_dict), OURS, {})


VIT_ADAPTER = register_family(CheckpointFamily(
    name='vit_adapter',
    backbones=('ViTAdapter',),
    layouts=(
        Layout('official', _is_official, vit_adapter_official_to_ours, vit_adapter_ours_to_official,
               'czczup/ViT-Adapter (blocks.{i}.gamma1, pos_embed with a cls row, spm, interactions, norm1..4)'),
        Layout(OURS, _is_ours, vit_adapter_ours_to_ours, None, 'vit_backbones ViTAdapter'),
    )))
