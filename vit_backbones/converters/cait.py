"""CaiT checkpoint layouts <-> ours.

Layouts:
    * ``timm``: timm ``cait_*`` and the official facebookresearch/deit release, which hold the same keys (timm's
      ``checkpoint_filter_fn`` only unwraps the official file): ``cls_token``, ``pos_embed`` (1, h*w, C),
      ``patch_embed.proj``, ``blocks.{i}`` with ``gamma_{1,2}``, ``norm{1,2}``, ``attn.{qkv,proj,proj_l,proj_w}``,
      ``mlp.fc{1,2}``; ``blocks_token_only.{j}`` with ``gamma_{1,2}``, ``norm{1,2}``, ``attn.{q,k,v,proj}``,
      ``mlp.fc{1,2}``; the final ``norm`` and the classifier ``head`` (left out). The official ``.pth`` wraps them
      as ``{'model': {'module.<key>': ...}}``; loading unwraps that before the layout is read.
    * ours: the same names but the LayerScale vectors, ``ls{1,2}.gamma`` (the shared
      :class:`~vit_backbones.layers.LayerScale`, as our ViT blocks) for ``gamma_{1,2}``.

Position embeddings keep their learned grid here; the backbone resizes them to its own on load.
"""
from typing import Any, Mapping

from .common import Converted, drop_keys, rename_keys
from .registry import OURS, CheckpointFamily, Layout, register_family

TIMM_TO_OURS_RULES = [(r'\.gamma_([12])$', r'.ls\1.gamma')]
OURS_TO_TIMM_RULES = [(r'\.ls([12])\.gamma$', r'.gamma_\1')]
TIMM_ONLY_RULES = [(r'^head\.', 'classification head')]


def _has_cait_blocks(sd: Mapping[str, Any]) -> bool:
    return 'patch_embed.proj.weight' in sd and 'blocks.0.attn.proj_l.weight' in sd


def _is_timm(sd: Mapping[str, Any]) -> bool:
    return _has_cait_blocks(sd) and 'blocks.0.gamma_1' in sd


def _is_ours(sd: Mapping[str, Any]) -> bool:
    return _has_cait_blocks(sd) and 'blocks.0.ls1.gamma' in sd


def cait_timm_to_ours(state_dict: dict[str, Any]) -> Converted:
    """timm / official CaiT -> ours: ``gamma_{1,2}`` become ``ls{1,2}.gamma``; the classifier is left out."""
    dropped: dict[str, str] = {}
    sd = drop_keys(state_dict, TIMM_ONLY_RULES, dropped)
    return Converted(rename_keys(sd, TIMM_TO_OURS_RULES), 'timm', dropped)


def cait_ours_to_timm(state_dict: dict[str, Any]) -> Converted:
    """Ours -> timm ``Cait`` (headless: build it with ``num_classes=0``).

    A model built with ``output_cls_token=True`` exports every key timm has; a dense-only one lacks the cls token,
    the class-attention blocks (and blocks after its last output): load that into timm with ``strict=False``.
    """
    return Converted(rename_keys(state_dict, OURS_TO_TIMM_RULES), OURS, {})


def cait_ours_to_ours(state_dict: dict[str, Any]) -> Converted:
    """Ours: unchanged."""
    return Converted(dict(state_dict), OURS, {})


CAIT = register_family(CheckpointFamily(
    name='cait',
    backbones=('CaiT',),
    layouts=(
        Layout('timm', _is_timm, cait_timm_to_ours, cait_ours_to_timm,
               'timm cait_* / official facebookresearch/deit CaiT (the same keys: blocks.{i}.gamma_1, attn.proj_l, '
               'blocks_token_only, head)'),
        Layout(OURS, _is_ours, cait_ours_to_ours, None, 'vit_backbones CaiT (ls{1,2}.gamma for gamma_{1,2})'),
    )))
