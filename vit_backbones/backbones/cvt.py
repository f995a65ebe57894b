"""CvT: convolutional token embeddings and convolutional q/k/v projections in a three-stage transformer.

Paper: Wu et al., "CvT: Introducing Convolutions to Vision Transformers", ICCV 2021, arXiv:2103.15808.
Reference code: microsoft/CvT (``lib/models/cls_cvt.py``, ``experiments/imagenet/cvt/*.yaml``), classification
only; Hugging Face ``transformers`` ``CvtModel`` holds the same weights under other names.

What the original computes, and this code with it (``get_cls_model`` builds every official model with
``act_layer=QuickGELU`` and ``LayerNorm(eps=1e-5)``, so those are the defaults here):

* Stage i starts with a convolutional token embedding (``conv k7/4 p2``, then ``k3/2 p1``; with bias) and a
  LayerNorm; no position embedding anywhere.
* Block: pre-norm ``x + attn(LN(x))``, ``x + mlp(LN(x))``, MLP ``fc -> QuickGELU -> fc``.
* Attention: q, k and v each come from their own depth-wise 3x3 conv (no bias) + BatchNorm over the token map
  (stride 1 for q, 2 for k and v), then their own linear projection (with bias); the softmax scale is
  ``dim ** -0.5`` with the stage's full width, not the head width (the official code's choice, kept because
  the checkpoints were trained with it).
* Only the last stage has a cls token: it is prepended after the embedding, skips the conv projections (it joins
  q, k and v after them) and is split off after the blocks. The official final LayerNorm normalises it for the
  classifier.
* Stochastic depth only in the last stage, rising linearly from 0 to ``drop_path_rate`` over its blocks (every
  official config: ``DROP_PATH_RATE: [0, 0, rate]``).

Dense outputs: the NCHW token map of every stage in ``out_indices`` without the cls token; the last stage's map
goes through the official final LayerNorm (``norms.{last}``; the official forward applies it to the map tokens
when a model has no cls token), the others are returned as the stages produce them. With
``output_cls_token=True`` the normalised cls token (B, C) is returned after the maps.

Any input size: each token embedding first zero-pads its input at the bottom/right to a multiple of its stride,
so stage i is ``ceil(H / (4 * 2**i))`` (the unpadded 7x7/4 conv would give ``floor((H + 1) / 4)``, and nothing at
all below 3 pixels). At sizes divisible by 4 (224, 384) nothing is padded and the outputs are the official ones.
"""
from functools import partial
from typing import Any, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from ..converters import cvt as _cvt_layouts  # noqa: F401  (registers the 'cvt' checkpoint layouts)
from ..layers import (
    Attention,
    BackboneStage,
    DropPath,
    Mlp,
    PatchEmbed,
    get_act_layer,
    nchw_to_nhwc,
    nchw_to_nlc,
    nlc_to_nchw,
    split_prefix,
)
from ..registry import MODELS
from .base import (
    BaseBackbone,
    Freezable,
    check_heads_divide,
    check_int,
    check_per_stage,
    check_rates,
    resolve_arch,
)

__all__ = ['CvT']

ARCHS: dict[str, dict[str, Any]] = {
    'cvt-13': dict(embed_dims=(64, 192, 384), depths=(1, 2, 10), num_heads=(1, 3, 6)),
    'cvt-21': dict(embed_dims=(64, 192, 384), depths=(1, 4, 16), num_heads=(1, 3, 6)),
    'cvt-w24': dict(embed_dims=(192, 768, 1024), depths=(2, 2, 20), num_heads=(3, 12, 16)),
}
ARCH_KEYS = ('embed_dims', 'depths', 'num_heads')
ARCH_OPTIONAL = ('patch_sizes', 'patch_strides', 'patch_paddings', 'mlp_ratios')


def arch_defaults(num_stages: int) -> dict[str, tuple]:
    """The official embedding and MLP settings for ``num_stages`` stages: k7/4 p2 first, then k3/2 p1; ratio 4."""
    rest = num_stages - 1
    return dict(patch_sizes=(7,) + (3,) * rest, patch_strides=(4,) + (2,) * rest,
                patch_paddings=(2,) + (1,) * rest, mlp_ratios=(4.0,) * num_stages)


Norm = partial(nn.LayerNorm, eps=1e-5)


class ConvProjection(nn.Module):
    """Depth-wise conv (no bias) + BatchNorm over a token map: (B, C, H, W) -> (B, H' * W', C)."""

    def __init__(self, dim: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, kernel_size, stride, kernel_size // 2, groups=dim, bias=False)
        self.bn = nn.BatchNorm2d(dim)

    def forward(self, x: Tensor) -> Tensor:
        return nchw_to_nlc(self.bn(self.conv(x)))  # (B, C, H', W') -> (B, N', C)


class ConvAttention(Attention):
    """Multi-head attention whose q, k, v come from depth-wise conv projections of the token map.

    Args:
        dim: Token channels.
        num_heads: Attention heads.
        num_prefix: Prefix (cls) tokens in front of the map; they bypass the convolutions.
        kernel_size: Conv projection kernel.
        stride_q: Conv stride for queries.
        stride_kv: Conv stride for keys and values.
        qkv_bias: Bias in the linear q/k/v projections.
        attn_drop: Dropout on attention weights.
        proj_drop: Dropout after the output projection.
        fused_attn: Per-module fused/math override.
    """

    def __init__(self, dim: int, num_heads: int, num_prefix: int, kernel_size: int = 3, stride_q: int = 1,
                 stride_kv: int = 2, qkv_bias: bool = True, attn_drop: float = 0.0, proj_drop: float = 0.0,
                 fused_attn: Optional[bool] = None) -> None:
        super().__init__(dim, num_heads, qkv_bias, attn_drop, proj_drop, qkv_layout='q_k_v', fused_attn=fused_attn)
        self.scale = dim ** -0.5  # the official CvT scales by the full width (its checkpoints were trained so)
        self.num_prefix = num_prefix
        self.conv_proj_q = ConvProjection(dim, kernel_size, stride_q)
        self.conv_proj_k = ConvProjection(dim, kernel_size, stride_kv)
        self.conv_proj_v = ConvProjection(dim, kernel_size, stride_kv)

    def forward(self, x: Tensor, hw: tuple[int, int]) -> Tensor:  # type: ignore[override]
        """Attend over (B, P + H * W, C) tokens on an (H, W) grid; returns the same shape (stride_q 1)."""
        prefix, tokens = split_prefix(x, self.num_prefix)
        fmap = nlc_to_nchw(tokens, hw)  # (B, N, C) -> (B, C, H, W)
        q = self._heads(self.q(torch.cat([prefix, self.conv_proj_q(fmap)], dim=1)))
        k = self._heads(self.k(torch.cat([prefix, self.conv_proj_k(fmap)], dim=1)))
        v = self._heads(self.v(torch.cat([prefix, self.conv_proj_v(fmap)], dim=1)))
        return self.out(self.attend(q, k, v))


class CvtBlock(nn.Module):
    """Pre-norm block: convolutional attention, then the MLP."""

    def __init__(self, dim: int, num_heads: int, num_prefix: int, mlp_ratio: float, kernel_size: int,
                 stride_q: int, stride_kv: int, qkv_bias: bool, drop: float, attn_drop: float, drop_path: float,
                 act: str, fused_attn: Optional[bool]) -> None:
        super().__init__()
        self.norm1 = Norm(dim)
        self.attn = ConvAttention(dim, num_heads, num_prefix, kernel_size, stride_q, stride_kv, qkv_bias,
                                  attn_drop, drop, fused_attn)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = Norm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=get_act_layer(act), drop=drop)

    def forward(self, x: Tensor, hw: tuple[int, int]) -> Tensor:
        """Transform (B, P + H * W, C) tokens on an (H, W) grid."""
        x = x + self.drop_path(self.attn(self.norm1(x), hw))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class CvtStage(BackboneStage):
    """Convolutional token embedding, optional cls token, blocks.

    Args:
        in_dim: Input channels (image channels for the first stage).
        dim: Token channels.
        depth: Number of blocks.
        patch_size: Embedding conv kernel.
        stride: Embedding conv stride (the input is zero-padded to a multiple of it first).
        padding: Embedding conv padding.
        cls_token: Prepend a learned cls token.
        drop: Dropout after the embedding and in blocks.
        drop_path: Stochastic depth of each block.
        **block_kwargs: Passed to :class:`CvtBlock`.
    """

    def __init__(self, in_dim: int, dim: int, depth: int, patch_size: int, stride: int, padding: int,
                 cls_token: bool, drop: float, drop_path: Sequence[float], **block_kwargs: Any) -> None:
        super().__init__()
        self.patch_embed = PatchEmbed(in_dim, dim, patch_size, stride, padding, pad_input=True, norm_layer=Norm)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if cls_token else None
        self.pos_drop = nn.Dropout(drop)
        self.blocks = nn.ModuleList([
            CvtBlock(dim, num_prefix=int(cls_token), drop=drop, drop_path=drop_path[j], **block_kwargs)
            for j in range(depth)])

    def forward_with_cls(self, x: Tensor) -> tuple[Tensor, Optional[Tensor]]:
        """(B, H, W, C) -> the (B, H', W', C') map and the (B, 1, C') cls token (None without one)."""
        x = self.patch_embed(x.permute(0, 3, 1, 2))  # (B, H, W, C) -> (B, C, H, W) -> (B, H', W', C')
        B, H, W, C = x.shape
        x = x.reshape(B, H * W, C)  # (B, H', W', C') -> (B, N, C')
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(B, -1, -1), x], dim=1)
        x = self.pos_drop(x)
        for block in self.blocks:
            x = self.run_block(block, x, (H, W))
        cls, x = split_prefix(x, 0 if self.cls_token is None else 1)
        return x.reshape(B, H, W, C), (cls if self.cls_token is not None else None)  # (B, N, C') -> (B, H', W', C')

    def forward(self, x: Tensor) -> Tensor:
        """(B, H, W, C) -> (B, H', W', C'), the cls token left out."""
        return self.forward_with_cls(x)[0]


@MODELS.register_module()
class CvT(BaseBackbone):
    """CvT backbone returning NCHW maps at strides 4, 8, 16 (presets).

    Args:
        arch: ``'cvt-13'``, ``'cvt-21'``, ``'cvt-w24'`` or a dict with ``embed_dims``, ``depths``, ``num_heads``
            (one entry per stage) and optionally ``patch_sizes``, ``patch_strides``, ``patch_paddings``,
            ``mlp_ratios`` (defaults: the official 7/3/3, 4/2/2, 2/1/1, 4.0). The last stage has the cls token.
        in_channels: Input image channels.
        qkv_bias: Bias in the linear q/k/v projections.
        kernel_qkv: Kernel of the depth-wise q/k/v conv projections.
        stride_kv: Stride of the key/value conv projections (2: a quarter of the tokens).
        stride_q: Stride of the query conv projection (1; the map keeps its size).
        drop_rate: Dropout after embeddings, attention projections and in MLPs.
        attn_drop_rate: Dropout on attention weights.
        drop_path_rate: Stochastic depth of the last stage, linear from 0 over its blocks (official rule).
        output_cls_token: Also return the last stage's normalised cls token (B, C) after the maps; needs the last
            stage in ``out_indices``.
        out_indices: Stages to output; later stages are not built.
        frozen_stages: -1 nothing, 0 the first token embedding, k stages 0..k-1.
        norm_eval: Keep the conv projections' BatchNorms in eval mode while training.
        with_cp: Non-reentrant activation checkpointing per block.
        fused_attn: ``F.scaled_dot_product_attention`` (True), the math path (False) or the package default (None).
        act: MLP activation name (official: ``'quick_gelu'``; ``'gelu'`` reproduces Hugging Face's ``CvtModel``).
        init_cfg: mmengine init config, e.g. ``dict(type='Pretrained', checkpoint=PATH)`` with an official,
            Hugging Face or our checkpoint.
        cls_output: ``'avg_featmap'``, or ``'cls_token'``: the last stage's normalised cls token (see
            :class:`~vit_backbones.backbones.base.BaseBackbone`).
    """

    checkpoint_family = 'cvt'
    cls_outputs = ('avg_featmap', 'cls_token')
    out_norms_attr = 'norms'
    stem_conv_keys = ('stages.0.patch_embed.proj.weight',)

    def __init__(self, arch: Union[str, dict] = 'cvt-13', in_channels: int = 3, qkv_bias: bool = True,
                 kernel_qkv: int = 3, stride_kv: int = 2, stride_q: int = 1, drop_rate: float = 0.0,
                 attn_drop_rate: float = 0.0, drop_path_rate: float = 0.1, output_cls_token: bool = False,
                 out_indices: Union[int, Sequence[int]] = (0, 1, 2), frozen_stages: int = -1,
                 norm_eval: bool = False, with_cp: bool = False, fused_attn: Optional[bool] = None,
                 act: str = 'quick_gelu', init_cfg: Union[dict, list, None] = None,
                 cls_output: Optional[str] = None) -> None:
        cfg = resolve_arch(arch, ARCHS, ARCH_KEYS, optional=ARCH_OPTIONAL)
        num_stages = len(cfg['depths']) if isinstance(cfg['depths'], (list, tuple)) else 1
        cfg = {**arch_defaults(num_stages), **cfg}
        dims = check_per_stage(cfg, 'embed_dims', num_stages)
        depths = check_per_stage(cfg, 'depths', num_stages)
        heads = check_per_stage(cfg, 'num_heads', num_stages)
        patch_sizes = check_per_stage(cfg, 'patch_sizes', num_stages)
        strides = check_per_stage(cfg, 'patch_strides', num_stages)
        paddings = check_per_stage(cfg, 'patch_paddings', num_stages, minimum=0)
        mlp_ratios = check_per_stage(cfg, 'mlp_ratios', num_stages, minimum=None, integer=False)
        if any(r <= 0 for r in mlp_ratios):
            raise ValueError(f"arch['mlp_ratios'] entries must be positive numbers, got {mlp_ratios!r}")
        check_heads_divide(dims, heads, "arch['embed_dims']")
        for name, value in (('kernel_qkv', kernel_qkv), ('stride_kv', stride_kv), ('stride_q', stride_q)):
            check_int(name, value)
        if kernel_qkv % 2 == 0:
            raise ValueError(f'kernel_qkv must be odd (the projections pad kernel // 2), got {kernel_qkv}')
        if stride_q != 1:
            raise ValueError(f'stride_q must be 1 for dense outputs (a strided query map shrinks the tokens), '
                             f'got {stride_q}')
        check_rates(drop_rate=drop_rate, attn_drop_rate=attn_drop_rate, drop_path_rate=drop_path_rate)
        super().__init__(in_channels, num_stages, out_indices, frozen_stages, norm_eval, with_cp, init_cfg,
                         cls_output)
        last = num_stages - 1
        if output_cls_token and last not in self.out_indices:
            raise ValueError(f'output_cls_token=True needs the last stage ({last}) in out_indices, '
                             f'got {self.out_indices}')
        self.output_cls_token = bool(output_cls_token)
        num_built = max(self.out_indices) + 1
        widths = [in_channels, *dims]
        stages = []
        for i in range(num_built):
            rates = torch.linspace(0, drop_path_rate if i == last else 0.0, depths[i], device='cpu').tolist()
            stages.append(CvtStage(widths[i], dims[i], depths[i], patch_sizes[i], strides[i], paddings[i],
                                   cls_token=i == last, drop=drop_rate, drop_path=rates, num_heads=heads[i],
                                   mlp_ratio=mlp_ratios[i], kernel_size=kernel_qkv, stride_q=stride_q,
                                   stride_kv=stride_kv, qkv_bias=qkv_bias, attn_drop=attn_drop_rate, act=act,
                                   fused_attn=fused_attn))
        self.stages = nn.ModuleList(stages)
        self.norms = nn.ModuleList([Norm(dims[i]) if i == last else nn.Identity() for i in range(num_built)])
        cumulative = [int(torch.tensor(strides[:i + 1]).prod()) for i in range(num_stages)]
        self.out_channels = tuple(dims[i] for i in self.out_indices)
        self.out_strides = tuple(cumulative[i] for i in self.out_indices)

    def random_init(self) -> None:
        """The official trunc_norm init: linear weights std 0.02, norms 1/0, cls token std 0.02."""
        super().random_init()
        for stage in self.stages:
            if stage.cls_token is not None:
                nn.init.trunc_normal_(stage.cls_token, std=0.02)

    def stem_parts(self) -> list[Freezable]:
        """The first token embedding (CvT has no stem apart from it)."""
        return [self.stages[0].patch_embed]

    def forward_stem(self, x: Tensor) -> Tensor:
        """The image as channel-last tokens for the first stage's embedding: (B, C, H, W) -> (B, H, W, C)."""
        return nchw_to_nhwc(x)

    def forward_tokens(self, x: Tensor) -> tuple[dict[int, Tensor], Optional[Tensor]]:
        """Every stage in turn; the NHWC maps of ``out_indices`` and the last built stage's cls token (B, 1, C)."""
        x = self.forward_stem(x)
        feats, cls = {}, None
        for index, stage in enumerate(self.stages):
            x, cls = stage.forward_with_cls(x)
            if index in self.out_indices:
                feats[index] = x
        return feats, cls

    def forward_features(self, x: Tensor) -> dict[int, Tensor]:
        """The NHWC output of each stage in ``out_indices`` (cls token left out)."""
        return self.forward_tokens(x)[0]

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        """One (B, C_i, H_i, W_i) map per ``out_indices`` entry, then the (B, C) cls token if asked for
        (``output_cls_token``), then the ``cls_output`` feature."""
        self.check_input(x)
        feats, cls = self.forward_tokens(x)
        outs = self.format_outputs(feats)
        token = self.norms[-1](cls[:, 0]) if cls is not None and len(self.stages) == self.num_stages else None
        if self.output_cls_token:
            outs = (*outs, token)  # (B, 1, C) -> (B, C)
        return self.append_cls_output(outs, token)
