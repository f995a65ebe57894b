"""LeViT: a convolutional stem and BatchNorm transformer blocks with learned attention biases, in three stages.

Paper: Graham et al., "LeViT: a Vision Transformer in ConvNet's Clothing for Faster Inference", ICCV 2021,
arXiv:2104.01136. Reference code: facebookresearch/LeViT and timm ``timm/models/levit.py`` (``levit_*``: linear
layout, ``levit_conv_*``: the same model with 1x1 convolutions), whose parameter names this module keeps.

What timm computes, and this code with it:

* Every projection is ``LinearBN``: a linear map without bias, then BatchNorm over channels (timm ``LinearNorm``;
  the conv layout's ``ConvNorm`` 1x1 is the same map). Activations are Hardswish (``act``; the 'd' and 512 presets
  use SiLU). Initialisation is timm's: PyTorch's default for linear and conv weights, BatchNorm weights 1 except
  the two that end a residual branch in a block (``attn.proj.ln``, ``mlp.ln2``), which start at 0; attention
  biases 0.
* Stem: four 3x3 stride-2 convolutions (padding 1, no bias) each with BatchNorm, Hardswish between them:
  ``C/8, C/4, C/2, C`` channels (stride 16). Each rounds up, so an (H, W) image gives ``ceil(H/16) x ceil(W/16)``.
* Attention with ``h`` heads of key width ``d`` and value width ``dv = attn_ratio * d``: ``qkv`` projects to
  ``h * (2d + dv)`` channels grouped per head as ``[q | k | v]``; ``softmax(q k^T / sqrt(d) + B) v``; the heads
  are concatenated, then Hardswish, then ``proj`` (LinearBN back to the width).
* Attention bias ``B``: per head a table ``T[h, |dy|, |dx|]`` over the absolute offsets of the grid the model was
  built for (``pretrain_img_size // 16`` for stage 0, then ``(r - 1) // 2 + 1`` per stage; timm's
  ``attention_biases`` of shape (h, R0 * R1) with index ``|dy| * R1 + |dx|``). On an (H, W) grid the table is
  first resized from (R0, R1) to (H, W) in float32 (bicubic, ``align_corners=False``, antialiased when it shrinks:
  TinyViT's and timm's ``resize_rel_pos_bias_table_levit`` rule, generalised to non-square grids), then read at the
  offsets of that grid. At the built grid the resize is the exact identity, so the outputs equal timm's; loading a
  checkpoint whose square table has another size applies the same resize once.
* Block: ``x + drop_path(attn(x))``, ``x + drop_path(mlp(x))``; MLP ``LinearBN -> act -> LinearBN`` with hidden
  width ``mlp_ratio * C``. No LayerNorm anywhere.
* Shrink attention (first module of stages 1 and 2): ``in_dim // d`` heads, ``dv = 4d``; keys and values from the
  full (H, W) grid, queries from its stride-2 subsample (rows and columns 0, 2, 4, ...: ``(H - 1) // 2 + 1`` of
  them, the rounding of timm's ``Downsample`` / ``AvgPool2d(1, 2)``), the bias read at the offsets between the
  subsampled query positions and all key positions; no residual around it, then ``x + drop_path(mlp(x))`` with
  ``mlp_ratio`` 2.
* Stochastic depth: one rate, ``drop_path_rate``, for every residual branch of every stage (timm's and the
  official rule; it does not rise with depth). ``drop_rate`` drops MLP hidden units and ``attn_drop_rate``
  attention weights (0 in timm).

Dense outputs: the NCHW map of every stage in ``out_indices`` at strides 16, 32, 64; nothing is normalised after a
stage (the last BatchNorm of each branch is the stage's output norm).

BatchNorm with one value per channel in training (a 1x1 map of a single image, where PyTorch's BatchNorm and timm
raise an error): the projection normalises with its running statistics and leaves them unchanged.
"""
import math
from collections import OrderedDict
from typing import Any, Callable, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..converters import levit as _levit_layouts  # noqa: F401  (registers the 'levit' checkpoint layouts)
from ..converters.common import CheckpointMismatchError
from ..layers import Attention, BackboneStage, DropPath, get_act_layer, nchw_to_nhwc, resize_abs_pos_embed
from ..registry import MODELS
from .base import BaseBackbone, Freezable, check_int, check_per_stage, check_positive, check_rates, resolve_arch
from .vit import to_2tuple

__all__ = ['LeViT']

ARCHS: dict[str, dict[str, Any]] = {  # timm's ``model_cfgs`` (levit_128s ... levit_512d)
    '128s': dict(embed_dims=(128, 256, 384), key_dim=16, num_heads=(4, 6, 8), depths=(2, 3, 4)),
    '128': dict(embed_dims=(128, 256, 384), key_dim=16, num_heads=(4, 8, 12), depths=(4, 4, 4)),
    '192': dict(embed_dims=(192, 288, 384), key_dim=32, num_heads=(3, 5, 6), depths=(4, 4, 4)),
    '256': dict(embed_dims=(256, 384, 512), key_dim=32, num_heads=(4, 6, 8), depths=(4, 4, 4)),
    '384': dict(embed_dims=(384, 512, 768), key_dim=32, num_heads=(6, 9, 12), depths=(4, 4, 4)),
    '512': dict(embed_dims=(512, 768, 1024), key_dim=64, num_heads=(8, 12, 16), depths=(4, 4, 4), act='silu'),
    '256d': dict(embed_dims=(256, 384, 512), key_dim=32, num_heads=(4, 6, 8), depths=(4, 8, 6), act='silu'),
    '512d': dict(embed_dims=(512, 640, 768), key_dim=64, num_heads=(8, 10, 12), depths=(4, 8, 6), act='silu'),
}
ARCH_KEYS = ('embed_dims', 'key_dim', 'num_heads', 'depths')
ARCH_OPTIONAL = ('attn_ratio', 'mlp_ratio', 'act')
STEM_STRIDE = 16
DOWN_ATTN_RATIO = 4.0  # shrink attention: value width 4 * key_dim (timm's LevitDownsample)
DOWN_MLP_RATIO = 2.0


def act_layer(name: str) -> Callable[[], nn.Module]:
    """The activation named ``name``: ``'hardswish'`` (LeViT's) or any of :func:`get_act_layer`'s."""
    if name == 'hardswish':
        return nn.Hardswish
    try:
        return get_act_layer(name)
    except ValueError:
        raise ValueError(f"unknown activation {name!r} for act; expected 'hardswish' or one of "
                         "'gelu', 'quick_gelu', 'relu', 'relu6', 'silu'") from None


def offset_index(size: tuple[int, int], stride: int, device: torch.device) -> Tensor:
    """Index ``|dy| * W + |dx|`` into a flattened (H, W) offset table for every (query, key) pair.

    Keys are all positions of the (H, W) grid; queries the positions ``(i * stride, j * stride)``, i.e. the grid's
    stride-``stride`` subsample (the grid itself for stride 1). Returns (Hq * Wq, H * W), row-major on both sides.
    """
    H, W = size
    ky = torch.arange(H, device=device)
    kx = torch.arange(W, device=device)
    dy = (ky[::stride, None] - ky[None, :]).abs()  # (Hq, H)
    dx = (kx[::stride, None] - kx[None, :]).abs()  # (Wq, W)
    index = dy[:, None, :, None] * W + dx[None, :, None, :]  # (Hq, Wq, H, W)
    return index.flatten(2).flatten(0, 1)  # (Hq, Wq, H, W) -> (Hq * Wq, H * W)


def resize_bias_table(table: Tensor, old: tuple[int, int], new: tuple[int, int], antialias: bool = True) -> Tensor:
    """Resize per-head offset tables (h, old_h * old_w) to (h, new_h * new_w): bicubic in float32, as TinyViT.

    The exact identity when ``old == new`` (no short cut: a size comparison would freeze exported graphs).
    """
    heads = table.shape[0]
    grid = table.float().reshape(1, heads, old[0], old[1])  # (h, R0 * R1) -> (1, h, R0, R1)
    grid = resize_abs_pos_embed(grid, new, mode='bicubic', antialias=antialias)
    return grid.reshape(heads, new[0] * new[1]).to(table.dtype)  # (1, h, H, W) -> (h, H * W)


class TokenBatchNorm(nn.BatchNorm1d):
    """BatchNorm over the channels of (M, C) rows; with a single row in training it uses the running statistics
    (and leaves them unchanged) instead of failing, as no batch statistics exist."""

    def forward(self, x: Tensor) -> Tensor:
        if self.training and x.shape[0] == 1:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        return super().forward(x)


class LinearBN(nn.Module):
    """Linear map without bias, then BatchNorm over channels, on channel-last input (..., C) (timm ``LinearNorm``).

    Args:
        in_dim: Input channels.
        out_dim: Output channels.
        bn_weight_init: Initial BatchNorm weight (0 where the map ends a residual branch).
    """

    def __init__(self, in_dim: int, out_dim: int, bn_weight_init: float = 1.0) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, out_dim, bias=False)
        self.bn = TokenBatchNorm(out_dim)
        self.bn_weight_init = bn_weight_init

    def reset_parameters(self) -> None:
        """timm's init: PyTorch's default linear weights, BatchNorm reset with weight ``bn_weight_init``."""
        self.linear.reset_parameters()
        self.bn.reset_parameters()
        nn.init.constant_(self.bn.weight, self.bn_weight_init)

    def forward(self, x: Tensor) -> Tensor:
        x = self.linear(x)
        return self.bn(x.reshape(-1, x.shape[-1])).reshape(x.shape)  # (..., C) -> (M, C) -> (..., C)


class ConvBN(nn.Module):
    """Convolution without bias, then BatchNorm2d (timm ``ConvNorm``): the stem's layers."""

    def __init__(self, in_dim: int, out_dim: int, kernel_size: int = 3, stride: int = 2, padding: int = 1) -> None:
        super().__init__()
        self.linear = nn.Conv2d(in_dim, out_dim, kernel_size, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(out_dim)

    def reset_parameters(self) -> None:
        """PyTorch's default convolution init; BatchNorm weight 1, bias 0."""
        self.linear.reset_parameters()
        self.bn.reset_parameters()

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(self.linear(x))


class Stem16(nn.Module):
    """Four 3x3 stride-2 ``ConvBN`` (widths C/8, C/4, C/2, C) with activations between: (B, 3, H, W) -> stride 16."""

    def __init__(self, in_channels: int, dim: int, act: Callable[[], nn.Module]) -> None:
        super().__init__()
        self.conv1 = ConvBN(in_channels, dim // 8)
        self.act1 = act()
        self.conv2 = ConvBN(dim // 8, dim // 4)
        self.act2 = act()
        self.conv3 = ConvBN(dim // 4, dim // 2)
        self.act3 = act()
        self.conv4 = ConvBN(dim // 2, dim)

    def forward(self, x: Tensor) -> Tensor:
        x = self.act1(self.conv1(x))
        x = self.act2(self.conv2(x))
        return self.conv4(self.act3(self.conv3(x)))


class StridedQuery(nn.Module):
    """Queries of shrink attention: the stride-``stride`` subsample of the map, then ``ln`` (timm ``q``)."""

    def __init__(self, in_dim: int, out_dim: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.ln = LinearBN(in_dim, out_dim)

    def forward(self, x: Tensor) -> Tensor:
        """(B, H, W, C) -> (B, (H - 1) // stride + 1, (W - 1) // stride + 1, C')."""
        return self.ln(x[:, ::self.stride, ::self.stride])


class LeViTAttention(Attention):
    """LeViT attention over a (B, H, W, C) map with a learned per-head offset bias; stride 2 makes it shrink
    attention (queries from the subsampled grid, output width ``out_dim``).

    Args:
        dim: Input channels.
        out_dim: Output channels.
        key_dim: Per-head query/key width ``d``.
        num_heads: Heads.
        attn_ratio: Value width per head over ``d``.
        table_size: (R0, R1) grid the bias table is laid out for.
        stride: 1 (self-attention) or the query subsampling stride.
        act: Activation before the output projection.
        attn_drop: Dropout on attention weights.
        interpolate_antialias: Antialias when the bias table shrinks to a smaller grid.
        fused_attn: Per-module fused/math override.
    """

    def __init__(self, dim: int, out_dim: int, key_dim: int, num_heads: int, attn_ratio: float,
                 table_size: tuple[int, int], stride: int = 1, act: Callable[[], nn.Module] = nn.Hardswish,
                 attn_drop: float = 0.0, interpolate_antialias: bool = True,
                 fused_attn: Optional[bool] = None) -> None:
        # the shared attention on h heads of width d (its scale d ** -0.5); its default projections are replaced
        super().__init__(num_heads * key_dim, num_heads, qkv_bias=False, attn_drop=attn_drop,
                         qkv_layout='qkv' if stride == 1 else 'q_kv', fused_attn=fused_attn)
        self.key_dim = key_dim
        self.val_dim = int(attn_ratio * key_dim)
        self.stride = stride
        self.table_size = table_size
        self.interpolate_antialias = interpolate_antialias
        if stride == 1:
            self.qkv = LinearBN(dim, num_heads * (2 * key_dim + self.val_dim))
        else:
            self.kv = LinearBN(dim, num_heads * (key_dim + self.val_dim))
            self.q = StridedQuery(dim, num_heads * key_dim, stride)
        self.proj = nn.Sequential(OrderedDict([
            ('act', act()),
            ('ln', LinearBN(num_heads * self.val_dim, out_dim, bn_weight_init=0.0 if stride == 1 else 1.0))]))
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, table_size[0] * table_size[1]))

    def position_bias(self, size: tuple[int, int]) -> Tensor:
        """The (h, Hq * Wq, H * W) bias of an (H, W) key grid: the table resized to (H, W), read at the offsets."""
        if self.interpolate_antialias and torch.onnx.is_in_onnx_export() and torch.jit.is_tracing():
            raise RuntimeError('the TorchScript ONNX exporter (dynamo=False) has no antialiased bicubic resize: '
                               'export with torch.onnx.export(..., dynamo=True), or build the backbone with '
                               'interpolate_antialias=False')
        table = resize_bias_table(self.attention_biases, self.table_size, size, self.interpolate_antialias)
        return table[:, offset_index(size, self.stride, table.device)]  # (h, H * W) -> (h, Nq, H * W)

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        """(B, H, W, C) -> (B, Hq, Wq, out_dim) with (Hq, Wq) the (subsampled) query grid."""
        B, H, W, _ = x.shape
        d, dv, h = self.key_dim, self.val_dim, self.num_heads
        if self.stride == 1:
            q, k, v = self.qkv(x).reshape(B, H * W, h, 2 * d + dv).split([d, d, dv], dim=3)  # (B, N, h, *)
            Hq, Wq = H, W
        else:
            k, v = self.kv(x).reshape(B, H * W, h, d + dv).split([d, dv], dim=3)  # (B, N, h, *)
            q = self.q(x)
            Hq, Wq = q.shape[1], q.shape[2]
            q = q.reshape(B, Hq * Wq, h, d)  # (B, Hq, Wq, h * d) -> (B, Nq, h, d)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, N, h, *) -> (B, h, N, *)
        out = self.attend(q, k, v, bias=self.position_bias((H, W)))
        out = out.transpose(1, 2).reshape(B, Hq, Wq, h * dv)  # (B, h, Nq, dv) -> (B, Nq, h, dv) -> (B, Hq, Wq, .)
        return self.proj(out)

    def extra_repr(self) -> str:
        return f'{super().extra_repr()}, key_dim={self.key_dim}, stride={self.stride}, table={self.table_size}'


class LeViTMlp(nn.Module):
    """``LinearBN -> act -> dropout -> LinearBN`` (the last BatchNorm starts at 0) on channel-last input."""

    def __init__(self, dim: int, hidden: int, act: Callable[[], nn.Module], drop: float = 0.0) -> None:
        super().__init__()
        self.ln1 = LinearBN(dim, hidden)
        self.act = act()
        self.drop = nn.Dropout(drop)
        self.ln2 = LinearBN(hidden, dim, bn_weight_init=0.0)

    def forward(self, x: Tensor) -> Tensor:
        return self.ln2(self.drop(self.act(self.ln1(x))))


def _drop_path(rate: float) -> nn.Module:
    return DropPath(rate) if rate > 0 else nn.Identity()


class LeViTBlock(nn.Module):
    """``x + drop_path(attn(x))``, then ``x + drop_path(mlp(x))`` on a (B, H, W, C) map."""

    def __init__(self, dim: int, key_dim: int, num_heads: int, attn_ratio: float, mlp_ratio: float,
                 table_size: tuple[int, int], act: Callable[[], nn.Module], drop: float, drop_path: float,
                 **attn_kwargs: Any) -> None:
        super().__init__()
        self.attn = LeViTAttention(dim, dim, key_dim, num_heads, attn_ratio, table_size, act=act, **attn_kwargs)
        self.drop_path1 = _drop_path(drop_path)
        self.mlp = LeViTMlp(dim, int(dim * mlp_ratio), act, drop)
        self.drop_path2 = _drop_path(drop_path)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop_path1(self.attn(x))
        return x + self.drop_path2(self.mlp(x))


class LeViTDownsample(nn.Module):
    """Shrink attention to the stride-2 grid and ``out_dim`` channels, then ``x + drop_path(mlp(x))``."""

    def __init__(self, in_dim: int, out_dim: int, key_dim: int, table_size: tuple[int, int],
                 act: Callable[[], nn.Module], drop: float, drop_path: float, **attn_kwargs: Any) -> None:
        super().__init__()
        self.attn_downsample = LeViTAttention(in_dim, out_dim, key_dim, in_dim // key_dim, DOWN_ATTN_RATIO,
                                              table_size, stride=2, act=act, **attn_kwargs)
        self.mlp = LeViTMlp(out_dim, int(out_dim * DOWN_MLP_RATIO), act, drop)
        self.drop_path = _drop_path(drop_path)

    def forward(self, x: Tensor) -> Tensor:
        x = self.attn_downsample(x)
        return x + self.drop_path(self.mlp(x))


class LeViTStage(BackboneStage):
    """Optional shrink attention (``downsample``), then ``blocks``; maps (B, H, W, C) -> (B, H', W', C')."""

    def __init__(self, downsample: Optional[LeViTDownsample], blocks: Sequence[LeViTBlock]) -> None:
        super().__init__()
        self.downsample = downsample
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: Tensor) -> Tensor:
        if self.downsample is not None:
            x = self.run_block(self.downsample, x)
        for block in self.blocks:
            x = self.run_block(block, x)
        return x


def _per_stage_ratio(cfg: dict, key: str, num_stages: int, default: float) -> tuple[float, ...]:
    value = cfg.get(key, default)
    values = tuple(value) if isinstance(value, (list, tuple)) else (value,) * num_stages
    if len(values) != num_stages:
        raise ValueError(f"arch['{key}'] must be a number or one per stage ({num_stages}), got {value!r}")
    return tuple(check_positive(f"arch['{key}']", v) for v in values)


@MODELS.register_module()
class LeViT(BaseBackbone):
    """LeViT backbone returning NCHW maps at strides 16, 32, 64.

    Args:
        arch: ``'128s'``, ``'128'``, ``'192'``, ``'256'``, ``'384'`` (timm's pretrained presets), ``'512'``,
            ``'256d'``, ``'512d'`` (timm's untrained SiLU presets), or a dict with ``embed_dims``, ``key_dim``,
            ``num_heads``, ``depths`` (one entry per stage but ``key_dim``) and optionally ``attn_ratio``,
            ``mlp_ratio`` (a number or one per stage; default 2.0 each) and ``act`` (default ``'hardswish'``).
        pretrain_img_size: Image size (int or (H, W)) the attention-bias tables are laid out for: grids of
            ``size // 16`` at stage 0, then ``(r - 1) // 2 + 1``. timm's ``img_size``; other inputs resize them.
        in_channels: Input image channels.
        act: Activation name overriding the arch's (``'hardswish'``, ``'silu'``, ...).
        drop_rate: Dropout of MLP hidden units.
        attn_drop_rate: Dropout on attention weights.
        drop_path_rate: Stochastic depth of every residual branch (one rate for all, timm's rule).
        out_indices: Stages to output; later stages are not built.
        frozen_stages: -1 nothing, 0 the stem, k the stem and stages 0..k-1.
        norm_eval: Keep every BatchNorm in eval mode while training.
        with_cp: Non-reentrant activation checkpointing of every block and shrink attention.
        fused_attn: ``F.scaled_dot_product_attention`` (True), the math path (False) or the package default (None).
        interpolate_antialias: Antialias when a bias table shrinks (True: timm's resize; False for the TorchScript
            ONNX exporter, which has no antialiased bicubic resize).
        init_cfg: mmengine init config, e.g. ``dict(type='Pretrained', checkpoint=PATH)`` with a timm ``levit_*``
            or ``levit_conv_*`` checkpoint, or ours.
        cls_output: ``'avg_featmap'``: the last stage's tokens averaged, timm's classifier feature (see
            :class:`~vit_backbones.backbones.base.BaseBackbone`).
    """

    checkpoint_family = 'levit'
    stem_conv_keys = ('stem.conv1.linear.weight',)

    def __init__(self, arch: Union[str, dict] = '256', pretrain_img_size: Union[int, Sequence[int]] = 224,
                 in_channels: int = 3, act: Optional[str] = None, drop_rate: float = 0.0,
                 attn_drop_rate: float = 0.0, drop_path_rate: float = 0.0,
                 out_indices: Union[int, Sequence[int]] = (0, 1, 2), frozen_stages: int = -1,
                 norm_eval: bool = False, with_cp: bool = False, fused_attn: Optional[bool] = None,
                 interpolate_antialias: bool = True, init_cfg: Union[dict, list, None] = None,
                 cls_output: Optional[str] = None) -> None:
        cfg = resolve_arch(arch, ARCHS, ARCH_KEYS, optional=ARCH_OPTIONAL)
        num_stages = len(cfg['depths']) if isinstance(cfg['depths'], (list, tuple)) else 1
        dims = check_per_stage(cfg, 'embed_dims', num_stages)
        depths = check_per_stage(cfg, 'depths', num_stages)
        heads = check_per_stage(cfg, 'num_heads', num_stages)
        key_dim = check_int("arch['key_dim']", cfg['key_dim'])
        attn_ratios = _per_stage_ratio(cfg, 'attn_ratio', num_stages, 2.0)
        mlp_ratios = _per_stage_ratio(cfg, 'mlp_ratio', num_stages, 2.0)
        if any(int(r * key_dim) < 1 for r in attn_ratios):
            raise ValueError(f"arch['attn_ratio'] * arch['key_dim'] (the value width) must be >= 1, got "
                             f'{attn_ratios} * {key_dim}')
        for i in range(num_stages - 1):
            if dims[i] < key_dim:
                raise ValueError(f"arch['embed_dims'][{i}] = {dims[i]} must be >= arch['key_dim'] = {key_dim}: "
                                 f'the shrink attention after it has embed_dims[{i}] // key_dim heads')
        if dims[0] < 8:
            raise ValueError(f"arch['embed_dims'][0] must be >= 8 (the stem's first conv has embed_dims[0] // 8 "
                             f'channels), got {dims[0]}')
        activation = act_layer(act or cfg.get('act', 'hardswish'))
        img_size = to_2tuple(pretrain_img_size, 'pretrain_img_size')
        if min(img_size) < STEM_STRIDE:
            raise ValueError(f'pretrain_img_size must be at least {STEM_STRIDE} (one stem output), got '
                             f'{pretrain_img_size!r}')
        check_rates(drop_rate=drop_rate, attn_drop_rate=attn_drop_rate, drop_path_rate=drop_path_rate)
        super().__init__(in_channels, num_stages, out_indices, frozen_stages, norm_eval, with_cp, init_cfg, cls_output)
        self.arch_settings = dict(embed_dims=dims, key_dim=key_dim, num_heads=heads, depths=depths,
                                  attn_ratio=attn_ratios, mlp_ratio=mlp_ratios)
        self.interpolate_antialias = interpolate_antialias
        self.stem = Stem16(in_channels, dims[0], activation)
        grid = tuple(side // STEM_STRIDE for side in img_size)
        common = dict(act=activation, drop=drop_rate, drop_path=drop_path_rate, attn_drop=attn_drop_rate,
                      interpolate_antialias=interpolate_antialias, fused_attn=fused_attn)
        stages = []
        for i in range(max(self.out_indices) + 1):
            downsample = None
            if i > 0:
                downsample = LeViTDownsample(dims[i - 1], dims[i], key_dim, grid, **common)
                grid = tuple((side - 1) // 2 + 1 for side in grid)
            blocks = [LeViTBlock(dims[i], key_dim, heads[i], attn_ratios[i], mlp_ratios[i], grid, **common)
                      for _ in range(depths[i])]
            stages.append(LeViTStage(downsample, blocks))
        self.stages = nn.ModuleList(stages)
        self.out_channels = tuple(dims[i] for i in self.out_indices)
        self.out_strides = tuple(STEM_STRIDE * 2 ** i for i in self.out_indices)

    # ---- init and loading -------------------------------------------------------------------------------
    def random_init(self) -> None:
        """timm's init (see the module docstring): PyTorch's default linear and conv weights, BatchNorms 1/0 except
        the zero-started ones ending residual branches, attention biases 0."""
        for module in self.modules():
            if isinstance(module, (LinearBN, ConvBN)):
                module.reset_parameters()
            elif isinstance(module, LeViTAttention):
                nn.init.zeros_(module.attention_biases)

    def own_init_parameters(self) -> list[str]:
        """Every linear weight (PyTorch's default init, not trunc-normal), the zero-started BatchNorm weights and
        the zero attention biases."""
        modules = dict(self.named_modules())
        own = []
        for name, _ in self.named_parameters():
            owner = modules[name.rsplit('.', 1)[0]]
            if name.endswith('.attention_biases') or (isinstance(owner, nn.Linear) and name.endswith('.weight')):
                own.append(name)
            elif name.endswith('.bn.weight') and getattr(modules[name.rsplit('.', 2)[0]], 'bn_weight_init', 1) == 0:
                own.append(name)
        return own

    def adapt_state_dict(self, state_dict: dict[str, Any], own: dict[str, Tensor]) -> dict[str, Any]:
        """Resize square attention-bias tables of another grid to this model's (the forward's bicubic rule)."""
        sd = dict(state_dict)
        for key, table in state_dict.items():
            if not key.endswith('attention_biases') or key not in own or not isinstance(table, Tensor) \
                    or table.shape == own[key].shape:
                continue
            target = own[key].shape
            side = math.isqrt(table.shape[-1]) if table.ndim == 2 else 0
            if table.ndim != 2 or table.shape[0] != target[0] or side * side != table.shape[1]:
                raise CheckpointMismatchError(
                    f'checkpoint {key} has shape {tuple(table.shape)}; expected ({target[0]}, R * R) for a square '
                    f'grid of offsets (this model: {tuple(target)})')
            module = self.get_submodule(key.rsplit('.', 1)[0])
            sd[key] = resize_bias_table(table, (side, side), module.table_size, self.interpolate_antialias)
        return sd

    # ---- contract -------------------------------------------------------------------------------------
    def stem_parts(self) -> list[Freezable]:
        """The convolutional stem."""
        return [self.stem]

    def forward_stem(self, x: Tensor) -> Tensor:
        """Four stride-2 conv layers: (B, C, H, W) -> (B, ceil(H / 16), ceil(W / 16), C')."""
        return nchw_to_nhwc(self.stem(x))  # (B, C', h, w) -> (B, h, w, C')
