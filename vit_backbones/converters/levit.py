"""LeViT checkpoint layouts <-> ours.

Layouts (timm's names everywhere, so the tables below are short):
    * ``timm_conv``: timm ``levit_conv_*``: every projection is a 1x1 ``Conv2d`` + ``BatchNorm2d``
      (``*.linear.weight`` of shape (out, in, 1, 1)); recognised by the shape of its q/k/v weights. The classifier
      (``head``, ``head_dist``) is left out and the 1x1 kernels become matrices.
    * ``timm``: timm ``levit_*`` (``Linear`` + ``BatchNorm1d``) with its classifier, which is left out; also the
      index buffers ``attention_bias_idxs`` that old checkpoints saved (recomputed from the grid here).
    * ours: timm ``levit_*`` keys without the classifier (``stem.conv{1..4}.{linear,bn}``,
      ``stages.{i}.downsample.attn_downsample.{kv,q.ln,proj.ln}``, ``stages.{i}.downsample.mlp.ln{1,2}``,
      ``stages.{i}.blocks.{j}.attn.{qkv,proj.ln}``, ``...mlp.ln{1,2}``, ``attention_biases``), so a headless timm
      state dict is already in our layout.

Exports: ``timm`` (load with ``strict=True`` into ``timm.create_model('levit_*', num_classes=0)``) and
``timm_conv`` (the same into ``levit_conv_*``). Attention-bias tables keep their grid; the backbone resizes square
ones to its own on load.
"""
import re
from typing import Any, Mapping

from .common import CheckpointMismatchError, Converted, drop_keys
from .registry import OURS, CheckpointFamily, Layout, register_family

TIMM_ONLY_RULES = [
    (r'^head\.', 'classification head'),
    (r'^head_dist\.', 'distillation head'),
    (r'\.attention_bias_idxs$', 'bias index buffer (recomputed from the grid)'),
]
_QKV = re.compile(r'\.attn\.qkv\.linear\.weight$')
_PROJECTION = re.compile(r'^(?!stem\.).*\.linear\.weight$')  # every 1x1 projection (the stem's convs stay 3x3)


def _has_levit_keys(sd: Mapping[str, Any]) -> bool:
    return 'stem.conv1.linear.weight' in sd and any(_QKV.search(k) for k in sd)


def _is_timm_conv(sd: Mapping[str, Any]) -> bool:
    return _has_levit_keys(sd) and any(_QKV.search(k) and getattr(v, 'ndim', 0) == 4 for k, v in sd.items())


def _is_timm(sd: Mapping[str, Any]) -> bool:
    return _has_levit_keys(sd) and not _is_timm_conv(sd) and \
        any(re.search(p, k) for k in sd for p, _ in TIMM_ONLY_RULES)


def _is_ours(sd: Mapping[str, Any]) -> bool:
    return _has_levit_keys(sd) and not _is_timm_conv(sd)


def timm_conv_to_ours(state_dict: dict[str, Any]) -> Converted:
    """timm ``levit_conv_*`` -> ours: classifier left out, 1x1 projection kernels (o, i, 1, 1) -> (o, i)."""
    dropped: dict[str, str] = {}
    sd = drop_keys(state_dict, TIMM_ONLY_RULES, dropped)
    for key, value in sd.items():
        if _PROJECTION.match(key) and getattr(value, 'ndim', 0) == 4:
            if tuple(value.shape[2:]) != (1, 1):
                raise CheckpointMismatchError(f'{key} has shape {tuple(value.shape)}; LeViT projections are 1x1')
            sd[key] = value.reshape(value.shape[0], value.shape[1])  # (o, i, 1, 1) -> (o, i)
    return Converted(sd, 'timm_conv', dropped)


def ours_to_timm_conv(state_dict: dict[str, Any]) -> Converted:
    """Ours -> timm ``levit_conv_*`` (headless): projection matrices (o, i) -> 1x1 kernels (o, i, 1, 1)."""
    sd = dict(state_dict)
    for key, value in sd.items():
        if _PROJECTION.match(key) and getattr(value, 'ndim', 0) == 2:
            sd[key] = value[:, :, None, None]  # (o, i) -> (o, i, 1, 1)
    return Converted(sd, OURS, {})


def timm_to_ours(state_dict: dict[str, Any]) -> Converted:
    """timm ``levit_*`` -> ours: the same names, classifier and saved index buffers left out."""
    dropped: dict[str, str] = {}
    return Converted(drop_keys(state_dict, TIMM_ONLY_RULES, dropped), 'timm', dropped)


def ours_to_timm(state_dict: dict[str, Any]) -> Converted:
    """Ours -> timm ``levit_*`` (headless: build it with ``num_classes=0``)."""
    return Converted(dict(state_dict), OURS, {})


def levit_ours_to_ours(state_dict: dict[str, Any]) -> Converted:
    """Ours (or a headless timm ``levit_*``, which has the same keys): unchanged."""
    return Converted(dict(state_dict), OURS, {})


LEVIT = register_family(CheckpointFamily(
    name='levit',
    backbones=('LeViT',),
    layouts=(
        Layout('timm_conv', _is_timm_conv, timm_conv_to_ours, ours_to_timm_conv,
               'timm levit_conv_* (1x1 Conv2d + BatchNorm2d projections)'),
        Layout('timm', _is_timm, timm_to_ours, ours_to_timm,
               'timm levit_* with its classifier (head, head_dist)'),
        Layout(OURS, _is_ours, levit_ours_to_ours, None, 'vit_backbones LeViT (= headless timm levit_* keys)'),
    )))
