"""LeViT checkpoint layouts <-> ours.

Layouts (timm's names everywhere, so the tables below are short):
    * ``timm_conv``: timm ``levit_conv_*``: every projection is a 1x1 ``Conv2d`` + ``BatchNorm2d``
      (``*.linear.weight`` of shape (out, in, 1, 1)); recognised by the shape of its q/k/v weights. The classifier
      (``head``, ``head_dist``) is left out and the 1x1 kernels become matrices.
    * ``timm``: timm ``levit_*`` (``Linear`` + ``BatchNorm1d``) with its classifier, which is left out; also the
      index buffers ``attention_bias_idxs`` that old checkpoints saved (recomputed from the grid here).
    * ``mmpretrain``: mmpretrain's ``LeViT`` (not ``deploy=True``, whose projections are fused): stem
      ``patch_embed.patch_embed.{0,2,4,6}.{conv,bn}``, and each stage one flat sequence ``stages.{i}.{k}``: for
      i > 0 the attention downsampling (``kv``, ``q.1``, ``proj.1``) and its MLP first, then alternating attention
      (``block.{qkv,proj.1}``) and MLP (``block.linear{1,2}``) residuals. Its ``attention_bias_idxs`` buffers are
      left out; its bias tables use the same offset order as ours.
    * ours: timm ``levit_*`` keys without the classifier (``stem.conv{1..4}.{linear,bn}``,
      ``stages.{i}.downsample.attn_downsample.{kv,q.ln,proj.ln}``, ``stages.{i}.downsample.mlp.ln{1,2}``,
      ``stages.{i}.blocks.{j}.attn.{qkv,proj.ln}``, ``...mlp.ln{1,2}``, ``attention_biases``), so a headless timm
      state dict is already in our layout.

Exports: ``timm`` (load with ``strict=True`` into ``timm.create_model('levit_*', num_classes=0)``),
``timm_conv`` (the same into ``levit_conv_*``) and ``mmpretrain`` (``strict=False``: its index buffers are
rebuilt by the model). Attention-bias tables keep their grid; the backbone resizes square
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


_MMP_STEM = re.compile(r'^patch_embed\.patch_embed\.(\d+)\.')
_MMP_FUSED_STEM = 'patch_embed.patch_embed.0.weight'  # deploy=True: every conv/linear + BN fused into one layer
_MMP_STAGE = re.compile(r'^stages\.(\d+)\.(\d+)\.')
# mmpretrain module names inside one stage element -> ours, for a downsampling (first) and a residual element.
_MMP_DOWNSAMPLE_NAMES = [(r'^q\.1\.', 'q.ln.'), (r'^proj\.1\.', 'proj.ln.')]
_MMP_BLOCK_NAMES = [(r'^block\.proj\.1\.', 'proj.ln.'), (r'^block\.linear([12])\.', r'ln\1.'), (r'^block\.', '')]


def _is_mmpretrain(sd: Mapping[str, Any]) -> bool:
    stem = 'patch_embed.patch_embed.0.conv.weight' in sd or _MMP_FUSED_STEM in sd
    return stem and any(_MMP_STAGE.match(k) for k in sd)


def _mmpretrain_key_to_ours(key: str) -> str:
    """One mmpretrain LeViT key -> ours (stage elements numbered as described in the module docstring)."""
    if stem := _MMP_STEM.match(key):
        return f'stem.conv{int(stem.group(1)) // 2 + 1}.' + re.sub(r'^conv\.', 'linear.', key[stem.end():])
    element = _MMP_STAGE.match(key)
    if element is None:
        return key
    stage, index, rest = int(element.group(1)), int(element.group(2)), key[element.end():]
    if stage > 0 and index == 0:
        return f'stages.{stage}.downsample.attn_downsample.' + _rename(rest, _MMP_DOWNSAMPLE_NAMES)
    if stage > 0 and index == 1:
        return f'stages.{stage}.downsample.mlp.' + _rename(rest, _MMP_BLOCK_NAMES)
    index -= 2 if stage > 0 else 0
    part = 'mlp' if index % 2 else 'attn'
    return f'stages.{stage}.blocks.{index // 2}.{part}.' + _rename(rest, _MMP_BLOCK_NAMES)


def _rename(key: str, rules: list[tuple[str, str]]) -> str:
    for pattern, repl in rules:
        key = re.sub(pattern, repl, key)
    return key


def mmpretrain_to_ours(state_dict: dict[str, Any]) -> Converted:
    """mmpretrain ``LeViT`` -> ours: stage elements renumbered into downsample / blocks, index buffers left out."""
    if _MMP_FUSED_STEM in state_dict:
        raise CheckpointMismatchError('an mmpretrain LeViT saved after switch_to_deploy(): its fused projections '
                                      'cannot be split back into Linear + BatchNorm')
    dropped: dict[str, str] = {}
    sd = drop_keys(state_dict, [(r'(^|\.)attention_bias_idxs$', 'bias index buffer (recomputed from the grid)'),
                                (r'^head\.', 'classification head')], dropped)
    return Converted({_mmpretrain_key_to_ours(k): v for k, v in sd.items()}, 'mmpretrain', dropped)


def ours_to_mmpretrain(state_dict: dict[str, Any]) -> Converted:
    """Ours -> mmpretrain ``LeViT`` (load with ``strict=False``: ``attention_bias_idxs`` are not written)."""
    out = {}
    for key, value in state_dict.items():
        if stem := re.match(r'^stem\.conv(\d+)\.', key):
            rest = re.sub(r'^linear\.', 'conv.', key[stem.end():])
            key = f'patch_embed.patch_embed.{2 * (int(stem.group(1)) - 1)}.{rest}'
        elif down := re.match(r'^stages\.(\d+)\.downsample\.attn_downsample\.', key):
            rest = re.sub(r'^(q|proj)\.ln\.', r'\1.1.', key[down.end():])
            key = f'stages.{down.group(1)}.0.{rest}'
        elif down := re.match(r'^stages\.(\d+)\.downsample\.mlp\.ln([12])\.', key):
            key = f'stages.{down.group(1)}.1.block.linear{down.group(2)}.' + key[down.end():]
        elif block := re.match(r'^stages\.(\d+)\.blocks\.(\d+)\.(attn|mlp)\.', key):
            stage, index, part = int(block.group(1)), int(block.group(2)), block.group(3)
            element = 2 * index + (part == 'mlp') + (2 if stage > 0 else 0)
            rest = re.sub(r'^proj\.ln\.', 'proj.1.', key[block.end():])
            rest = re.sub(r'^ln([12])\.', r'linear\1.', rest)
            key = f'stages.{stage}.{element}.block.{rest}'
        out[key] = value
    return Converted(out, OURS, {})


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
        Layout('mmpretrain', _is_mmpretrain, mmpretrain_to_ours, ours_to_mmpretrain,
               'mmpretrain LeViT (patch_embed.patch_embed.N.conv, flat stages.{i}.{k} sequences)'),
        Layout('timm_conv', _is_timm_conv, timm_conv_to_ours, ours_to_timm_conv,
               'timm levit_conv_* (1x1 Conv2d + BatchNorm2d projections)'),
        Layout('timm', _is_timm, timm_to_ours, ours_to_timm,
               'timm levit_* with its classifier (head, head_dist)'),
        Layout(OURS, _is_ours, levit_ours_to_ours, None, 'vit_backbones LeViT (= headless timm levit_* keys)'),
    )))
