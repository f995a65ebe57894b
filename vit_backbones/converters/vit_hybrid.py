"""Hybrid (ResNet-stem) ViT checkpoint layouts <-> ours.

Layouts:
    * ``timm``: timm ``vit_tiny_r_s16_p8_*``, ``vit_small_r26_s32_*``, ``vit_base_r26_s32_*``,
      ``vit_base_r50_s16_*`` and ``vit_large_r50_s32_*`` checkpoints that hold a classifier (``head``), and any
      checkpoint of the stem-only R+Ti, whose stem timm keeps directly under ``patch_embed.backbone.{conv,norm}``
      (ours: ``patch_embed.backbone.stem.{conv,norm}``, as timm names the stem of the hybrids with ResNet stages).
    * ours: timm's names (``cls_token``, ``pos_embed``, ``patch_embed.backbone.stem.{conv,norm}``,
      ``patch_embed.backbone.stages.{i}.blocks.{j}.{downsample.conv,downsample.norm,conv1,norm1,conv2,norm2,conv3,
      norm3}``, ``patch_embed.proj``, ``blocks.{i}.*``, ``norm``), so a headless timm hybrid with ResNet stages is
      already in our layout.

timm reads the official JAX ``.npz`` releases itself (``timm.create_model(..., pretrained=True)``); save its
``state_dict()`` to get a file in the timm layout. Position embeddings keep their learned grid here; the backbone
resizes them to its own on load.
"""
import re
from typing import Any, Mapping

from .common import Converted, drop_keys, rename_keys
from .registry import OURS, CheckpointFamily, Layout, register_family
from .vit import TIMM_ONLY_RULES

STEM_ONLY_TO_OURS = [(r'^patch_embed\.backbone\.(conv|norm)\.', r'patch_embed.backbone.stem.\1.')]
OURS_TO_STEM_ONLY = [(r'^patch_embed\.backbone\.stem\.(conv|norm)\.', r'patch_embed.backbone.\1.')]


def _has_hybrid_vit(sd: Mapping[str, Any]) -> bool:
    return 'patch_embed.proj.weight' in sd and 'blocks.0.attn.qkv.weight' in sd and \
        any(k.startswith('patch_embed.backbone.') for k in sd)


def _is_timm(sd: Mapping[str, Any]) -> bool:
    return _has_hybrid_vit(sd) and ('patch_embed.backbone.conv.weight' in sd
                                    or any(re.search(p, k) for k in sd for p, _ in TIMM_ONLY_RULES))


def _is_ours(sd: Mapping[str, Any]) -> bool:
    return _has_hybrid_vit(sd) and 'patch_embed.backbone.stem.conv.weight' in sd


def timm_to_ours(state_dict: dict[str, Any]) -> Converted:
    """timm hybrid ViT -> ours: the same names (the stem-only R+Ti's stem under ``stem.``), classifier left out."""
    dropped: dict[str, str] = {}
    sd = drop_keys(state_dict, TIMM_ONLY_RULES, dropped)
    return Converted(rename_keys(sd, STEM_ONLY_TO_OURS), 'timm', dropped)


def ours_to_timm(state_dict: dict[str, Any]) -> Converted:
    """Ours -> timm's hybrid ``VisionTransformer`` (headless: build it with ``num_classes=0``)."""
    if any(k.startswith('patch_embed.backbone.stages.') for k in state_dict):
        return Converted(dict(state_dict), OURS, {})
    return Converted(rename_keys(state_dict, OURS_TO_STEM_ONLY), OURS, {})  # timm's stem-only R+Ti


def hybrid_ours_to_ours(state_dict: dict[str, Any]) -> Converted:
    """Ours (or a headless timm hybrid with ResNet stages, which has the same keys): unchanged."""
    return Converted(dict(state_dict), OURS, {})


VIT_HYBRID = register_family(CheckpointFamily(
    name='vit_hybrid',
    backbones=('HybridVisionTransformer',),
    layouts=(
        Layout('timm', _is_timm, timm_to_ours, ours_to_timm,
               'timm vit_*_r*_s* hybrids with a classifier (head), or the stem-only R+Ti (patch_embed.backbone.conv)'),
        Layout(OURS, _is_ours, hybrid_ours_to_ours, None,
               'vit_backbones HybridVisionTransformer (= headless timm keys)'),
    )))
