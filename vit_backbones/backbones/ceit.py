"""CeiT (Convolution-enhanced image Transformer) for dense prediction.

Paper: Yuan et al., "Incorporating Convolution Designs into Visual Transformers", ICCV 2021, arXiv:2103.11816.
There is no official code release and no public weights. The most widely used implementation is coeusguo/ceit
(``ceit_model.py``, timm-style ``ceit_{tiny,small,base}_patch16_224``); rishikksh20/CeiT-pytorch (after lucidrains'
vit-pytorch) leaves the LCA unfinished. This file follows the paper's equations and, where the paper is silent,
coeusguo/ceit; the two differ in one place, noted below.

What the paper computes, and this code with it:

* Image-to-Tokens (``patch_embed``): ``I2T(x) = MaxPool(BN(Conv(x)))``: a 7x7 conv of stride 2, padding 3, no
  bias, to ``stem_channels`` (64: the paper's parameter counts need 64, see below) -> BatchNorm (eps 1e-5) -> max
  pool 3x3, stride 2, padding 1 (no activation anywhere), then patches of 4x4 (kernel = stride = 4 conv with bias,
  ``patch_embed.proj``) to ``embed_dim``: total stride 16, the same token count as a ViT-/16. Conv and pool use
  PyTorch's floor rule with their padding, which is ``ceil(x / 2)`` each; the pooled map is zero-padded at the
  bottom/right to whole 4x4 patches (the reference floors there), so the token grid is ``ceil(H / 16) x
  ceil(W / 16)`` at any input size (1x1 included).
* A learned cls token and absolute position embedding (1, 1 + h * w, C) as DeiT, resized to every input's grid
  (bicubic, antialiased when shrinking: :class:`.VisionTransformer`'s rule).
* Blocks: pre-norm ``x + MSA(LN(x))``, then ``x + LeFF(LN(x))``; LayerNorm eps 1e-6, qkv with bias, stochastic
  depth rising linearly from 0 to ``drop_path_rate``.
* Locally-enhanced feed-forward (``leff``): the normalised tokens are split into the cls token ``x_c`` and the patch
  tokens; the patch tokens go ``Linear1`` (expand by ``mlp_ratio`` = 4, as a 1x1 conv ``conv1``) -> BN -> GELU ->
  restore the (h, w) map -> depth-wise ``leff_kernel_size`` conv (3x3, padding 1, with bias, ``conv2``) -> BN ->
  GELU -> flatten -> ``Linear2`` (``conv3``) -> BN -> GELU; then ``Concat(x_c, patches)``. The cls row of LeFF's
  output is its (normalised) input, so the residual gives ``x_cls + LN(x)_cls`` (the paper's equations and
  coeusguo agree). The one difference: the paper puts GELU after the last BN, coeusguo does not
  (``leff_out_act=False`` gives coeusguo's form). No dropout inside LeFF (as coeusguo).
* Layer-wise class-token attention (``lca``, after the last block): the cls tokens of all ``depth`` blocks (block
  outputs) form a sequence ``X`` (B, depth, C), plus a learned per-layer embedding (coeusguo's
  ``pos_layer_embed``, zero-initialised; ``lca_layer_embed=False`` drops it: the paper does not mention it);
  only the last cls token queries: ``c = X_L + MSA_q=last(LN(X))``, then ``c + FFN(LN(c))`` (GELU MLP of ratio 4),
  no stochastic depth; a final LayerNorm ``norm`` gives the classifier's token.

Parameters and multiply-accumulates (classifier form with a 1000-class head, 224x224, checked in
``tests/backbones/test_ceit.py``): CeiT-T 6.36M, CeiT-S 24.20M (paper: 6.4M, 24.2M; a 32-channel stem would give
6.25M and 24.00M), CeiT-B 94.4M (not in the paper). ``torch.utils.flop_counter`` counts 1.40G / 4.76G / 17.75G
MACs (its FLOPs / 2) with the attention products; the convs and linears alone (what module-hook counters such as
thop see) are 1.22G / 4.40G / 17.04G, the convention closest to the paper's 1.2G / 4.5G.

Dense outputs: each block is a stage, so ``out_indices`` name blocks and every output is the stride-16 NCHW map of
that block's patch tokens (no norm: CeiT has no final norm on patch tokens). The LCA serves classification only:
it is built and run only with ``output_cls_token=True`` (which builds every block), and its final-normed token
(B, C) follows the maps. Parts a configuration does not build are left out of a loaded checkpoint with a reason.
"""
import re
from typing import Any, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from ..converters import ceit as _ceit_layouts  # noqa: F401  (registers the 'ceit' checkpoint layouts)
from ..layers import Attention, BackboneStage, DropPath, Mlp, PatchEmbed, get_act_layer, get_norm_layer
from ..registry import MODELS
from .base import Freezable, check_int, resolve_arch
from .vit import VisionTransformer, ViTAttention

__all__ = ['CeiT']

# The paper's CeiT-T / -S and coeusguo's -B (DeiT's widths, depth 12, MLP ratio 4).
ARCHS: dict[str, dict[str, Any]] = {
    'tiny': dict(embed_dim=192, depth=12, num_heads=3),
    'small': dict(embed_dim=384, depth=12, num_heads=6),
    'base': dict(embed_dim=768, depth=12, num_heads=12),
}
ARCH_KEYS = ('embed_dim', 'depth', 'num_heads')
ARCH_OPTIONAL = ('mlp_ratio',)
STRIDE = 16  # conv /2, max pool /2, patches /4
I2T_PATCH = 4


class Image2Tokens(PatchEmbed):
    """I2T: conv 7x7/2 (no bias) -> BatchNorm -> max pool 3x3/2, then 4x4 patches (``proj``) of the pooled map.

    Args:
        in_channels: Image channels.
        embed_dim: Token channels.
        stem_channels: Channels of the conv / BatchNorm / pool map.
    """

    def __init__(self, in_channels: int, embed_dim: int, stem_channels: int = 64) -> None:
        super().__init__(stem_channels, embed_dim, I2T_PATCH, pad_input=True, bias=True)
        self.conv = nn.Conv2d(in_channels, stem_channels, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn = nn.BatchNorm2d(stem_channels)
        self.pool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        """Images (B, C, H, W) -> tokens (B, ceil(H / 16), ceil(W / 16), embed_dim)."""
        return super().forward(self.pool(self.bn(self.conv(x))))


class LeFF(nn.Module):
    """Locally-enhanced feed-forward on (B, 1 + h * w, C) tokens: the cls token passes, the patch tokens go
    ``act(BN(conv1))`` -> depth-wise ``act(BN(conv2))`` -> ``BN(conv3)`` (+ ``act`` with ``out_act``) on their map.

    Args:
        dim: Token channels.
        hidden: Expanded channels.
        kernel_size: Depth-wise kernel side (odd).
        act: Activation name.
        out_act: Activation after the last BatchNorm (the paper: True; coeusguo/ceit: False).
    """

    def __init__(self, dim: int, hidden: int, kernel_size: int = 3, act: str = 'gelu', out_act: bool = True) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(dim, hidden, kernel_size=1)
        self.bn1 = nn.BatchNorm2d(hidden)
        self.conv2 = nn.Conv2d(hidden, hidden, kernel_size, padding=kernel_size // 2, groups=hidden)
        self.bn2 = nn.BatchNorm2d(hidden)
        self.conv3 = nn.Conv2d(hidden, dim, kernel_size=1)
        self.bn3 = nn.BatchNorm2d(dim)
        self.act = get_act_layer(act)()
        self.out_act = self.act if out_act else nn.Identity()

    def forward(self, x: Tensor, hw: tuple[int, int]) -> Tensor:
        """(B, 1 + h * w, C) tokens over the grid ``hw`` -> (B, 1 + h * w, C)."""
        B, N, C = x.shape
        cls, patches = x[:, :1], x[:, 1:]
        y = patches.transpose(1, 2).reshape(B, C, *hw)  # (B, N - 1, C) -> (B, C, N - 1) -> (B, C, h, w)
        y = self.act(self.bn1(self.conv1(y)))
        y = self.act(self.bn2(self.conv2(y)))
        y = self.out_act(self.bn3(self.conv3(y)))
        y = y.flatten(2).transpose(1, 2)  # (B, C, h, w) -> (B, C, N - 1) -> (B, N - 1, C)
        return torch.cat([cls, y], dim=1)


class CeiTBlock(BackboneStage):
    """``x + MSA(LN(x))``, then ``x + LeFF(LN(x))``; in this backbone each block is a stage of its own.

    Args:
        dim: Token channels.
        num_heads: Attention heads.
        mlp_ratio: LeFF expansion over ``dim``.
        qkv_bias: Bias in the qkv projection.
        drop: Dropout after the attention projection.
        attn_drop: Dropout on attention weights.
        drop_path: Stochastic depth of both residual branches.
        kernel_size: LeFF depth-wise kernel side.
        out_act: Activation after LeFF's last BatchNorm.
        norm: Norm name for :func:`~vit_backbones.layers.get_norm_layer`.
        act: Activation name.
        fused_attn: Per-module fused/math override.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True, drop: float = 0.0,
                 attn_drop: float = 0.0, drop_path: float = 0.0, kernel_size: int = 3, out_act: bool = True,
                 norm: str = 'ln_eps6', act: str = 'gelu', fused_attn: Optional[bool] = None) -> None:
        super().__init__()
        norm_layer = get_norm_layer(norm)
        self.norm1 = norm_layer(dim)
        self.attn = ViTAttention(dim, num_heads, qkv_bias, attn_drop, drop, fused_attn=fused_attn)
        self.drop_path1 = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.leff = LeFF(dim, int(dim * mlp_ratio), kernel_size, act, out_act)
        self.drop_path2 = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward_tokens(self, x: Tensor, hw: tuple[int, int]) -> Tensor:
        """The block on (B, 1 + h * w, C) tokens whose last h * w lie on the grid ``hw``."""
        x = x + self.drop_path1(self.attn(self.norm1(x)))
        return x + self.drop_path2(self.leff(self.norm2(x), hw))

    def forward(self, x: Tensor, hw: tuple[int, int]) -> Tensor:
        """:meth:`forward_tokens`, under activation checkpointing when ``with_cp`` is set."""
        return self.run_block(self.forward_tokens, x, hw)


class LayerClassAttention(nn.Module):
    """LCA: the last of the blocks' cls tokens attends over all of them, then an MLP; only it is updated.

    Args:
        dim: Token channels.
        depth: Number of cls tokens (blocks).
        num_heads: Attention heads.
        mlp_ratio: MLP hidden width over ``dim``.
        qkv_bias: Bias in the qkv projection.
        drop: Dropout after the attention projection and in the MLP.
        attn_drop: Dropout on attention weights.
        layer_embed: Add a learned per-layer embedding to the cls tokens first (coeusguo/ceit).
        norm: Norm name.
        act: MLP activation name.
        fused_attn: Per-module fused/math override.
    """

    def __init__(self, dim: int, depth: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 drop: float = 0.0, attn_drop: float = 0.0, layer_embed: bool = True, norm: str = 'ln_eps6',
                 act: str = 'gelu', fused_attn: Optional[bool] = None) -> None:
        super().__init__()
        norm_layer = get_norm_layer(norm)
        self.layer_embed = nn.Parameter(torch.zeros(1, depth, dim)) if layer_embed else None
        self.norm1 = norm_layer(dim)
        self.attn = Attention(dim, num_heads, qkv_bias, attn_drop, drop, fused_attn=fused_attn)
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=get_act_layer(act), drop=drop)

    def forward(self, x: Tensor) -> Tensor:
        """The blocks' cls tokens (B, depth, C) -> the updated last one (B, 1, C)."""
        if self.layer_embed is not None:
            x = x + self.layer_embed
        q, k, v = self.attn.project(self.norm1(x))  # each (B, h, depth, d)
        cls = x[:, -1:] + self.attn.out(self.attn.attend(q[:, :, -1:], k, v))  # the last token queries: (B, 1, C)
        return cls + self.mlp(self.norm2(cls))


@MODELS.register_module()
class CeiT(VisionTransformer):
    """CeiT backbone: one stride-16 NCHW map per block in ``out_indices``.

    Args:
        arch: ``'tiny'``, ``'small'``, ``'base'`` or a dict with ``embed_dim``, ``depth``, ``num_heads`` and
            optionally ``mlp_ratio`` (LeFF expansion, 4.0).
        in_channels: Input image channels.
        pretrain_img_size: Image size (int or (H, W)) the position embedding is learned for; its grid is
            ``pretrain_img_size // 16``.
        stem_channels: Channels of the I2T conv / BatchNorm / max-pool map (64).
        leff_kernel_size: LeFF depth-wise kernel side (odd; 3).
        leff_out_act: GELU after LeFF's last BatchNorm (the paper: True; coeusguo/ceit: False).
        lca_layer_embed: Learned per-layer embedding of the LCA's input (coeusguo/ceit: True).
        qkv_bias: Bias in the qkv projections.
        drop_rate: Dropout after the position embedding, the attention projections and in the LCA's MLP.
        attn_drop_rate: Dropout on attention weights.
        drop_path_rate: Stochastic depth, rising linearly from 0 over the blocks (none in the LCA).
        output_cls_token: Build every block and the LCA, and return its final-normed cls token (B, C) after the maps.
        interpolate_mode: Interpolation of the position embedding to other grids.
        interpolate_antialias: Antialias when the embedding shrinks.
        norm: Norm name of the blocks and the LCA (``'ln_eps6'``).
        act: Activation of LeFF and the LCA's MLP.
        out_indices: Blocks to output (negative counts from the end); later blocks are not built unless
            ``output_cls_token``.
        frozen_stages: -1 nothing, 0 the I2T stem, cls token and position embedding, k those and blocks 0..k-1
            (and the LCA and ``norm`` when k covers the last block).
        norm_eval: Keep the BatchNorms (stem and LeFF) in eval mode while training.
        with_cp: Non-reentrant activation checkpointing of every block.
        fused_attn: ``F.scaled_dot_product_attention`` (True), the math path (False) or the package default (None).
        init_cfg: mmengine init config, e.g. ``dict(type='Pretrained', checkpoint=PATH)`` with a checkpoint of ours
            or of coeusguo/ceit.
        cls_output: ``'avg_featmap'``, or ``'cls_token'``: build every block and the LCA, and return its final-normed
            cls token (see :class:`~vit_backbones.backbones.base.BaseBackbone`).
    """

    checkpoint_family = 'ceit'
    stem_conv_keys = ('patch_embed.conv.weight',)

    def __init__(self, arch: Union[str, dict] = 'small', in_channels: int = 3,
                 pretrain_img_size: Union[int, Sequence[int]] = 224, stem_channels: int = 64,
                 leff_kernel_size: int = 3, leff_out_act: bool = True, lca_layer_embed: bool = True,
                 qkv_bias: bool = True, drop_rate: float = 0.0, attn_drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0, output_cls_token: bool = False, interpolate_mode: str = 'bicubic',
                 interpolate_antialias: bool = True, norm: str = 'ln_eps6', act: str = 'gelu',
                 out_indices: Union[int, Sequence[int]] = -1, frozen_stages: int = -1, norm_eval: bool = False,
                 with_cp: bool = False, fused_attn: Optional[bool] = None,
                 init_cfg: Union[dict, list, None] = None,
                 cls_output: Optional[str] = None) -> None:
        cfg = resolve_arch(arch, ARCHS, ARCH_KEYS, optional=ARCH_OPTIONAL)
        check_int('stem_channels', stem_channels)
        check_int('leff_kernel_size', leff_kernel_size)
        if leff_kernel_size % 2 == 0:
            raise ValueError(f'leff_kernel_size must be odd (the depth-wise conv keeps the grid), '
                             f'got {leff_kernel_size}')
        # read by build_patch_embed / build_block / num_built_blocks while the ViT builds its parts
        self.stem_channels, self.leff_kernel_size, self.leff_out_act = stem_channels, leff_kernel_size, leff_out_act
        self.with_lca = bool(output_cls_token) or cls_output == 'cls_token'
        super().__init__(cfg, STRIDE, in_channels, pretrain_img_size, qkv_bias=qkv_bias, drop_rate=drop_rate,
                         attn_drop_rate=attn_drop_rate, drop_path_rate=drop_path_rate, final_norm=False,
                         output_cls_token=output_cls_token, interpolate_mode=interpolate_mode,
                         interpolate_antialias=interpolate_antialias, norm=norm, act=act, out_indices=out_indices,
                         frozen_stages=frozen_stages, norm_eval=norm_eval, with_cp=with_cp, fused_attn=fused_attn,
                         init_cfg=init_cfg, cls_output=cls_output)
        dim, depth, heads = cfg['embed_dim'], cfg['depth'], cfg['num_heads']
        mlp_ratio = cfg.get('mlp_ratio', 4.0)
        self.lca = LayerClassAttention(dim, depth, heads, mlp_ratio, qkv_bias, drop_rate, attn_drop_rate,
                                       lca_layer_embed, norm, act, fused_attn) if self.with_lca else None
        self.norm = get_norm_layer(norm)(dim) if self.with_lca else nn.Identity()

    def build_patch_embed(self, in_channels: int, dim: int, patch_size: int, bias: bool) -> nn.Module:
        """The image-to-tokens stem (conv, BatchNorm, max pool, then 4x4 patches): stride 16."""
        return Image2Tokens(in_channels, dim, self.stem_channels)

    def build_block(self, index: int, **kwargs: Any) -> nn.Module:
        """A CeiT block: pre-norm attention, then LeFF in place of the MLP."""
        return CeiTBlock(kwargs['dim'], kwargs['num_heads'], kwargs['mlp_ratio'], kwargs['qkv_bias'], kwargs['drop'],
                         kwargs['attn_drop'], kwargs['drop_path'], self.leff_kernel_size, self.leff_out_act,
                         kwargs['norm'], kwargs['act'], kwargs['fused_attn'])

    def num_built_blocks(self, depth: int) -> int:
        """Every block with the LCA (it reads all their cls tokens), else up to the last output."""
        return depth if self.with_lca else super().num_built_blocks(depth)

    # ---- structure ------------------------------------------------------------------------------------
    def stage_parts(self, index: int) -> list[Freezable]:
        """Block ``index``; with the last block, the LCA and its final norm."""
        if index >= len(self.blocks):
            return []
        parts: list[Freezable] = [self.blocks[index]]
        if index == len(self.blocks) - 1:
            parts += [m for m in (self.lca, self.norm) if m is not None]
        return parts

    def random_init(self) -> None:
        """coeusguo/ceit's init: linear weights trunc-normal std 0.02 with zero bias, LayerNorms 1/0, convs and
        BatchNorms PyTorch's default, position embedding and cls token trunc-normal std 0.02, layer embedding 0."""
        super().random_init()
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        if self.lca is not None and self.lca.layer_embed is not None:
            nn.init.zeros_(self.lca.layer_embed)

    # ---- loading --------------------------------------------------------------------------------------
    def unbuilt_reason(self, key: str) -> Optional[str]:
        """Why the checkpoint key ``key`` (absent from this model) belongs to a part not built here, or None."""
        if self.lca is None and (key.startswith(('lca.', 'norm.'))):
            return "layer-wise class-token attention (built with output_cls_token=True or cls_output='cls_token')"
        match = re.match(r'blocks\.(\d+)\.', key)
        if match and int(match.group(1)) >= len(self.blocks):
            return 'a block after the last one in out_indices (not built)'
        return None

    # ---- forward --------------------------------------------------------------------------------------
    def run_blocks(self, x: Tensor, hw: tuple[int, int]) -> tuple[dict[int, Tensor], Optional[Tensor]]:
        """Every built block on embedded tokens (B, 1 + h * w, C) over the grid ``hw``: the (B, h, w, C) maps of
        ``out_indices`` and, with the LCA, its final-normed cls token (B, 1, C) (else None)."""
        h, w = hw
        feats, cls_tokens = {}, []
        for index, block in enumerate(self.blocks):
            x = block(x, hw)
            if index in self.out_indices:
                feats[index] = x[:, 1:].reshape(x.shape[0], h, w, x.shape[-1])  # (B, N, C) -> (B, h, w, C)
            cls_tokens.append(x[:, :1])
        if self.lca is None:
            return feats, None
        return feats, self.norm(self.lca(torch.cat(cls_tokens, dim=1)))  # (B, depth, C) -> (B, 1, C)
