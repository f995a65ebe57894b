"""CeiT checkpoint layouts <-> ours.

CeiT (arXiv:2103.11816) has no official code and no public weights; these layouts load models trained with the
most widely used implementation, or ours.

Layouts:
    * ``coeusguo``: coeusguo/ceit ``ceit_model.py`` (``CeIT``): the I2T stem as ``i2t.backbone.{conv,bn}`` and
      ``i2t.proj``; ``cls_token``, ``pos_embed`` (1, 1 + h*w, C); ``blocks.{i}`` with ``norm{1,2}``,
      ``attn.{qkv,proj}``, ``leff.{conv,bn}{1,2,3}``; the LCA as ``lca.{norm1,attn.qkv,attn.proj,norm2}``,
      ``lca.feedforward.fc{1,2}`` and ``pos_layer_embed``; the final ``norm`` and the classifier ``head`` (left
      out). That implementation has no GELU after LeFF's last BatchNorm: load its checkpoints into
      ``CeiT(..., leff_out_act=False)``.
    * ours: the same names except ``patch_embed.{conv,bn,proj}`` for the stem, ``lca.mlp.fc{1,2}`` and
      ``lca.layer_embed``.

Position embeddings keep their learned grid here; the backbone resizes them to its own on load.
"""
from typing import Any, Mapping

from .common import Converted, drop_keys, rename_keys
from .registry import OURS, CheckpointFamily, Layout, register_family

COEUSGUO_TO_OURS_RULES = [
    (r'^i2t\.backbone\.', 'patch_embed.'),
    (r'^i2t\.proj\.', 'patch_embed.proj.'),
    (r'^lca\.feedforward\.', 'lca.mlp.'),
    (r'^pos_layer_embed$', 'lca.layer_embed'),
]
OURS_TO_COEUSGUO_RULES = [
    (r'^patch_embed\.proj\.', 'i2t.proj.'),
    (r'^patch_embed\.', 'i2t.backbone.'),
    (r'^lca\.mlp\.', 'lca.feedforward.'),
    (r'^lca\.layer_embed$', 'pos_layer_embed'),
]
COEUSGUO_ONLY_RULES = [(r'^head\.', 'classification head')]
LEFF_KEY = 'blocks.0.leff.conv1.weight'  # a locally-enhanced feed-forward: a CeiT checkpoint


def _is_coeusguo(sd: Mapping[str, Any]) -> bool:
    return 'i2t.backbone.conv.weight' in sd and LEFF_KEY in sd


def _is_ours(sd: Mapping[str, Any]) -> bool:
    return 'patch_embed.conv.weight' in sd and LEFF_KEY in sd


def ceit_coeusguo_to_ours(state_dict: dict[str, Any]) -> Converted:
    """coeusguo/ceit -> ours: the stem under ``patch_embed``, the LCA's MLP and layer embedding renamed; the
    classifier is left out."""
    dropped: dict[str, str] = {}
    sd = drop_keys(state_dict, COEUSGUO_ONLY_RULES, dropped)
    return Converted(rename_keys(sd, COEUSGUO_TO_OURS_RULES), 'coeusguo', dropped)


def ceit_ours_to_coeusguo(state_dict: dict[str, Any]) -> Converted:
    """Ours -> coeusguo/ceit ``CeIT`` (headless: build it with ``num_classes=0``).

    A model built with ``output_cls_token=True`` exports every key that implementation has; a dense-only one lacks
    the LCA, its norm (and blocks after its last output): load that with ``strict=False``. The exported model
    computes ours only with ``leff_out_act=False``.
    """
    return Converted(rename_keys(state_dict, OURS_TO_COEUSGUO_RULES), OURS, {})


def ceit_ours_to_ours(state_dict: dict[str, Any]) -> Converted:
    """Ours: unchanged."""
    return Converted(dict(state_dict), OURS, {})


CEIT = register_family(CheckpointFamily(
    name='ceit',
    backbones=('CeiT',),
    layouts=(
        Layout('coeusguo', _is_coeusguo, ceit_coeusguo_to_ours, ceit_ours_to_coeusguo,
               'coeusguo/ceit CeIT (i2t.backbone, blocks.{i}.leff, lca.feedforward, pos_layer_embed, head)'),
        Layout(OURS, _is_ours, ceit_ours_to_ours, None,
               'vit_backbones CeiT (patch_embed.{conv,bn,proj}, lca.mlp, lca.layer_embed)'),
    )))
