"""DeepViT checkpoint layouts <-> ours.

Layouts:
    * ``official``: zhoudaquan/dvit_repo's ``DeepVisionTransformer`` with its classifier ``head`` (the timm
      training script saves ``{'state_dict': ..., 'state_dict_ema': ...}``, possibly with ``module.`` prefixes;
      loading unwraps that before the layout is read): ``cls_token``, ``pos_embed`` (1, 1 + h*w, C),
      ``patch_embed.proj`` or the conv stem ``patch_embed.{conv1,bn1,conv2,bn2,proj}``, ``blocks.{i}`` with
      ``norm{1,2}``, ``attn.{qkv,proj}``, re-attention ``attn.reatten_matrix`` (1x1 conv) and ``attn.var_norm``
      (BatchNorm), ``mlp.fc{1,2}``; the final ``norm``. The classifier is left out.
    * ours: the same names without the classifier, so a headless official state dict is already ours, and ours
      loads into the reference built with ``num_classes=0`` strictly.

Position embeddings keep their learned grid here; the backbone resizes them to its own on load.
"""
from typing import Any, Mapping

from .common import Converted, drop_keys
from .registry import OURS, CheckpointFamily, Layout, register_family

OFFICIAL_ONLY_RULES = [(r'^head\.', 'classification head')]
CONV_STEM_KEYS = ('patch_embed.conv1.weight', 'patch_embed.bn1.running_mean', 'patch_embed.conv2.weight')
OTHER_FAMILY_KEYS = ('blocks.0.leff.conv1.weight', 'blocks.0.attn.proj_l.weight')  # CeiT, CaiT


def _has_deepvit_blocks(sd: Mapping[str, Any]) -> bool:
    """ViT keys plus a DeepViT mark: re-attention in some block, or the conv stem."""
    if 'patch_embed.proj.weight' not in sd or 'blocks.0.attn.qkv.weight' not in sd or \
            any(k in sd for k in OTHER_FAMILY_KEYS):
        return False
    return all(k in sd for k in CONV_STEM_KEYS) or any('.attn.reatten_matrix.' in k for k in sd)


def _is_official(sd: Mapping[str, Any]) -> bool:
    return _has_deepvit_blocks(sd) and 'head.weight' in sd


def _is_ours(sd: Mapping[str, Any]) -> bool:
    return _has_deepvit_blocks(sd) and 'head.weight' not in sd


def deepvit_official_to_ours(state_dict: dict[str, Any]) -> Converted:
    """Official DeepViT -> ours: the same names, the classifier left out."""
    dropped: dict[str, str] = {}
    return Converted(drop_keys(state_dict, OFFICIAL_ONLY_RULES, dropped), 'official', dropped)


def deepvit_ours_to_official(state_dict: dict[str, Any]) -> Converted:
    """Ours -> official ``DeepVisionTransformer`` keys (headless: build it with ``num_classes=0``).

    A model built with every block (``out_indices`` naming the last) exports every key the reference has; one
    built for earlier outputs lacks the later blocks and ``norm``: load that with ``strict=False``.
    """
    return Converted(dict(state_dict), OURS, {})


def deepvit_ours_to_ours(state_dict: dict[str, Any]) -> Converted:
    """Ours (or a headless official state dict, which has the same keys): unchanged."""
    return Converted(dict(state_dict), OURS, {})


DEEPVIT = register_family(CheckpointFamily(
    name='deepvit',
    backbones=('DeepViT',),
    layouts=(
        Layout('official', _is_official, deepvit_official_to_ours, deepvit_ours_to_official,
               'official zhoudaquan/dvit_repo DeepVisionTransformer with its classifier (blocks.{i}.attn.'
               'reatten_matrix / var_norm, patch_embed.conv1 for DeepViT-S/L, head)'),
        Layout(OURS, _is_ours, deepvit_ours_to_ours, None,
               'vit_backbones DeepViT (= headless official keys)'),
    )))
