"""Pyramid Vision Transformer v1 and v2: spatial-reduction attention over a four-stage token pyramid.

Papers: Wang et al., "Pyramid Vision Transformer", ICCV 2021, arXiv:2102.12122; Wang et al., "PVT v2: Improved
Baselines with Pyramid Vision Transformer", CVMJ 2022, arXiv:2106.13797. Reference code: whai362/PVT (classification
and detection), timm ``pvt_v2.py``, mmdet ``backbones/pvt.py``.

Both versions share the stage layout (``patch_embed``, ``stages.{i}.downsample``, ``stages.{i}.blocks``,
``stages.{i}.norm``; timm's v2 names) and the block (spatial-reduction attention + MLP). They differ in:

* v1: non-overlapping patch embeddings, which floor (stage i is ``floor(H / (4 * 2**i))``, so inputs need at least
  32 pixels a side); a learned absolute position embedding per stage, resized bilinearly at run time to the
  input's grid (as the official detection code does) and at load time to ``pretrain_img_size``; a plain MLP;
  no norm on stage outputs (as mmdet's and the official detection model). The official classifier's cls token
  is optional (``cls_output='cls_token'``): it is prepended to the last stage's tokens with its own position row
  (the last stage has no spatial reduction, so it attends like any token), and its final-normed value is the
  classification feature; the dense model builds none, and a classification checkpoint's cls token, cls position
  row and final norm are then left out on loading.
* v2: overlapping patch embeddings (k7 s4 p3, then k3 s2 p1), which round up (stage i is
  ``ceil(H / (4 * 2**i))``); no position embedding; a depth-wise 3x3 conv inside the MLP; a norm after every
  stage; optionally linear SRA (``b2_li``: keys/values average-pooled to 7x7, plus a ReLU in the MLP).
"""
from functools import partial
from typing import Any, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..converters import pvt as _pvt_layouts  # noqa: F401  (registers the 'pvt' checkpoint layouts)
from ..layers import (
    Attention,
    BackboneStage,
    DropPath,
    Mlp,
    PatchEmbed,
    activate,
    get_act_layer,
    nchw_to_nlc,
    nlc_to_nchw,
    resize_abs_pos_embed,
)
from ..registry import MODELS
from .base import (
    BaseBackbone,
    Freezable,
    check_heads_divide,
    check_int,
    check_per_stage,
    check_rates,
    drop_path_rates,
    resolve_arch,
)

__all__ = ['PyramidVisionTransformer', 'PyramidVisionTransformerV2']

V1_ARCHS: dict[str, dict[str, Any]] = {
    name: dict(embed_dims=(64, 128, 320, 512), depths=depths, num_heads=(1, 2, 5, 8), mlp_ratios=(8, 8, 4, 4),
               sr_ratios=(8, 4, 2, 1))
    for name, depths in [('tiny', (2, 2, 2, 2)), ('small', (3, 4, 6, 3)), ('medium', (3, 4, 18, 3)),
                         ('large', (3, 8, 27, 3))]
}
_V2_WIDE = dict(embed_dims=(64, 128, 320, 512), num_heads=(1, 2, 5, 8), mlp_ratios=(8, 8, 4, 4),
                sr_ratios=(8, 4, 2, 1))
V2_ARCHS: dict[str, dict[str, Any]] = {
    'b0': dict(_V2_WIDE, embed_dims=(32, 64, 160, 256), depths=(2, 2, 2, 2)),
    'b1': dict(_V2_WIDE, depths=(2, 2, 2, 2)),
    'b2': dict(_V2_WIDE, depths=(3, 4, 6, 3)),
    'b2_li': dict(_V2_WIDE, depths=(3, 4, 6, 3), linear=True),
    'b3': dict(_V2_WIDE, depths=(3, 4, 18, 3)),
    'b4': dict(_V2_WIDE, depths=(3, 8, 27, 3)),
    'b5': dict(_V2_WIDE, depths=(3, 6, 40, 3), mlp_ratios=(4, 4, 4, 4)),
}
ARCH_KEYS = ('embed_dims', 'depths', 'num_heads', 'mlp_ratios', 'sr_ratios')

# The references use eps 1e-6 in blocks and stage norms, and torch's default in patch embeddings and SRA.
BlockNorm = partial(nn.LayerNorm, eps=1e-6)


class SpatialReductionAttention(Attention):
    """Multi-head attention whose keys/values come from a spatially reduced copy of the tokens.

    A map smaller than the reduction kernel (``H < sr_ratio`` or ``W < sr_ratio``, e.g. stage 1 of a 28-pixel
    input) is zero-padded at the bottom/right up to the kernel, so it reduces to one key/value token instead of
    failing; maps of ``sr_ratio`` or more are reduced exactly as the references do (the strided conv floors).

    Args:
        dim: Token channels.
        num_heads: Attention heads.
        sr_ratio: Reduction by a ``sr_ratio``-strided conv (1: none).
        linear: Linear SRA: keys/values average-pooled to 7x7 and projected by a 1x1 conv + GELU.
        qkv_bias: Bias in the q and kv projections.
        attn_drop: Dropout on attention weights.
        proj_drop: Dropout after the output projection.
        fused_attn: Per-module fused/math override (None: the package default).
    """

    def __init__(self, dim: int, num_heads: int, sr_ratio: int = 1, linear: bool = False, qkv_bias: bool = True,
                 attn_drop: float = 0.0, proj_drop: float = 0.0, fused_attn: Optional[bool] = None) -> None:
        super().__init__(dim, num_heads, qkv_bias, attn_drop, proj_drop, qkv_layout='q_kv', fused_attn=fused_attn)
        self.sr_ratio = sr_ratio
        self.linear = linear
        self.pool = nn.AdaptiveAvgPool2d(7) if linear else None
        self.act = nn.GELU() if linear else None
        self.sr: Optional[nn.Conv2d] = None
        self.norm: Optional[nn.LayerNorm] = None
        if linear or sr_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, 1 if linear else sr_ratio, 1 if linear else sr_ratio)
            self.norm = nn.LayerNorm(dim)

    def reduce(self, x: Tensor, hw: tuple[int, int]) -> Tensor:
        """Tokens the keys/values are computed from: (B, N, C) -> (B, N', C)."""
        if self.sr is None:
            return x
        x = nlc_to_nchw(x, hw)  # (B, N, C) -> (B, C, H, W)
        if self.pool is not None:
            x = self.pool(x)
        else:  # pad (by 0 on all but tiny maps) up to one kernel; no branch on the size, so exports stay dynamic
            H, W, r = hw[0], hw[1], self.sr_ratio
            x = F.pad(x, (0, (r - W) * (W < r), 0, (r - H) * (H < r)))
        x = self.norm(nchw_to_nlc(self.sr(x)))  # (B, C, h, w) -> (B, h*w, C)
        return self.act(x) if self.act is not None else x

    def forward(self, x: Tensor, hw: tuple[int, int]) -> Tensor:  # type: ignore[override]
        """Attend from every token of ``x`` (B, N, C) on an (H, W) grid to the reduced tokens."""
        q, k, v = self.project(x, self.reduce(x, hw))
        return self.out(self.attend(q, k, v))


class DwConvMlp(nn.Module):
    """PVT v2 MLP: ``fc1 -> [relu] -> 3x3 depth-wise conv -> act -> fc2`` on (B, N, C) tokens.

    Args:
        dim: Token channels.
        hidden: Hidden channels.
        act: Activation name.
        drop: Dropout after the activation and ``fc2``.
        extra_relu: ReLU before the depth-wise conv (linear SRA variant).
    """

    def __init__(self, dim: int, hidden: int, act: str = 'gelu', drop: float = 0.0, extra_relu: bool = False) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.relu = nn.ReLU() if extra_relu else nn.Identity()
        self.dwconv = nn.Conv2d(hidden, hidden, 3, 1, 1, groups=hidden)
        self.act = get_act_layer(act)()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor, hw: tuple[int, int]) -> Tensor:
        x = activate(self.relu, nlc_to_nchw(self.fc1(x), hw))  # (B, N, C) -> (B, C, H, W)
        x = nchw_to_nlc(self.dwconv(x))  # (B, C, H, W) -> (B, N, C)
        return self.drop(self.fc2(self.drop(activate(self.act, x))))  # in place without autograd: no fresh pages


class PvtBlock(nn.Module):
    """Pre-norm block: spatial-reduction attention, then the MLP (plain for v1, depth-wise conv for v2)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, sr_ratio: int, linear: bool, dw_mlp: bool,
                 qkv_bias: bool, drop: float, attn_drop: float, drop_path: float, act: str,
                 fused_attn: Optional[bool]) -> None:
        super().__init__()
        self.norm1 = BlockNorm(dim)
        self.attn = SpatialReductionAttention(dim, num_heads, sr_ratio, linear, qkv_bias, attn_drop, drop,
                                              fused_attn)
        self.drop_path1 = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = BlockNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.dw_mlp = dw_mlp
        self.mlp: nn.Module = (DwConvMlp(dim, hidden, act, drop, extra_relu=linear) if dw_mlp
                               else Mlp(dim, hidden, act_layer=get_act_layer(act), drop=drop))
        self.drop_path2 = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: Tensor, hw: tuple[int, int]) -> Tensor:
        """Transform (B, N, C) tokens on an (H, W) grid."""
        x = x + self.drop_path1(self.attn(self.norm1(x), hw))
        y = self.norm2(x)
        return x + self.drop_path2(self.mlp(y, hw) if self.dw_mlp else self.mlp(y))


class PvtStage(BackboneStage):
    """One pyramid level on NHWC tokens: optional downsampling embedding, optional position embedding (v1),
    blocks on (B, N, C) sequences, optional norm (v2)."""

    def __init__(self, downsample: Optional[nn.Module], blocks: Sequence[PvtBlock], dim: int,
                 pos_grid: Optional[int], norm: bool, drop: float, cls_token: bool = False) -> None:
        super().__init__()
        self.downsample = downsample
        self.pos_embed = nn.Parameter(torch.zeros(1, dim, pos_grid, pos_grid)) if pos_grid else None
        # v1 classifier: a cls token before the tokens, with its own position row (the official pos_embed4[:, :1])
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if cls_token else None
        self.cls_pos_embed = nn.Parameter(torch.zeros(1, 1, dim)) if cls_token else None
        self.pos_drop = nn.Dropout(drop)
        self.blocks = nn.ModuleList(blocks)
        self.norm = BlockNorm(dim) if norm else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """(B, H, W, C) -> (B, H', W', C') (halved by the downsampling embedding of stages after the first)."""
        return self.forward_tokens(x)[0]

    def forward_tokens(self, x: Tensor) -> tuple[Tensor, Optional[Tensor]]:
        """:meth:`forward`, and the stage's cls token (B, C) after its blocks (None without one)."""
        if self.downsample is not None:
            x = self.downsample(x.permute(0, 3, 1, 2))  # (B, H, W, C) -> (B, C, H, W) -> (B, H/2, W/2, C')
        B, H, W, C = x.shape
        if self.pos_embed is not None:
            pos = resize_abs_pos_embed(self.pos_embed, (H, W), mode='bilinear')
            x = x + pos.permute(0, 2, 3, 1)  # (1, C, H, W) -> (1, H, W, C)
        x = x.reshape(B, H * W, C)  # (B, H, W, C) -> (B, N, C)
        if self.cls_token is not None:
            x = torch.cat([(self.cls_token + self.cls_pos_embed).expand(B, -1, -1), x], dim=1)  # (B, 1 + N, C)
        x = self.pos_drop(x)
        for block in self.blocks:
            x = self.run_block(block, x, (H, W))
        x = self.norm(x)
        if self.cls_token is None:
            return x.reshape(B, H, W, C), None  # (B, N, C) -> (B, H, W, C)
        return x[:, 1:].reshape(B, H, W, C), x[:, 0]  # (B, 1 + N, C) -> (B, H, W, C), (B, C)


def check_pyramid_arch(cfg: dict[str, Any]) -> tuple[tuple, tuple, tuple, tuple, tuple]:
    """Validate a PVT-style arch dict (one entry per stage); returns (embed_dims, depths, num_heads, mlp_ratios,
    sr_ratios), raising a ValueError that names the entry otherwise."""
    num_stages = len(cfg['depths']) if isinstance(cfg['depths'], (list, tuple)) else 1
    dims = check_per_stage(cfg, 'embed_dims', num_stages)
    depths = check_per_stage(cfg, 'depths', num_stages)
    heads = check_per_stage(cfg, 'num_heads', num_stages)
    mlp_ratios = check_per_stage(cfg, 'mlp_ratios', num_stages, minimum=None, integer=False)
    if any(r <= 0 for r in mlp_ratios):
        raise ValueError(f"arch['mlp_ratios'] entries must be positive numbers, got {mlp_ratios!r}")
    sr_ratios = check_per_stage(cfg, 'sr_ratios', num_stages)
    check_heads_divide(dims, heads, "arch['embed_dims']")
    return dims, depths, heads, mlp_ratios, sr_ratios


class _PvtBase(BaseBackbone):
    """Shared body of PVT v1 and v2 (see the module docstring for their differences)."""

    version = 0
    checkpoint_family = 'pvt'

    def __init__(self, arch: Union[str, dict], archs: dict[str, dict[str, Any]], in_channels: int,
                 drop_rate: float, attn_drop_rate: float, drop_path_rate: float, qkv_bias: bool,
                 pretrain_img_size: int, out_indices: Union[int, Sequence[int]], frozen_stages: int,
                 norm_eval: bool, with_cp: bool, fused_attn: Optional[bool], act: str,
                 init_cfg: Union[dict, list, None], cls_output: Optional[str] = None) -> None:
        cfg = resolve_arch(arch, archs, ARCH_KEYS, optional=('linear',) if self.version == 2 else ())
        dims, depths, heads, mlp_ratios, sr_ratios = check_pyramid_arch(cfg)
        num_stages = len(depths)
        check_rates(drop_rate=drop_rate, attn_drop_rate=attn_drop_rate, drop_path_rate=drop_path_rate)
        super().__init__(in_channels, num_stages, out_indices, frozen_stages, norm_eval, with_cp, init_cfg,
                         cls_output)
        linear = bool(cfg.get('linear', False))
        v2 = self.version == 2
        num_built = max(self.out_indices) + 1
        with_cls = cls_output == 'cls_token'
        if with_cls and sr_ratios[-1] != 1:
            raise ValueError(f"cls_output='cls_token' puts a cls token among the last stage's tokens, which needs "
                             f"that stage without spatial reduction: arch['sr_ratios'][-1] must be 1, "
                             f"got {sr_ratios[-1]}")
        if not v2:
            check_int('pretrain_img_size', pretrain_img_size, minimum=4 * 2 ** (num_built - 1))
        embed = partial(PatchEmbed, pad_input=False, norm_layer=nn.LayerNorm)
        self.patch_embed = embed(in_channels, dims[0], 7, 4, 3) if v2 else embed(in_channels, dims[0], 4)
        rates = drop_path_rates(drop_path_rate, depths)
        stages = []
        for i in range(num_built):
            downsample = None
            if i > 0:
                downsample = embed(dims[i - 1], dims[i], 3, 2, 1) if v2 else embed(dims[i - 1], dims[i], 2)
            blocks = [PvtBlock(dims[i], heads[i], mlp_ratios[i], sr_ratios[i], linear, dw_mlp=v2, qkv_bias=qkv_bias,
                               drop=drop_rate, attn_drop=attn_drop_rate, drop_path=rates[i][j], act=act,
                               fused_attn=fused_attn)
                      for j in range(depths[i])]
            pos_grid = None if v2 else pretrain_img_size // (4 * 2 ** i)
            stages.append(PvtStage(downsample, blocks, dims[i], pos_grid, norm=v2, drop=drop_rate,
                                   cls_token=with_cls and i == num_stages - 1))
        self.stages = nn.ModuleList(stages)
        self.norm = BlockNorm(dims[-1]) if with_cls else None  # the official classifier's final norm
        self.out_channels = tuple(dims[i] for i in self.out_indices)
        self.out_strides = tuple(4 * 2 ** i for i in self.out_indices)

    def random_init(self) -> None:
        """Truncated-normal linear weights and position embeddings; fan-out normal convs as the references."""
        super().random_init()
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels // module.groups
                nn.init.normal_(module.weight, std=(2.0 / fan_out) ** 0.5)
                nn.init.zeros_(module.bias)
            elif isinstance(module, PvtStage):
                for param in (module.pos_embed, module.cls_pos_embed, module.cls_token):
                    if param is not None:
                        nn.init.trunc_normal_(param, std=0.02)

    def stage_parts(self, index: int) -> list[Freezable]:
        """Stage ``index``, and the classifier's final norm with the last stage."""
        parts = super().stage_parts(index)
        return parts + [self.norm] if self.norm is not None and index == self.num_stages - 1 else parts

    def unbuilt_reason(self, key: str) -> Optional[str]:
        """A classification checkpoint's cls token, cls position row and final norm, when no cls token is built."""
        if self.norm is None and (key.endswith(('.cls_token', '.cls_pos_embed')) or key.startswith('norm.')):
            return "v1 classifier cls token / final norm (built with cls_output='cls_token')"
        return None

    def stem_parts(self) -> list[Freezable]:
        return [self.patch_embed]

    def adapt_state_dict(self, state_dict: dict[str, Any], own: dict[str, Tensor]) -> dict[str, Any]:
        """Resize v1 position embeddings to this model's grids (bilinear, as the official detection code)."""
        sd = dict(state_dict)
        for key, value in state_dict.items():
            if key.endswith('pos_embed') and key in own and own[key].shape != value.shape:
                sd[key] = resize_abs_pos_embed(value, tuple(own[key].shape[-2:]), mode='bilinear')
        return sd

    def check_input(self, x: Tensor) -> None:
        """Also reject v1 inputs too small for its flooring patch embeddings."""
        super().check_input(x)
        if self.version == 1:
            smallest = 4 * 2 ** (len(self.stages) - 1)
            if min(x.shape[-2:]) < smallest:
                raise ValueError(f'{type(self).__name__} needs inputs of at least {smallest}x{smallest} pixels '
                                 f'(its patch embeddings floor), got {tuple(x.shape[-2:])}')

    def forward_stem(self, x: Tensor) -> Tensor:
        """Patch embedding: (B, C, H, W) -> (B, H/4, W/4, C')."""
        return self.patch_embed(x)

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        """One (B, C_i, H_i, W_i) map per ``out_indices`` entry, then the ``cls_output`` feature if asked for."""
        if self.norm is None:
            return super().forward(x)
        self.check_input(x)
        x, feats, cls = self.forward_stem(x), {}, None
        for index, stage in enumerate(self.stages):
            x, cls = stage.forward_tokens(x)
            if index in self.out_indices:
                feats[index] = x
        return self.append_cls_output(self.format_outputs(feats), self.norm(cls))


@MODELS.register_module()
class PyramidVisionTransformer(_PvtBase):
    """PVT v1 backbone (dense variant: no cls token) returning NCHW maps at strides 4, 8, 16, 32.

    Args:
        arch: ``'tiny'``, ``'small'``, ``'medium'``, ``'large'`` or a dict with ``embed_dims``, ``depths``,
            ``num_heads``, ``mlp_ratios``, ``sr_ratios`` (one entry per stage).
        in_channels: Input image channels.
        drop_rate: Dropout after position embeddings and in blocks.
        attn_drop_rate: Dropout on attention weights.
        drop_path_rate: Stochastic depth, linear from 0 over all blocks.
        qkv_bias: Bias in q/kv projections.
        pretrain_img_size: Image size the position-embedding grids are defined for.
        out_indices: Stages to output; later stages are not built.
        frozen_stages: -1 nothing, 0 the stem, k the stem and stages 0..k-1.
        norm_eval: Keep BatchNorms in eval mode (none here; shared contract).
        with_cp: Non-reentrant activation checkpointing per block.
        fused_attn: ``F.scaled_dot_product_attention`` (True), the math path (False) or the package default (None).
        act: Activation name.
        init_cfg: mmengine init config, e.g. ``dict(type='Pretrained', checkpoint=PATH)`` with our, official
            or mmdet PVT checkpoints.
        cls_output: ``'avg_featmap'``, or ``'cls_token'``: build the official classifier's cls token in the last
            stage (which then takes part in that stage's attention) and its final norm (see
            :class:`~vit_backbones.backbones.base.BaseBackbone`).
    """

    version = 1
    cls_outputs = ('avg_featmap', 'cls_token')

    def __init__(self, arch: Union[str, dict] = 'small', in_channels: int = 3, drop_rate: float = 0.0,
                 attn_drop_rate: float = 0.0, drop_path_rate: float = 0.1, qkv_bias: bool = True,
                 pretrain_img_size: int = 224, out_indices: Union[int, Sequence[int]] = (0, 1, 2, 3),
                 frozen_stages: int = -1, norm_eval: bool = False, with_cp: bool = False,
                 fused_attn: Optional[bool] = None, act: str = 'gelu',
                 init_cfg: Union[dict, list, None] = None,
                 cls_output: Optional[str] = None) -> None:
        super().__init__(arch, V1_ARCHS, in_channels, drop_rate, attn_drop_rate, drop_path_rate, qkv_bias,
                         pretrain_img_size, out_indices, frozen_stages, norm_eval, with_cp, fused_attn, act, init_cfg,
                         cls_output)


@MODELS.register_module()
class PyramidVisionTransformerV2(_PvtBase):
    """PVT v2 backbone returning NCHW maps at strides 4, 8, 16, 32.

    Args:
        arch: ``'b0'`` ... ``'b5'``, ``'b2_li'`` or a dict with ``embed_dims``, ``depths``, ``num_heads``,
            ``mlp_ratios``, ``sr_ratios`` and optionally ``linear`` (linear SRA).
        in_channels: Input image channels.
        drop_rate: Dropout in blocks.
        attn_drop_rate: Dropout on attention weights.
        drop_path_rate: Stochastic depth, linear from 0 over all blocks.
        qkv_bias: Bias in q/kv projections.
        out_indices: Stages to output; later stages are not built.
        frozen_stages: -1 nothing, 0 the stem, k the stem and stages 0..k-1.
        norm_eval: Keep BatchNorms in eval mode (none here; shared contract).
        with_cp: Non-reentrant activation checkpointing per block.
        fused_attn: ``F.scaled_dot_product_attention`` (True), the math path (False) or the package default (None).
        act: Activation name.
        init_cfg: mmengine init config, e.g. ``dict(type='Pretrained', checkpoint=PATH)`` with our, timm,
            official or mmdet PVT v2 checkpoints.
        cls_output: ``'avg_featmap'`` (see :class:`~vit_backbones.backbones.base.BaseBackbone`).
    """

    version = 2

    def __init__(self, arch: Union[str, dict] = 'b2', in_channels: int = 3, drop_rate: float = 0.0,
                 attn_drop_rate: float = 0.0, drop_path_rate: float = 0.1, qkv_bias: bool = True,
                 out_indices: Union[int, Sequence[int]] = (0, 1, 2, 3), frozen_stages: int = -1,
                 norm_eval: bool = False, with_cp: bool = False, fused_attn: Optional[bool] = None, act: str = 'gelu',
                 init_cfg: Union[dict, list, None] = None,
                 cls_output: Optional[str] = None) -> None:
        super().__init__(arch, V2_ARCHS, in_channels, drop_rate, attn_drop_rate, drop_path_rate, qkv_bias, 224,
                         out_indices, frozen_stages, norm_eval, with_cp, fused_attn, act, init_cfg, cls_output)
