"""Shuffle Transformer checkpoint layouts <-> ours.

Layouts:
    * ``official``: mulinmeng/Shuffle-Transformer (its training script saves ``{'model': state_dict, ...}``; the
      wrapper is removed before conversion). Stem ``to_token.conv{1,2}.{0: conv, 1: BN}`` and ``to_token.conv3``;
      stage ``s`` (1-based) is ``stage{s}`` with ``patch_partition.{norm,reduction}`` and block pairs
      ``layers.{p}.{0: regular, 1: shuffled}``; 1x1 convolutions ``attn.to_qkv`` (no bias), ``attn.proj``,
      ``mlp.fc1``, ``mlp.fc2`` of shape (out, in, 1, 1); persistent ``attn.relative_position_index`` buffers;
      classifier ``head``.
    * ours: ``patch_embed.{conv1,bn1,conv2,bn2,proj}``, ``stages.{i}.downsample.{norm,reduction}``,
      ``stages.{i}.blocks.{j}`` (j = 2p + k) with linear ``attn.qkv``, ``attn.proj``, ``mlp.fc1``, ``mlp.fc2``.
"""
import re
from typing import Any, Mapping

from ..layers import relative_position_index
from .common import Converted, drop_keys, rename_keys
from .registry import OURS, CheckpointFamily, Layout, register_family

_LINEAR_AS_CONV = r'\.(attn\.qkv|attn\.proj|mlp\.fc1|mlp\.fc2)\.weight$'

OFFICIAL_TO_OURS_RULES = [
    (r'^to_token\.conv1\.0\.', 'patch_embed.conv1.'),
    (r'^to_token\.conv1\.1\.', 'patch_embed.bn1.'),
    (r'^to_token\.conv2\.0\.', 'patch_embed.conv2.'),
    (r'^to_token\.conv2\.1\.', 'patch_embed.bn2.'),
    (r'^to_token\.conv3\.', 'patch_embed.proj.'),
    (r'^stage(\d+)\.patch_partition\.', lambda m: f'stages.{int(m.group(1)) - 1}.downsample.'),
    (r'^stage(\d+)\.layers\.(\d+)\.([01])\.',
     lambda m: f'stages.{int(m.group(1)) - 1}.blocks.{2 * int(m.group(2)) + int(m.group(3))}.'),
    (r'\.attn\.to_qkv\.', '.attn.qkv.'),
]
OURS_TO_OFFICIAL_RULES = [
    (r'^patch_embed\.conv1\.', 'to_token.conv1.0.'),
    (r'^patch_embed\.bn1\.', 'to_token.conv1.1.'),
    (r'^patch_embed\.conv2\.', 'to_token.conv2.0.'),
    (r'^patch_embed\.bn2\.', 'to_token.conv2.1.'),
    (r'^patch_embed\.proj\.', 'to_token.conv3.'),
    (r'^stages\.(\d+)\.downsample\.', lambda m: f'stage{int(m.group(1)) + 1}.patch_partition.'),
    (r'^stages\.(\d+)\.blocks\.(\d+)\.',
     lambda m: f'stage{int(m.group(1)) + 1}.layers.{int(m.group(2)) // 2}.{int(m.group(2)) % 2}.'),
    (r'\.attn\.qkv\.', '.attn.to_qkv.'),
]

_OURS_BLOCK = re.compile(r'stages\.\d+\.blocks\.\d+\.local\.weight$')


def _is_official(sd: Mapping[str, Any]) -> bool:
    return 'to_token.conv1.0.weight' in sd


def _is_ours(sd: Mapping[str, Any]) -> bool:
    return 'patch_embed.conv1.weight' in sd and any(_OURS_BLOCK.match(k) for k in sd)


def shuffle_official_to_ours(state_dict: dict[str, Any]) -> Converted:
    """Official Shuffle Transformer -> ours: renames, 1x1-conv weights to linear ones, head and buffers dropped.

    Raises:
        ValueError: the checkpoint has the optional sinusoidal ``pos_embed`` (``has_pos_embed=True``), which no
            official config uses and this backbone does not build.
    """
    if 'pos_embed' in state_dict:
        raise ValueError('the checkpoint has a pos_embed (official has_pos_embed=True); ShuffleTransformer builds '
                         'the official configs, which have none')
    dropped: dict[str, str] = {}
    sd = drop_keys(state_dict, [
        (r'^head\.', 'classification head'),
        (r'\.relative_position_index$', 'derived buffer, rebuilt by the model'),
    ], dropped)
    sd = rename_keys(sd, OFFICIAL_TO_OURS_RULES)
    for key in [k for k in sd if re.search(_LINEAR_AS_CONV, k) and sd[k].ndim == 4]:
        sd[key] = sd[key].flatten(1)  # 1x1 conv (out, in, 1, 1) -> linear (out, in)
    return Converted(sd, 'official', dropped)


def shuffle_ours_to_official(state_dict: dict[str, Any]) -> Converted:
    """Ours -> official (headless: load it into the official model built with ``num_classes=0``).

    The 1x1 convolutions get their (out, in, 1, 1) shape back and every block its ``relative_position_index``
    buffer (rebuilt from the window its bias table implies).
    """
    sd = rename_keys(state_dict, OURS_TO_OFFICIAL_RULES)
    for key in list(sd):
        if re.search(r'\.attn\.(to_qkv|proj)\.weight$|\.mlp\.fc[12]\.weight$', key) and sd[key].ndim == 2:
            sd[key] = sd[key][:, :, None, None]  # linear (out, in) -> 1x1 conv (out, in, 1, 1)
        if key.endswith('.attn.relative_position_bias_table'):
            window = round((sd[key].shape[0] ** 0.5 + 1) / 2)
            sd[key[:-len('bias_table')] + 'index'] = relative_position_index(window)
    return Converted(sd, OURS, {})


def shuffle_ours_to_ours(state_dict: dict[str, Any]) -> Converted:
    """Ours: unchanged."""
    return Converted(dict(state_dict), OURS, {})


SHUFFLE = register_family(CheckpointFamily(
    name='shuffle',
    backbones=('ShuffleTransformer',),
    layouts=(
        Layout('official', _is_official, shuffle_official_to_ours, shuffle_ours_to_official,
               'mulinmeng/Shuffle-Transformer (to_token, stage{s}.layers.{p}.{0,1}, 1x1-conv projections)'),
        Layout(OURS, _is_ours, shuffle_ours_to_ours, None, 'vit_backbones ShuffleTransformer'),
    )))
