"""Pyramid Vision Transformer v1 and v2: spatial-reduction attention over a four-stage token pyramid.

Papers: Wang et al., "Pyramid Vision Transformer", ICCV 2021, arXiv:2102.12122; Wang et al., "PVT v2: Improved
Baselines with Pyramid Vision Transformer", CVMJ 2022, arXiv:2106.13797. Reference code: whai362/PVT (classification
and detection), timm ``pvt_v2.py``, mmdet ``backbones/pvt.py``.

Both versions share the stage layout (``patch_embed``, ``stages.{i}.downsample``, ``stages.{i}.blocks``,
``stages.{i}.norm``; timm's v2 names) and the block (spatial-reduction attention + MLP). They differ in:

* v1: non-overlapping patch embeddings, which floor (stage i is ``floor(H / (4 * 2**i))``, so inputs need at least
  32 pixels a side); a learned absolute position embedding per stage, resized bilinearly at run time to the
  input's grid (as the official detection code does) and at load time to ``pretrain_img_size``; a plain MLP;
  no norm on stage outputs (as mmdet's and the official detection model). The classification checkpoint's cls
  token, its row of the last position embedding, its final norm and head are dropped on conversion.
* v2: overlapping patch embeddings (k7 s4 p3, then k3 s2 p1), which round up (stage i is
  ``ceil(H / (4 * 2**i))``); no position embedding; a depth-wise 3x3 conv inside the MLP; a norm after every
  stage; optionally linear SRA (``b2_li``: keys/values average-pooled to 7x7, plus a ReLU in the MLP).
"""
from functools import partial
from typing import Any, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..converters.common import Converted
from ..converters.pvt import convert_pvt_to_ours
from ..layers import DropPath, Mlp, get_act_layer, nchw_to_nhwc, resize_abs_pos_embed
from ..registry import MODELS
from .base import BaseBackbone, Freezable, resolve_arch

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


class PatchEmbed(nn.Module):
    """Strided conv patch embedding + LayerNorm on channel-last tokens.

    Args:
        in_channels: Input channels.
        embed_dim: Output channels.
        kernel_size: Conv kernel.
        stride: Conv stride.
        padding: Conv padding (``kernel_size // 2`` overlaps patches and rounds the grid up; 0 floors it).
    """

    def __init__(self, in_channels: int, embed_dim: int, kernel_size: int, stride: int, padding: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, embed_dim, kernel_size, stride, padding)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: Tensor) -> Tensor:
        """Embed (B, C, H, W) into (B, H', W', embed_dim)."""
        return self.norm(nchw_to_nhwc(self.proj(x)))  # (B, C, H', W') -> (B, H', W', C)


class SpatialReductionAttention(nn.Module):
    """Multi-head attention whose keys/values come from a spatially reduced copy of the tokens.

    Args:
        dim: Token channels.
        num_heads: Attention heads.
        sr_ratio: Reduction by a ``sr_ratio``-strided conv (1: none).
        linear: Linear SRA: keys/values average-pooled to 7x7 and projected by a 1x1 conv + GELU.
        qkv_bias: Bias in the q and kv projections.
        attn_drop: Dropout on attention weights.
        proj_drop: Dropout after the output projection.
        fused_attn: ``F.scaled_dot_product_attention`` (True) or the explicit softmax path (False).
    """

    def __init__(self, dim: int, num_heads: int, sr_ratio: int = 1, linear: bool = False, qkv_bias: bool = True,
                 attn_drop: float = 0.0, proj_drop: float = 0.0, fused_attn: bool = True) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'dim {dim} is not divisible by num_heads {num_heads}')
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.fused_attn = fused_attn
        self.linear = linear
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, dim * 2, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
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
        B, N, C = x.shape
        x = x.transpose(1, 2).reshape(B, C, *hw)  # (B, N, C) -> (B, C, H, W)
        if self.pool is not None:
            x = self.pool(x)
        x = self.norm(self.sr(x).flatten(2).transpose(1, 2))  # (B, C, h, w) -> (B, h*w, C)
        return self.act(x) if self.act is not None else x

    def forward(self, x: Tensor, hw: tuple[int, int]) -> Tensor:
        """Attend from every token of ``x`` (B, N, C) on an (H, W) grid to the reduced tokens."""
        B, N, C = x.shape
        q = self.q(x).reshape(B, N, self.num_heads, -1).transpose(1, 2)  # (B, N, C) -> (B, h, N, d)
        # (B, N', 2C) -> (B, N', 2, h, d) -> (2, B, h, N', d)
        k, v = self.kv(self.reduce(x, hw)).reshape(B, -1, 2, self.num_heads, C // self.num_heads) \
            .permute(2, 0, 3, 1, 4).unbind(0)
        if self.fused_attn:
            x = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop if self.training else 0.0)
        else:
            attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
            x = F.dropout(attn, self.attn_drop, self.training) @ v
        x = x.transpose(1, 2).reshape(B, N, C)  # (B, h, N, d) -> (B, N, C)
        return self.proj_drop(self.proj(x))


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
        x = self.fc1(x)
        B, N, C = x.shape
        x = self.relu(x.transpose(1, 2).reshape(B, C, *hw))  # (B, N, C) -> (B, C, H, W)
        x = self.dwconv(x).flatten(2).transpose(1, 2)  # (B, C, H, W) -> (B, N, C)
        return self.drop(self.fc2(self.drop(self.act(x))))


class PvtBlock(nn.Module):
    """Pre-norm block: spatial-reduction attention, then the MLP (plain for v1, depth-wise conv for v2)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, sr_ratio: int, linear: bool, dw_mlp: bool,
                 qkv_bias: bool, drop: float, attn_drop: float, drop_path: float, act: str,
                 fused_attn: bool) -> None:
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


class PvtStage(nn.Module):
    """One pyramid level: optional downsampling embedding, optional position embedding, blocks, optional norm."""

    def __init__(self, downsample: Optional[nn.Module], blocks: Sequence[PvtBlock], dim: int,
                 pos_grid: Optional[int], norm: bool, drop: float) -> None:
        super().__init__()
        self.downsample = downsample
        self.pos_embed = nn.Parameter(torch.zeros(1, dim, pos_grid, pos_grid)) if pos_grid else None
        self.pos_drop = nn.Dropout(drop)
        self.blocks = nn.ModuleList(blocks)
        self.norm = BlockNorm(dim) if norm else nn.Identity()


class _PvtBase(BaseBackbone):
    """Shared body of PVT v1 and v2 (see the module docstring for their differences)."""

    version = 0

    def __init__(self, arch: Union[str, dict], archs: dict[str, dict[str, Any]], in_channels: int,
                 drop_rate: float, attn_drop_rate: float, drop_path_rate: float, qkv_bias: bool,
                 pretrain_img_size: int, out_indices: Union[int, Sequence[int]], frozen_stages: int,
                 norm_eval: bool, with_cp: bool, fused_attn: bool, act: str, init_cfg: Union[dict, list, None]) -> None:
        cfg = resolve_arch(arch, archs, ARCH_KEYS, optional=('linear',) if self.version == 2 else ())
        lengths = {k: len(cfg[k]) for k in ARCH_KEYS}
        if len(set(lengths.values())) != 1:
            raise ValueError(f'arch entries must all have one value per stage, got lengths {lengths}')
        num_stages = lengths['depths']
        super().__init__(in_channels, num_stages, out_indices, frozen_stages, norm_eval, with_cp, init_cfg)
        dims, depths = tuple(cfg['embed_dims']), tuple(cfg['depths'])
        linear = bool(cfg.get('linear', False))
        v2 = self.version == 2
        if v2:
            self.patch_embed = PatchEmbed(in_channels, dims[0], 7, 4, 3)
        else:
            self.patch_embed = PatchEmbed(in_channels, dims[0], 4, 4, 0)
        rates = torch.linspace(0, drop_path_rate, sum(depths), device='cpu').tolist()
        self.stages = nn.ModuleList()
        num_built = max(self.out_indices) + 1
        for i in range(num_built):
            stride = 4 * 2 ** i
            downsample = None
            if i > 0:
                downsample = PatchEmbed(dims[i - 1], dims[i], 3, 2, 1) if v2 else PatchEmbed(dims[i - 1], dims[i], 2, 2, 0)
            blocks = [PvtBlock(dims[i], cfg['num_heads'][i], cfg['mlp_ratios'][i], cfg['sr_ratios'][i], linear,
                               dw_mlp=v2, qkv_bias=qkv_bias, drop=drop_rate, attn_drop=attn_drop_rate,
                               drop_path=rates[sum(depths[:i]) + j], act=act, fused_attn=fused_attn)
                      for j in range(depths[i])]
            self.stages.append(PvtStage(downsample, blocks, dims[i], None if v2 else pretrain_img_size // stride,
                                        norm=v2, drop=drop_rate))
        self.out_channels = tuple(dims[i] for i in self.out_indices)
        self.out_strides = tuple(4 * 2 ** i for i in self.out_indices)
        self.random_init()
        self.freeze_stages()

    @property
    def fused_attn(self) -> bool:
        """Whether attention runs through ``F.scaled_dot_product_attention``."""
        return all(m.fused_attn for m in self.modules() if isinstance(m, SpatialReductionAttention))

    @fused_attn.setter
    def fused_attn(self, value: bool) -> None:
        for module in self.modules():
            if isinstance(module, SpatialReductionAttention):
                module.fused_attn = value

    def random_init(self) -> None:
        """Truncated-normal linear weights and position embeddings; fan-out normal convs as the references."""
        super().random_init()
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels // module.groups
                nn.init.normal_(module.weight, std=(2.0 / fan_out) ** 0.5)
                nn.init.zeros_(module.bias)
            elif isinstance(module, PvtStage) and module.pos_embed is not None:
                nn.init.trunc_normal_(module.pos_embed, std=0.02)

    def stem_parts(self) -> list[Freezable]:
        return [self.patch_embed]

    def stage_parts(self, index: int) -> list[Freezable]:
        return [self.stages[index]] if index < len(self.stages) else []

    def convert_state_dict(self, state_dict: dict[str, Any], own: dict[str, Tensor]) -> Converted:
        """Convert official/timm/our PVT keys and resize v1 position embeddings to this model's grids."""
        result = convert_pvt_to_ours(state_dict)
        for key, value in result.state_dict.items():
            if key.endswith('pos_embed') and key in own and own[key].shape != value.shape:
                result.state_dict[key] = resize_abs_pos_embed(value, tuple(own[key].shape[-2:]), mode='bilinear')
        return result

    def check_input(self, x: Tensor) -> None:
        """Also reject v1 inputs too small for its flooring patch embeddings."""
        super().check_input(x)
        if self.version == 1:
            smallest = 4 * 2 ** (len(self.stages) - 1)
            if min(x.shape[-2:]) < smallest:
                raise ValueError(f'{type(self).__name__} needs inputs of at least {smallest}x{smallest} pixels '
                                 f'(its patch embeddings floor), got {tuple(x.shape[-2:])}')

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        """Return one (B, C_i, H_i, W_i) map per entry of ``out_indices``."""
        self.check_input(x)
        x = self.patch_embed(x)  # (B, H/4, W/4, C)
        outs = {}
        for i, stage in enumerate(self.stages):
            if stage.downsample is not None:
                x = stage.downsample(x.permute(0, 3, 1, 2))  # (B, H, W, C) -> (B, C, H, W) -> (B, H/2, W/2, C')
            B, H, W, C = x.shape
            if stage.pos_embed is not None:
                pos = resize_abs_pos_embed(stage.pos_embed, (H, W), mode='bilinear')
                x = x + pos.permute(0, 2, 3, 1)  # (1, C, H, W) -> (1, H, W, C)
            x = stage.pos_drop(x).reshape(B, H * W, C)  # (B, H, W, C) -> (B, N, C)
            for block in stage.blocks:
                x = self.run_block(block, x, (H, W))
            x = stage.norm(x).reshape(B, H, W, C)  # (B, N, C) -> (B, H, W, C)
            if i in self.out_indices:
                outs[i] = x.permute(0, 3, 1, 2).contiguous()  # (B, H, W, C) -> (B, C, H, W)
        return tuple(outs[i] for i in self.out_indices)


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
        fused_attn: ``F.scaled_dot_product_attention`` or the explicit math path.
        act: Activation name.
        init_cfg: mmengine init config, e.g. ``dict(type='Pretrained', checkpoint=PATH)`` with our, official
            or mmdet PVT checkpoints.
    """

    version = 1

    def __init__(self, arch: Union[str, dict] = 'small', in_channels: int = 3, drop_rate: float = 0.0,
                 attn_drop_rate: float = 0.0, drop_path_rate: float = 0.1, qkv_bias: bool = True,
                 pretrain_img_size: int = 224, out_indices: Union[int, Sequence[int]] = (0, 1, 2, 3),
                 frozen_stages: int = -1, norm_eval: bool = False, with_cp: bool = False, fused_attn: bool = True,
                 act: str = 'gelu', init_cfg: Union[dict, list, None] = None) -> None:
        super().__init__(arch, V1_ARCHS, in_channels, drop_rate, attn_drop_rate, drop_path_rate, qkv_bias,
                         pretrain_img_size, out_indices, frozen_stages, norm_eval, with_cp, fused_attn, act, init_cfg)


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
        fused_attn: ``F.scaled_dot_product_attention`` or the explicit math path.
        act: Activation name.
        init_cfg: mmengine init config, e.g. ``dict(type='Pretrained', checkpoint=PATH)`` with our, timm,
            official or mmdet PVT v2 checkpoints.
    """

    version = 2

    def __init__(self, arch: Union[str, dict] = 'b2', in_channels: int = 3, drop_rate: float = 0.0,
                 attn_drop_rate: float = 0.0, drop_path_rate: float = 0.1, qkv_bias: bool = True,
                 out_indices: Union[int, Sequence[int]] = (0, 1, 2, 3), frozen_stages: int = -1,
                 norm_eval: bool = False, with_cp: bool = False, fused_attn: bool = True, act: str = 'gelu',
                 init_cfg: Union[dict, list, None] = None) -> None:
        super().__init__(arch, V2_ARCHS, in_channels, drop_rate, attn_drop_rate, drop_path_rate, qkv_bias, 224,
                         out_indices, frozen_stages, norm_eval, with_cp, fused_attn, act, init_cfg)
