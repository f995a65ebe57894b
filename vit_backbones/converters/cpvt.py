"""CPVT / Twins-PCPVT checkpoint layouts <-> ours.

Layouts:
    * ``timm``: timm ``twins_pcpvt_*`` and the official Meituan-AutoML/Twins ``pcpvt_*_v0`` release, which hold the
      same keys: ``patch_embeds.{i}.{proj,norm}``, ``blocks.{i}.{j}`` (``norm1``, ``attn.{q,kv,proj,sr,norm}``,
      ``norm2``, ``mlp.fc{1,2}``), the PEGs ``pos_block.{i}.proj.0``, the final ``norm`` and ``head``. The final
      norm and the classifier are left out: the dense PCPVT returns its stage maps without norm (as the official
      segmentation and detection models).
    * ``mmpretrain``: mmpretrain's ``PCPVT`` (Twins-PCPVT): ``patch_embeds.{i}.{projection,norm}``,
      ``stages.{i}.{j}`` (``norm1``, ``attn.{q,kv,proj,sr,norm}``, ``norm2``, ``ffn.layers.0.0`` / ``ffn.layers.1``),
      the PEGs ``position_encodings.{i}.proj`` and ``norm_after_stage{i}``, which are left out (the classification
      configs put one after the last stage: timm's final ``norm``). mmpretrain builds its block norms with eps 1e-5
      (``norm_cfg=dict(type='LN')``); the official Twins, timm and ours use 1e-6, which its checkpoints (converted
      from the official ones) were trained with.
    * ``deit``: timm ``deit_*`` / ``vit_*`` and the official facebookresearch/deit checkpoints (with a classifier
      ``head``), read into the plain form: every block, the patch embedding, the cls token and the final norm; the
      absolute ``pos_embed`` (CPVT has none: the PEG replaces it), a distillation token and the heads are left out,
      and the PEG is not in the file (it keeps its random init).
    * ours: plain ``patch_embed.proj``, ``cls_token``, ``blocks.{i}`` (timm's DeiT names) with the PEG of a block at
      ``blocks.{i}.pos_block.proj``, ``norm``; pyramid ``stages.{i}.patch_embed.{proj,norm}``,
      ``stages.{i}.blocks.{j}`` (timm's block names), ``stages.{i}.pos_block.proj``.
"""
import re
from typing import Any, Mapping

from .common import Converted, drop_keys, rename_keys
from .registry import OURS, CheckpointFamily, Layout, register_family
from .vit import TIMM_ONLY_RULES as VIT_TIMM_ONLY_RULES
from .vit import _has_vit_blocks

TIMM_TO_OURS_RULES = [
    (r'^patch_embeds\.(\d+)\.', r'stages.\1.patch_embed.'),
    (r'^blocks\.(\d+)\.(\d+)\.', r'stages.\1.blocks.\2.'),
    (r'^pos_block\.(\d+)\.proj\.0\.', r'stages.\1.pos_block.proj.'),
]
OURS_TO_TIMM_RULES = [
    (r'^stages\.(\d+)\.patch_embed\.', r'patch_embeds.\1.'),
    (r'^stages\.(\d+)\.blocks\.(\d+)\.', r'blocks.\1.\2.'),
    (r'^stages\.(\d+)\.pos_block\.proj\.', r'pos_block.\1.proj.0.'),
]
MMPRETRAIN_TO_OURS_RULES = [
    (r'^patch_embeds\.(\d+)\.projection\.', r'stages.\1.patch_embed.proj.'),
    (r'^patch_embeds\.(\d+)\.norm\.', r'stages.\1.patch_embed.norm.'),
    (r'^position_encodings\.(\d+)\.proj\.', r'stages.\1.pos_block.proj.'),
    (r'^stages\.(\d+)\.(\d+)\.', r'stages.\1.blocks.\2.'),
    (r'\.ffn\.layers\.0\.0\.', '.mlp.fc1.'),
    (r'\.ffn\.layers\.1\.', '.mlp.fc2.'),
]
OURS_TO_MMPRETRAIN_RULES = [
    (r'^stages\.(\d+)\.patch_embed\.proj\.', r'patch_embeds.\1.projection.'),
    (r'^stages\.(\d+)\.patch_embed\.norm\.', r'patch_embeds.\1.norm.'),
    (r'^stages\.(\d+)\.pos_block\.proj\.', r'position_encodings.\1.proj.'),
    (r'^stages\.(\d+)\.blocks\.(\d+)\.', r'stages.\1.\2.'),
    (r'\.mlp\.fc1\.', '.ffn.layers.0.0.'),
    (r'\.mlp\.fc2\.', '.ffn.layers.1.'),
]
MMPRETRAIN_ONLY_RULES = [
    (r'^head\.', 'classification head'),
    (r'^norm_after_stage\d+\.', "mmpretrain's norm after a stage (the classification models' final norm); the "
                                  'dense PCPVT returns its stage maps without norm'),
]
TIMM_ONLY_RULES = [
    (r'^head\.', 'classification head'),
    (r'^norm\.', 'classification final norm; the dense PCPVT returns its stage maps without norm'),
]
DEIT_ONLY_RULES = [
    (r'^pos_embed$', 'absolute position embedding; CPVT encodes positions with its PEG instead'),
    (r'^dist_token$', 'DeiT distillation token; CPVT has a cls token only'),
    *VIT_TIMM_ONLY_RULES,
]
_PLAIN_PEG = re.compile(r'blocks\.\d+\.pos_block\.proj\.weight$')
_PYRAMID_PEG = re.compile(r'stages\.\d+\.pos_block\.proj\.weight$')


def _is_timm(sd: Mapping[str, Any]) -> bool:
    # PCPVT's global sub-sampled attention (q / kv); Twins-SVT's grouped blocks (qkv) are another architecture
    return 'patch_embeds.0.proj.weight' in sd and 'pos_block.0.proj.0.weight' in sd and 'blocks.0.0.attn.q.weight' in sd


def _is_mmpretrain(sd: Mapping[str, Any]) -> bool:
    # global sub-sampled attention (q / kv) in the first block: PCPVT, not Twins-SVT (whose first block is grouped)
    return 'patch_embeds.0.projection.weight' in sd and 'position_encodings.0.proj.weight' in sd and \
        'stages.0.0.attn.q.weight' in sd


def _is_deit(sd: Mapping[str, Any]) -> bool:
    return _has_vit_blocks(sd) and 'pos_embed' in sd and any(k.startswith(('head.', 'head_dist.')) for k in sd)


def _is_ours(sd: Mapping[str, Any]) -> bool:
    plain = 'patch_embed.proj.weight' in sd and any(_PLAIN_PEG.match(k) for k in sd)
    pyramid = 'stages.0.patch_embed.proj.weight' in sd and any(_PYRAMID_PEG.match(k) for k in sd)
    return plain or pyramid


def cpvt_timm_to_ours(state_dict: dict[str, Any]) -> Converted:
    """timm / official Twins-PCPVT -> our pyramid form; the final norm and the classifier are left out."""
    dropped: dict[str, str] = {}
    sd = drop_keys(state_dict, TIMM_ONLY_RULES, dropped)
    return Converted(rename_keys(sd, TIMM_TO_OURS_RULES), 'timm', dropped)


def cpvt_ours_to_timm(state_dict: dict[str, Any]) -> Converted:
    """Our pyramid form -> timm ``Twins`` (``twins_pcpvt_*``, built with ``num_classes=0``).

    The dense model has no final norm: load the result into timm with ``strict=False`` (only ``norm.weight`` and
    ``norm.bias`` are missing; timm applies that norm to its pooled classification features only).

    Raises:
        ValueError: the state dict is of the plain form (timm has no plain CPVT).
    """
    if 'patch_embed.proj.weight' in state_dict:
        raise ValueError('timm has no plain CPVT: only the pyramid form (PCPVT) can be exported to timm')
    return Converted(rename_keys(state_dict, OURS_TO_TIMM_RULES), OURS, {})


def cpvt_mmpretrain_to_ours(state_dict: dict[str, Any]) -> Converted:
    """mmpretrain ``PCPVT`` -> our pyramid form; ``norm_after_stage*`` and the classifier are left out."""
    dropped: dict[str, str] = {}
    sd = drop_keys(state_dict, MMPRETRAIN_ONLY_RULES, dropped)
    return Converted(rename_keys(sd, MMPRETRAIN_TO_OURS_RULES), 'mmpretrain', dropped)


def cpvt_ours_to_mmpretrain(state_dict: dict[str, Any]) -> Converted:
    """Our pyramid form -> mmpretrain ``PCPVT`` (build it with ``qkv_bias=True`` and no ``norm_after_stage``).

    Raises:
        ValueError: the state dict is of the plain form (mmpretrain has no plain CPVT).
    """
    if 'patch_embed.proj.weight' in state_dict:
        raise ValueError('mmpretrain has no plain CPVT: only the pyramid form (PCPVT) can be exported to it')
    return Converted(rename_keys(state_dict, OURS_TO_MMPRETRAIN_RULES), OURS, {})


def cpvt_deit_to_ours(state_dict: dict[str, Any]) -> Converted:
    """timm / official DeiT or ViT -> our plain form: the same names, less the position embedding, distillation
    token and heads (see the module docstring)."""
    dropped: dict[str, str] = {}
    return Converted(drop_keys(state_dict, DEIT_ONLY_RULES, dropped), 'deit', dropped)


def cpvt_ours_to_ours(state_dict: dict[str, Any]) -> Converted:
    """Ours: unchanged."""
    return Converted(dict(state_dict), OURS, {})


CPVT = register_family(CheckpointFamily(
    name='cpvt',
    backbones=('CPVT',),
    layouts=(  # detection order: the first matching signature wins
        Layout('timm', _is_timm, cpvt_timm_to_ours, cpvt_ours_to_timm,
               'timm twins_pcpvt_* / official Twins pcpvt_*_v0 (patch_embeds.{i}, blocks.{i}.{j}, pos_block.{i})'),
        Layout('mmpretrain', _is_mmpretrain, cpvt_mmpretrain_to_ours, cpvt_ours_to_mmpretrain,
               'mmpretrain PCPVT (patch_embeds.{i}.projection, stages.{i}.{j}, position_encodings.{i})'),
        Layout('deit', _is_deit, cpvt_deit_to_ours, None,
               'timm / official DeiT or ViT with its head, read into the plain CPVT (pos_embed left out)'),
        Layout(OURS, _is_ours, cpvt_ours_to_ours, None, 'vit_backbones CPVT (plain or pyramid)'),
    )))
