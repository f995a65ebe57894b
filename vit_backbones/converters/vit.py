"""Plain ViT checkpoint layouts <-> ours.

Layouts:
    * ``samvit``: timm ``samvit_*`` (the SAM image encoder: ``pos_embed`` of shape (1, h, w, C), per-block
      ``attn.rel_pos_{h,w}``, a conv ``neck``) and the official Segment Anything checkpoint (``image_encoder.``
      prefix, ``mlp.lin{1,2}``; the prompt encoder and mask decoder are left out).
    * ``mmpretrain``: mmpretrain's ``VisionTransformer`` and ``DistilledVisionTransformer`` (``patch_embed.projection``,
      ``layers.{i}.ln{1,2}``, ``attn.qkv`` / ``attn.proj``, ``ffn.layers.0.0`` / ``ffn.layers.1``, LayerScale
      ``attn.gamma1.weight`` / ``ffn.gamma2.weight``, final norm ``ln1``; ``ln2``, the norm of the pooled
      ``out_type='avg_featmap'`` feature, is left out). ``pre_norm=True`` (CLIP) models are refused: ours has no
      norm before the blocks.
    * ``mm``: mmseg's ``VisionTransformer`` (the same names, with ``attn.attn.in_proj_*`` / ``attn.attn.out_proj``).
    * ``timm``: timm ``vit_*`` / ``deit_*`` / ``deit_*_distilled_*`` and MAE checkpoints that still hold a
      classifier (``head``, ``head_dist``, ``fc_norm``) or MAE's decoder and ``mask_token``: those are left out.
    * ours: timm's names (``patch_embed.proj``, ``cls_token``, ``dist_token``, ``pos_embed`` (1, P + h*w, C),
      ``blocks.{i}.{norm1,attn.qkv,attn.proj,ls1.gamma,norm2,mlp.fc1,mlp.fc2,ls2.gamma}``, ``norm``), so a headless
      timm state dict is already in our layout.

Position embeddings keep their learned grid here; the backbone resizes them to its own on load.
"""
import math
import re
from typing import Any, Mapping

from .common import CheckpointMismatchError, Converted, drop_keys, rename_keys
from .registry import OURS, CheckpointFamily, Layout, register_family

MM_TO_OURS_RULES = [
    (r'^patch_embed\.projection\.', 'patch_embed.proj.'),
    (r'^layers\.(\d+)\.', r'blocks.\1.'),
    (r'\.ln([12])\.', r'.norm\1.'),
    (r'\.attn\.attn\.in_proj_(weight|bias)$', r'.attn.qkv.\1'),
    (r'\.attn\.attn\.out_proj\.', '.attn.proj.'),
    (r'\.ffn\.layers\.0\.0\.', '.mlp.fc1.'),
    (r'\.ffn\.layers\.1\.', '.mlp.fc2.'),
    (r'\.attn\.gamma1\.weight$', '.ls1.gamma'),
    (r'\.ffn\.gamma2\.weight$', '.ls2.gamma'),
    (r'^ln1\.', 'norm.'),
]
OURS_TO_MM_RULES = [
    (r'^patch_embed\.proj\.', 'patch_embed.projection.'),
    (r'^blocks\.(\d+)\.', r'layers.\1.'),
    (r'\.norm([12])\.', r'.ln\1.'),
    (r'\.attn\.qkv\.(weight|bias)$', r'.attn.attn.in_proj_\1'),
    (r'\.attn\.proj\.', '.attn.attn.out_proj.'),
    (r'\.mlp\.fc1\.', '.ffn.layers.0.0.'),
    (r'\.mlp\.fc2\.', '.ffn.layers.1.'),
    (r'^norm\.', 'ln1.'),
]
# mmseg's names without its attention renames: mmpretrain keeps timm's attn.qkv / attn.proj, and has LayerScale.
OURS_TO_MMPRETRAIN_RULES = [
    (r'^patch_embed\.proj\.', 'patch_embed.projection.'),
    (r'^blocks\.(\d+)\.', r'layers.\1.'),
    (r'\.norm([12])\.', r'.ln\1.'),
    (r'\.mlp\.fc1\.', '.ffn.layers.0.0.'),
    (r'\.mlp\.fc2\.', '.ffn.layers.1.'),
    (r'\.ls1\.gamma$', '.attn.gamma1.weight'),
    (r'\.ls2\.gamma$', '.ffn.gamma2.weight'),
    (r'^norm\.', 'ln1.'),
]
MMPRETRAIN_ONLY_RULES = [(r'^head\.', 'classification head'),
                         (r'^ln2\.', "norm of mmpretrain's pooled avg_featmap feature")]
TIMM_ONLY_RULES = [
    (r'^head\.', 'classification head'),
    (r'^head_dist\.', 'distillation head'),
    (r'^fc_norm\.', 'norm of the pooled classifier input'),
    (r'^pre_logits\.', 'pre-logits layer of the classifier'),
    (r'^attn_pool\.', 'attention-pooling classifier head'),
    (r'^mask_token$', 'MAE pre-training mask token'),
    (r'^decoder', 'MAE pre-training decoder'),
]
SAM_PARTS = [(r'^(prompt_encoder|mask_decoder)\.', 'SAM prompt encoder / mask decoder'),
             (r'^neck\.', 'SAM encoder neck (a dense head brings its own)'),
             (r'^head\.', 'classification head')]


ADAPTER_PREFIXES = ('spm.', 'interactions.', 'level_embed')  # a ViT-Adapter checkpoint (family 'vit_adapter')
HYBRID_PREFIXES = ('patch_embed.backbone.',)  # a hybrid (CNN-stem) ViT checkpoint (family 'vit_hybrid')
CAIT_KEYS = ('blocks.0.attn.proj_l.weight',)  # talking-heads attention: a CaiT checkpoint (family 'cait')
CEIT_KEYS = ('blocks.0.leff.conv1.weight',)  # locally-enhanced feed-forward: a CeiT checkpoint (family 'ceit')
CPVT_PEG = re.compile(r'blocks\.\d+\.pos_block\.')  # a position-encoding generator: CPVT (family 'cpvt')
DEEPVIT_MARKS = ('.attn.reatten_matrix.', 'patch_embed.conv1.')  # re-attention or a conv stem: family 'deepvit'


def _has_vit_blocks(sd: Mapping[str, Any]) -> bool:
    return 'patch_embed.proj.weight' in sd and 'blocks.0.attn.qkv.weight' in sd and \
        not any(k.startswith(ADAPTER_PREFIXES + HYBRID_PREFIXES) for k in sd) and \
        not any(k in sd for k in CAIT_KEYS + CEIT_KEYS) and not any(CPVT_PEG.match(k) for k in sd) and \
        not any(mark in k for k in sd for mark in DEEPVIT_MARKS)


def _is_samvit(sd: Mapping[str, Any]) -> bool:
    if 'image_encoder.patch_embed.proj.weight' in sd:
        return True
    pos = sd.get('pos_embed')
    return _has_vit_blocks(sd) and ('neck.0.weight' in sd or getattr(pos, 'ndim', 3) == 4)


def _is_mm(sd: Mapping[str, Any]) -> bool:
    return 'patch_embed.projection.weight' in sd and 'layers.0.ln1.weight' in sd and \
        ('layers.0.attn.attn.in_proj_weight' in sd or 'layers.0.attn.qkv.weight' in sd)


def _is_mmpretrain(sd: Mapping[str, Any]) -> bool:
    return _is_mm(sd) and 'layers.0.attn.qkv.weight' in sd


def _is_timm(sd: Mapping[str, Any]) -> bool:
    return _has_vit_blocks(sd) and any(re.search(p, k) for k in sd for p, _ in TIMM_ONLY_RULES)


def _is_ours(sd: Mapping[str, Any]) -> bool:
    return _has_vit_blocks(sd) and not _is_samvit(sd)


def samvit_to_ours(state_dict: dict[str, Any]) -> Converted:
    """timm ``samvit_*`` or official SAM -> ours: the (1, h, w, C) position grid flattened to (1, h*w, C)."""
    dropped: dict[str, str] = {}
    sd = dict(state_dict)
    if 'image_encoder.patch_embed.proj.weight' in sd:
        sd = {k[len('image_encoder.'):] if k.startswith('image_encoder.') else k: v for k, v in sd.items()}
        sd = rename_keys(sd, [(r'\.mlp\.lin([12])\.', r'.mlp.fc\1.')])
    sd = drop_keys(sd, SAM_PARTS, dropped)
    pos = sd.get('pos_embed')
    if pos is not None and pos.ndim == 4:
        sd['pos_embed'] = pos.reshape(1, -1, pos.shape[-1])  # (1, h, w, C) -> (1, h*w, C)
    return Converted(sd, 'samvit', dropped)


def ours_to_samvit(state_dict: dict[str, Any]) -> Converted:
    """Ours (the token-free ViTDet / SAM form) -> timm ``samvit_*`` keys, without the SAM neck.

    Load the result into timm's model with ``strict=False`` (its neck keys are missing) or into one built with
    ``neck_chans=0``-style options.
    """
    if 'cls_token' in state_dict:
        raise CheckpointMismatchError('timm samvit has no cls token: export a with_cls_token=False model, or export '
                                      "this one with --to timm")
    sd = dict(state_dict)
    pos = sd.get('pos_embed')
    if pos is not None:
        side = math.isqrt(pos.shape[1])
        if side * side != pos.shape[1]:
            raise CheckpointMismatchError(f'samvit needs a square position grid, got {pos.shape[1]} rows')
        sd['pos_embed'] = pos.reshape(1, side, side, pos.shape[-1])  # (1, h*w, C) -> (1, h, w, C)
    return Converted(sd, OURS, {})


def mm_to_ours(state_dict: dict[str, Any]) -> Converted:
    """mmseg / mmpretrain ``VisionTransformer`` -> ours (timm's names; the in-projection is timm's qkv)."""
    dropped: dict[str, str] = {}
    sd = drop_keys(state_dict, [(r'^head\.', 'classification head')], dropped)
    return Converted(rename_keys(sd, MM_TO_OURS_RULES), 'mm', dropped)


def mmpretrain_to_ours(state_dict: dict[str, Any]) -> Converted:
    """mmpretrain ``VisionTransformer`` / ``DistilledVisionTransformer`` -> ours (timm's names)."""
    if any(k.startswith('pre_norm.') for k in state_dict):
        raise CheckpointMismatchError("an mmpretrain VisionTransformer with pre_norm=True (CLIP): its LayerNorm "
                                      "before the blocks ('pre_norm.*') has no counterpart in ours")
    dropped: dict[str, str] = {}
    sd = drop_keys(state_dict, MMPRETRAIN_ONLY_RULES, dropped)
    return Converted(rename_keys(sd, MM_TO_OURS_RULES), 'mmpretrain', dropped)


def ours_to_mmpretrain(state_dict: dict[str, Any]) -> Converted:
    """Ours -> mmpretrain ``VisionTransformer`` keys (``DistilledVisionTransformer`` with a ``dist_token``).

    mmpretrain has no windowed or relative-position attention. A ``patch_bias=False`` model exports without
    ``patch_embed.projection.bias``, which mmpretrain builds unless ``pre_norm=True``.
    """
    if any('.attn.rel_pos_' in k for k in state_dict):
        raise CheckpointMismatchError("mmpretrain's VisionTransformer has no relative-position attention "
                                      '(attn.rel_pos_h / rel_pos_w)')
    return Converted(rename_keys(state_dict, OURS_TO_MMPRETRAIN_RULES), OURS, {})


def ours_to_mm(state_dict: dict[str, Any]) -> Converted:
    """Ours -> mmseg ``VisionTransformer`` keys (``final_norm=True``, ``with_cls_token=True``)."""
    if 'cls_token' not in state_dict or 'dist_token' in state_dict:
        raise CheckpointMismatchError("mmseg's VisionTransformer has exactly one cls token; this state dict has "
                                      f"{'a distillation token too' if 'dist_token' in state_dict else 'none'}")
    return Converted(rename_keys(state_dict, OURS_TO_MM_RULES), OURS, {})


def timm_to_ours(state_dict: dict[str, Any]) -> Converted:
    """timm ViT / DeiT / MAE -> ours: the same names, classifier and MAE decoder left out."""
    dropped: dict[str, str] = {}
    return Converted(drop_keys(state_dict, TIMM_ONLY_RULES, dropped), 'timm', dropped)


def ours_to_timm(state_dict: dict[str, Any]) -> Converted:
    """Ours -> timm ``VisionTransformer`` (headless: build it with ``num_classes=0``)."""
    if 'cls_token' not in state_dict:
        raise CheckpointMismatchError('a token-free (with_cls_token=False) ViT is timm samvit-shaped: export it '
                                      'with --to samvit')
    return Converted(dict(state_dict), OURS, {})


def vit_ours_to_ours(state_dict: dict[str, Any]) -> Converted:
    """Ours (or a headless timm ViT, which has the same keys): unchanged."""
    return Converted(dict(state_dict), OURS, {})


VIT = register_family(CheckpointFamily(
    name='vit',
    backbones=('VisionTransformer',),
    layouts=(
        Layout('samvit', _is_samvit, samvit_to_ours, ours_to_samvit,
               'timm samvit_* / official Segment Anything image encoder (pos_embed (1, h, w, C), rel_pos, neck)'),
        Layout('mmpretrain', _is_mmpretrain, mmpretrain_to_ours, ours_to_mmpretrain,
               'mmpretrain VisionTransformer / DistilledVisionTransformer (layers.{i}.ln1, attn.qkv, ffn.layers)'),
        Layout('mm', _is_mm, mm_to_ours, ours_to_mm,
               'mmseg VisionTransformer (layers.{i}.ln1, attn.attn.in_proj_weight, ffn.layers)'),
        Layout('timm', _is_timm, timm_to_ours, ours_to_timm,
               'timm vit_* / deit_* / MAE with a classifier or decoder (head, head_dist, fc_norm, decoder_*)'),
        Layout(OURS, _is_ours, vit_ours_to_ours, None, 'vit_backbones VisionTransformer (= headless timm keys)'),
    )))
