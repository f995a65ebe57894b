"""DeepViT: a plain ViT whose deeper blocks regenerate their attention maps by re-attention.

Paper: Zhou et al., "DeepViT: Towards Deeper Vision Transformer", arXiv:2103.11886. Reference code: the official
zhoudaquan/dvit_repo (``models/deep_vision_transformer.py``, ``models/layers.py``); timm has no DeepViT.

What the reference computes, and this code with it:

* Re-attention (the paper's Eq. 3): in a re-attention block the softmaxed map ``A = softmax(q k^T / sqrt(d))`` of
  shape (B, h, N, N) is mixed across heads by a learned (h x h) matrix with bias (``attn.reatten_matrix``, a 1x1
  conv over the head axis), normalised by a BatchNorm over the heads (``attn.var_norm``, eps 1e-5) and multiplied
  by ``reatten_scale`` before it weights the values: ``out = (BN(Theta^T A) * s) v``. ``s`` is 1, or ``1 / sqrt(d)``
  for presets with ``transform_scale`` (DeepViT-S). Attention dropout acts on ``A`` before the mixing, as the
  reference. The other blocks use plain multi-head attention. Re-attention runs on the explicit math path; plain
  blocks follow ``fused_attn``.
* Blocks: pre-norm with the reference's ``scale_adjustment`` ``r`` (0.5 in DeepViT-S/L, 1 elsewhere):
  ``x + drop_path(attn(norm1(r x))) / r``, then ``x + drop_path(mlp(norm2(r x))) / r``; LayerNorm eps 1e-6; qkv
  with bias; MLP ``fc1 -> GELU (exact) -> fc2`` of ratio 3; stochastic depth rising linearly from 0 to
  ``drop_path_rate``.
* Patch embedding: ``patch_size`` patches by one conv (16B/24B/32B), or the reference's ``PatchEmbed_CNN`` for
  DeepViT-S/L (``conv_stem``): conv 7x7 stride 2 pad 3 (no bias, 64 channels) -> BN -> ReLU -> conv 3x3 pad 1 (no
  bias) -> BN -> ReLU -> conv of kernel = stride = ``patch_size / 2`` (with bias). The last conv's input is
  zero-padded at the bottom/right to whole patches (the reference floors), so the grid is ``ceil(H / patch)``.
* A cls token and an absolute position embedding ``pos_embed`` (1, 1 + h * w, C) learned at ``pretrain_img_size``,
  resized to every input's grid as in :class:`~vit_backbones.backbones.VisionTransformer`; a final LayerNorm
  ``norm``. Init: linear weights trunc-normal std 0.02 with zero bias, cls token and position embedding
  trunc-normal std 0.02, convolutions and BatchNorms PyTorch's defaults (the reference's).

Presets (the reference's ``@register_model`` functions, all patch 16, 12 heads, MLP ratio 3, qkv bias):

====== ====================================== ===== ===== ====================== ===== ===== =========
arch   reference model                        dim   depth re-attention blocks    scale  r    stem
====== ====================================== ===== ===== ====================== ===== ===== =========
16b    ``deepvit_patch16_224_re_attn_16b``    384   16    all                    1     1     patch
24b    ``deepvit_patch16_224_re_attn_24b``    384   24    all                    1     1     patch
32b    ``deepvit_patch16_224_re_attn_32b``    384   32    all                    1     1     patch
s      ``deepvit_S`` (paper's DeepViT-S)      396   16    11-15                  d^-.5 0.5   conv
l      ``deepvit_L`` / ``deepvit_L_384``      420   32    20-31                  1     0.5   conv
====== ====================================== ===== ===== ====================== ===== ===== =========

Dense outputs: each block is a stage, so ``out_indices`` name blocks and every output is the stride-``patch`` NCHW
map of that block's patch tokens; the last block's map goes through ``norm``. ``output_cls_token=True`` returns the
final-normed cls token (the reference classifier's input) after the maps.
"""
import re
from typing import Any, Optional, Sequence, Union

import torch.nn.functional as F
from torch import Tensor, nn

from ..converters import deepvit as _deepvit_layouts  # noqa: F401  (registers the 'deepvit' checkpoint layouts)
from ..layers import PatchEmbed
from ..registry import MODELS
from .base import check_int, check_positive, resolve_arch
from .vit import VisionTransformer, ViTBlock

__all__ = ['DeepViT']

ARCHS: dict[str, dict[str, Any]] = {
    '16b': dict(embed_dim=384, depth=16, num_heads=12),
    '24b': dict(embed_dim=384, depth=24, num_heads=12),
    '32b': dict(embed_dim=384, depth=32, num_heads=12),
    's': dict(embed_dim=396, depth=16, num_heads=12, re_attention_start=11, transform_scale=True,
              scale_adjustment=0.5, conv_stem=True),
    'l': dict(embed_dim=420, depth=32, num_heads=12, re_attention_start=20, scale_adjustment=0.5, conv_stem=True),
}
ARCH_KEYS = ('embed_dim', 'depth', 'num_heads')
ARCH_DEFAULTS: dict[str, Any] = dict(mlp_ratio=3.0, re_attention_start=0, transform_scale=False,
                                     scale_adjustment=1.0, conv_stem=False)
STEM_WIDTH = 64


class ConvPatchEmbed(PatchEmbed):
    """DeepViT-S/L's convolutional patch embedding (the reference's ``PatchEmbed_CNN``, after T2T).

    ``conv1`` (7x7, stride 2) -> ``bn1`` -> ReLU -> ``conv2`` (3x3) -> ``bn2`` -> ReLU -> ``proj`` (kernel = stride
    = ``patch_size // 2``) on the stride-2 map, zero-padded at the bottom/right to whole patches.

    Args:
        in_channels: Image channels.
        embed_dim: Token channels.
        patch_size: Total stride (even).
    """

    def __init__(self, in_channels: int, embed_dim: int, patch_size: int) -> None:
        super().__init__(STEM_WIDTH, embed_dim, patch_size // 2, pad_input=True)
        self.conv1 = nn.Conv2d(in_channels, STEM_WIDTH, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(STEM_WIDTH)
        self.conv2 = nn.Conv2d(STEM_WIDTH, STEM_WIDTH, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(STEM_WIDTH)

    def forward(self, x: Tensor) -> Tensor:
        """Images (B, C, H, W) -> tokens (B, ceil(H / patch), ceil(W / patch), embed_dim)."""
        x = F.relu(self.bn1(self.conv1(x)))  # (B, 64, ceil(H / 2), ceil(W / 2))
        return super().forward(F.relu(self.bn2(self.conv2(x))))


class DeepViTBlock(ViTBlock):
    """A ViT block with optional re-attention and the reference's residual ``scale_adjustment``.

    Args:
        dim: Token channels.
        num_heads: Attention heads.
        mlp_ratio: MLP hidden width over ``dim``.
        qkv_bias: Bias in the qkv projection.
        drop: Dropout after the attention projection and in the MLP.
        attn_drop: Dropout on the softmaxed attention weights.
        drop_path: Stochastic depth of both residual branches.
        re_attention: Mix the heads' softmaxed maps (``attn.reatten_matrix``) and normalise them (``attn.var_norm``).
        reatten_scale: Factor after the re-attention norm.
        scale_adjustment: ``r``: each branch reads ``r x`` and its output is divided by ``r``.
        norm: Norm name for :func:`~vit_backbones.layers.get_norm_layer`.
        act: MLP activation name.
        fused_attn: Per-module fused/math override (re-attention always takes the math path).
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, qkv_bias: bool = True, drop: float = 0.0,
                 attn_drop: float = 0.0, drop_path: float = 0.0, re_attention: bool = True,
                 reatten_scale: float = 1.0, scale_adjustment: float = 1.0, norm: str = 'ln_eps6',
                 act: str = 'gelu', fused_attn: Optional[bool] = None) -> None:
        super().__init__(dim, num_heads, mlp_ratio, qkv_bias, drop, attn_drop, drop_path, norm=norm, act=act,
                         fused_attn=fused_attn, re_attention=re_attention, reatten_scale=reatten_scale)
        self.scale_adjustment = scale_adjustment

    def forward_tokens(self, x: Tensor, hw: tuple[int, int]) -> Tensor:
        """The block on (B, 1 + h * w, C) tokens over the grid ``hw``."""
        r = self.scale_adjustment
        if r == 1.0:
            return super().forward_tokens(x, hw)
        x = x + self.drop_path1(self.attention(self.norm1(x * r), hw)) / r
        return x + self.drop_path2(self.mlp(self.norm2(x * r))) / r

    def extra_repr(self) -> str:
        return f'scale_adjustment={self.scale_adjustment}' if self.scale_adjustment != 1.0 else ''


def _check_arch(cfg: dict[str, Any]) -> None:
    """Validate the DeepViT entries of a resolved arch (the ViT ones are checked by :class:`VisionTransformer`)."""
    start = cfg['re_attention_start']
    depth = check_int("arch['depth']", cfg['depth'])
    if isinstance(start, bool) or not isinstance(start, int) or not 0 <= start <= depth:
        raise ValueError(f"arch['re_attention_start'] must be a block index in [0, depth] (depth: no "
                         f're-attention), got {start!r}')
    for key in ('transform_scale', 'conv_stem'):
        if not isinstance(cfg[key], bool):
            raise ValueError(f"arch['{key}'] must be True or False, got {cfg[key]!r}")
    check_positive("arch['scale_adjustment']", cfg['scale_adjustment'])


@MODELS.register_module()
class DeepViT(VisionTransformer):
    """DeepViT backbone: one stride-``patch_size`` NCHW map per block in ``out_indices``.

    Args:
        arch: ``'16b'``, ``'24b'``, ``'32b'``, ``'s'`` (DeepViT-S), ``'l'`` (DeepViT-L; ``deepvit_L_384`` is
            ``'l'`` with ``pretrain_img_size=384``), or a dict with ``embed_dim``, ``depth``, ``num_heads`` and
            optionally ``mlp_ratio`` (3.0), ``re_attention_start`` (first re-attention block, 0; ``depth``: none),
            ``transform_scale`` (scale re-attention by ``1 / sqrt(head_dim)``, False), ``scale_adjustment``
            (the residual factor ``r``, 1.0) and ``conv_stem`` (the convolutional patch embedding, False).
        patch_size: Patch side (total stride of the patch embedding; even with ``conv_stem``).
        in_channels: Input image channels.
        pretrain_img_size: Image size (int or (H, W)) the position embedding is learned for.
        qkv_bias: Bias in the qkv projections.
        drop_rate: Dropout after the position embedding, the attention projections and in the MLPs.
        attn_drop_rate: Dropout on attention weights (before the re-attention mixing).
        drop_path_rate: Stochastic depth, rising linearly from 0 over the blocks.
        final_norm: LayerNorm on the last block's output.
        output_cls_token: Return the last output's cls token, (B, C), after the maps.
        interpolate_mode: Interpolation of the position embedding to other grids.
        interpolate_antialias: Antialias when the embedding shrinks (timm's resize: True).
        norm: Norm name (``'ln_eps6'``: LayerNorm eps 1e-6, the reference's).
        act: MLP activation name.
        out_indices: Blocks to output (negative counts from the end); later blocks are not built.
        frozen_stages: -1 nothing, 0 the patch embedding, cls token and position embedding, k those and blocks
            0..k-1 (and ``norm`` with the last block).
        norm_eval: Keep the BatchNorms (conv stem, re-attention) in eval mode while training.
        with_cp: Non-reentrant activation checkpointing of every block (a re-attention BatchNorm in training mode
            updates its running statistics again when its block is recomputed).
        fused_attn: ``F.scaled_dot_product_attention`` (True), the math path (False) or the package default (None)
            for the plain-attention blocks; re-attention blocks always take the math path.
        init_cfg: e.g. ``dict(type='Pretrained', checkpoint=PATH)`` with an official DeepViT checkpoint (the timm
            training script's ``.pth.tar``, ``state_dict`` or ``state_dict_ema``) or one of ours.
        cls_output: ``'avg_featmap'`` or ``'cls_token'``, as :class:`VisionTransformer`.
    """

    checkpoint_family = 'deepvit'

    def __init__(self, arch: Union[str, dict] = 's', patch_size: int = 16, in_channels: int = 3,
                 pretrain_img_size: Union[int, Sequence[int]] = 224, qkv_bias: bool = True, drop_rate: float = 0.0,
                 attn_drop_rate: float = 0.0, drop_path_rate: float = 0.0, final_norm: bool = True,
                 output_cls_token: bool = False, interpolate_mode: str = 'bicubic',
                 interpolate_antialias: bool = True, norm: str = 'ln_eps6', act: str = 'gelu',
                 out_indices: Union[int, Sequence[int]] = -1, frozen_stages: int = -1, norm_eval: bool = False,
                 with_cp: bool = False, fused_attn: Optional[bool] = None,
                 init_cfg: Union[dict, list, None] = None,
                 cls_output: Optional[str] = None) -> None:
        cfg = dict(ARCH_DEFAULTS, **resolve_arch(arch, ARCHS, ARCH_KEYS, optional=tuple(ARCH_DEFAULTS)))
        _check_arch(cfg)
        if cfg['conv_stem'] and (check_int('patch_size', patch_size, minimum=2) % 2):
            raise ValueError(f'patch_size must be even with the conv stem (a stride-2 conv, then patches of '
                             f'patch_size / 2), got {patch_size}')
        vit_arch = {k: cfg[k] for k in (*ARCH_KEYS, 'mlp_ratio')}
        # read by build_patch_embed / build_block while the ViT builds its parts
        self.re_attention_start = cfg['re_attention_start']
        self.conv_stem = cfg['conv_stem']
        self.transform_scale = cfg['transform_scale']
        self.scale_adjustment = cfg['scale_adjustment']
        super().__init__(vit_arch, patch_size, in_channels, pretrain_img_size, qkv_bias=qkv_bias,
                         drop_rate=drop_rate, attn_drop_rate=attn_drop_rate, drop_path_rate=drop_path_rate,
                         final_norm=final_norm, output_cls_token=output_cls_token,
                         interpolate_mode=interpolate_mode, interpolate_antialias=interpolate_antialias, norm=norm,
                         act=act, out_indices=out_indices, frozen_stages=frozen_stages, norm_eval=norm_eval,
                         with_cp=with_cp, fused_attn=fused_attn, init_cfg=init_cfg, cls_output=cls_output)
        if self.conv_stem:
            self.stem_conv_keys = ('patch_embed.conv1.weight',)

    def build_patch_embed(self, in_channels: int, dim: int, patch_size: int, bias: bool) -> nn.Module:
        """The convolutional stem of DeepViT-S/L (``conv_stem``), else the plain patch conv."""
        if self.conv_stem:
            return ConvPatchEmbed(in_channels, dim, patch_size)
        return super().build_patch_embed(in_channels, dim, patch_size, bias)

    def build_block(self, index: int, **kwargs: Any) -> nn.Module:
        """A DeepViT block: re-attention from ``re_attention_start`` on, the residual factor in every block."""
        head_dim = kwargs['dim'] // kwargs['num_heads']
        return DeepViTBlock(kwargs['dim'], kwargs['num_heads'], kwargs['mlp_ratio'], kwargs['qkv_bias'],
                            kwargs['drop'], kwargs['attn_drop'], kwargs['drop_path'],
                            re_attention=index >= self.re_attention_start,
                            reatten_scale=head_dim ** -0.5 if self.transform_scale else 1.0,
                            scale_adjustment=self.scale_adjustment, norm=kwargs['norm'], act=kwargs['act'],
                            fused_attn=kwargs['fused_attn'])

    def random_init(self) -> None:
        """The reference's init: linear weights trunc-normal std 0.02 (zero bias), LayerNorms 1/0, cls token and
        position embedding trunc-normal std 0.02; convolutions (stem, re-attention) and BatchNorms PyTorch's."""
        super().random_init()
        nn.init.trunc_normal_(self.cls_token, std=0.02)

    # ---- loading --------------------------------------------------------------------------------------
    def unbuilt_reason(self, key: str) -> Optional[str]:
        """Why the checkpoint key ``key`` (absent from this model) belongs to a part not built here, or None."""
        if key.startswith('norm.') and isinstance(self.norm, nn.Identity):
            return 'final norm (built with the last block and final_norm)'
        match = re.match(r'blocks\.(\d+)\.', key)
        if match and int(match.group(1)) >= len(self.blocks):
            return 'a block after the last one in out_indices (not built)'
        return None
