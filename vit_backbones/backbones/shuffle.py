"""Shuffle Transformer: window attention alternating with spatially shuffled window attention.

Paper: Huang et al., "Shuffle Transformer: Rethinking Spatial Shuffle for Vision Transformer", arXiv:2106.03650.
Reference code: mulinmeng/Shuffle-Transformer (``models/shuffle_transformer.py``, ``config.py``, ``configs/*.yaml``),
classification only. This is the dense version of the same model: an official checkpoint computes the same
stage outputs here (at sizes the original accepts), and any input size works.

What the original computes, and this code with it:

* Token stem: ``conv3x3/2 -> BN -> ReLU6 -> conv3x3/2 -> BN -> ReLU6 -> conv1x1`` (stride 4).
* Stage i: patch merging (``BN -> conv2x2/2``, no bias) where its width changes, then pairs of blocks: the first
  of a pair attends inside regular windows, the second inside shuffled windows (window (i, j) gathers the tokens
  ``H / ws`` rows and ``W / ws`` columns apart, so every window spans the whole map).
* Block: ``x + attn(BN(x))``, then ``x + dwconv_ws(BN(x))`` (the neighbour-window connection: a depth-wise conv
  with the window's kernel, with bias, and no stochastic depth), then ``x + mlp(BN(x))``; the attention's q/k/v
  projection has no bias, its output projection has one; a learned relative-position bias per window (as Swin's);
  the MLP is ``fc -> ReLU6 -> fc``. All norms are BatchNorm2d (eps 1e-5); widths are 32 channels a head.
* Stochastic depth: one rate per stage, ``linspace(0, drop_path_rate, num_stages)[i]`` for every block of stage i
  (the official rule, not Swin's per-block ramp).

Any input size (the original needs every stage's map divisible by the window): the stem and patch merging round
up (stage i is ``ceil(H / (4 * 2**i))``, odd maps are zero-padded at the bottom/right before merging), and each
block pads its normalised map at the bottom/right to whole windows and crops the result back. The padded tokens
are masked out as keys, so they never dilute the attention of real tokens. The shuffle stays exact on the padded
map: with ``Hp = nh * ws`` padded rows, shuffled window row ``i`` holds rows ``i, i + nh, ..., i + (ws - 1) * nh``
of the padded map, which is the official shuffle of an ``Hp x Wp`` input; the padding lands in the last rows and
columns of some windows, never in a window of its own. At sizes divisible by the window at every stage (224:
56, 28, 14, 7) nothing is padded and the outputs are the official ones. The maps are returned as the stages
produce them (the original has no output norm).

Tokens travel between stages channel-last (B, H, W, C); the BatchNorms and convolutions see the same memory as
channels-last NCHW, so no copies are made for them.
"""
from typing import Any, Callable, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..converters import shuffle as _shuffle_layouts  # noqa: F401  (registers the 'shuffle' checkpoint layouts)
from ..layers import (
    BackboneStage,
    DropPath,
    LayoutCache,
    Mlp,
    WindowAttention,
    WindowIndex,
    get_act_layer,
    padded_key_mask,
    residual_add,
    resize_rel_pos_bias_table,
    window_index,
)
from ..registry import MODELS
from .base import (
    BaseBackbone,
    Freezable,
    check_heads_divide,
    check_int,
    check_per_stage,
    check_positive,
    check_rates,
    resolve_arch,
)

__all__ = ['ShuffleTransformer']

ARCHS: dict[str, dict[str, Any]] = {
    'tiny': dict(embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24)),
    'small': dict(embed_dim=96, depths=(2, 2, 18, 2), num_heads=(3, 6, 12, 24)),
    'base': dict(embed_dim=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32)),
}
ARCH_KEYS = ('embed_dim', 'depths', 'num_heads')
ARCH_OPTIONAL = ('dims', 'token_dim')
HEAD_WIDTH = 32  # the official widths: 32 channels per head
TOKEN_DIM = 32  # the official stem's inner width


def bn_nhwc(norm: nn.Module, x: Tensor) -> Tensor:
    """Apply a BatchNorm2d to channel-last tokens (B, H, W, C) through a channels-last NCHW view."""
    return norm(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)  # (B, H, W, C) -> (B, C, H, W) -> back


class ConvTokenStem(nn.Module):
    """The official token stem: two stride-2 3x3 conv + BN + ReLU6, then a 1x1 conv; (B, C, H, W) -> NHWC /4.

    Args:
        in_channels: Image channels.
        token_dim: Width after the first conv.
        embed_dim: Output width.
    """

    def __init__(self, in_channels: int, token_dim: int, embed_dim: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, token_dim, 3, 2, 1)
        self.bn1 = nn.BatchNorm2d(token_dim)
        self.conv2 = nn.Conv2d(token_dim, embed_dim, 3, 2, 1)
        self.bn2 = nn.BatchNorm2d(embed_dim)
        self.proj = nn.Conv2d(embed_dim, embed_dim, 1)
        self.act = nn.ReLU6()

    def forward(self, x: Tensor) -> Tensor:
        x = self.act(self.bn1(self.conv1(x)))
        x = self.proj(self.act(self.bn2(self.conv2(x))))
        return x.permute(0, 2, 3, 1)  # (B, C, H/4, W/4) -> (B, H/4, W/4, C)


class ConvPatchMerging(nn.Module):
    """``BN -> conv2x2/2`` (no bias) on channel-last tokens; odd sizes are zero-padded at the bottom/right.

    Args:
        dim: Input width.
        out_dim: Output width.
    """

    def __init__(self, dim: int, out_dim: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(dim)
        self.reduction = nn.Conv2d(dim, out_dim, 2, 2, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        """(B, H, W, C) -> (B, ceil(H/2), ceil(W/2), out_dim)."""
        H, W = x.shape[1], x.shape[2]
        x = self.norm(x.permute(0, 3, 1, 2))  # (B, H, W, C) -> (B, C, H, W)
        x = F.pad(x, (0, (W + 1) // 2 * 2 - W, 0, (H + 1) // 2 * 2 - H))  # always (possibly by 0): traceable
        return self.reduction(x).permute(0, 2, 3, 1)  # (B, C', H/2, W/2) -> (B, H/2, W/2, C')


class ShuffleBlock(nn.Module):
    """Window (or shuffled-window) attention, neighbour-window depth-wise conv and MLP, each after a BatchNorm.

    Args:
        dim: Token channels.
        num_heads: Attention heads.
        window_size: Window side, also the kernel of the neighbour-window conv (odd).
        shuffle: Attend inside shuffled windows instead of regular ones.
        mlp_ratio: MLP hidden width over ``dim``.
        local_bias: Bias in the neighbour-window conv (the official ``qkv_bias`` flag, True in its configs).
        drop: Dropout after the attention projection and in the MLP.
        attn_drop: Dropout on attention weights.
        drop_path: Stochastic depth of the attention and MLP branches.
        act_layer: MLP activation constructor.
        fused_attn: Per-module fused/math override.
    """

    def __init__(self, dim: int, num_heads: int, window_size: int, shuffle: bool, mlp_ratio: float,
                 local_bias: bool, drop: float, attn_drop: float, drop_path: float,
                 act_layer: Callable[[], nn.Module], fused_attn: Optional[bool]) -> None:
        super().__init__()
        self.window_size = window_size
        self.shuffle = shuffle
        self.norm1 = nn.BatchNorm2d(dim)
        self.attn = WindowAttention(dim, num_heads, window_size, qkv_bias=False, attn_drop=attn_drop,
                                    proj_drop=drop, fused_attn=fused_attn)
        self.norm2 = nn.BatchNorm2d(dim)
        self.local = nn.Conv2d(dim, dim, window_size, 1, window_size // 2, groups=dim, bias=local_bias)
        self.norm3 = nn.BatchNorm2d(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=act_layer, drop=drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: Tensor, index: WindowIndex, mask: Tensor) -> Tensor:
        """Transform tokens (B, H, W, C); ``index`` is this block's window layout (:func:`window_index`) and
        ``mask`` hides padded keys (:func:`padded_key_mask` of the layout)."""
        x = residual_add(x, self.drop_path(self.attn.forward_map(bn_nhwc(self.norm1, x), index, mask)))
        x = x + self.local(self.norm2(x.permute(0, 3, 1, 2))).permute(0, 2, 3, 1)  # via (B, C, H, W)
        return residual_add(x, self.drop_path(self.mlp(bn_nhwc(self.norm3, x))))


class ShuffleStage(BackboneStage):
    """Optional patch merging, then (regular, shuffled) block pairs.

    Args:
        dim: Input width.
        out_dim: Width of the blocks; patch merging runs where it differs from ``dim``.
        depth: Number of blocks (even).
        drop_path: Stochastic depth of every block of the stage.
        **block_kwargs: Passed to :class:`ShuffleBlock` (``shuffle`` is the pairs' second block's).
    """

    def __init__(self, dim: int, out_dim: int, depth: int, window_size: int, shuffle: bool, drop_path: float,
                 **block_kwargs: Any) -> None:
        super().__init__()
        self.window_size = window_size
        self.downsample = ConvPatchMerging(dim, out_dim) if dim != out_dim else None
        self.blocks = nn.ModuleList([
            ShuffleBlock(out_dim, window_size=window_size, shuffle=shuffle and j % 2 == 1, drop_path=drop_path,
                         **block_kwargs) for j in range(depth)])
        self._layouts = LayoutCache()

    def layouts(self, x: Tensor) -> tuple[dict[bool, WindowIndex], dict[bool, Tensor]]:
        """Window indices and padded-key masks of tokens ``x`` (B, H, W, C), by layout (shuffled or not)."""
        B, H, W, _ = x.shape
        ws, heads = self.window_size, self.blocks[0].attn.num_heads
        layouts = {block.shuffle for block in self.blocks}
        masks = {shuffle: padded_key_mask(H, W, ws, shuffle, x.device, x.dtype) for shuffle in layouts}
        index = {shuffle: window_index(H, W, ws, B, heads, shuffle=shuffle, device=x.device) for shuffle in layouts}
        return index, masks

    def forward(self, x: Tensor) -> Tensor:
        """Transform (B, H, W, C) tokens."""
        if self.downsample is not None:
            x = self.downsample(x)
        B, H, W, _ = x.shape
        index, masks = self._layouts.get((B, H, W, x.device, x.dtype), lambda: self.layouts(x))
        for block in self.blocks:
            x = self.run_block(block, x, index[block.shuffle], masks[block.shuffle])
        return x


@MODELS.register_module()
class ShuffleTransformer(BaseBackbone):
    """Shuffle Transformer backbone returning NCHW maps at strides 4, 8, 16, 32 (presets).

    Args:
        arch: ``'tiny'``, ``'small'``, ``'base'`` or a dict with ``embed_dim`` (stem width), ``depths`` (even),
            ``num_heads`` and optionally ``dims`` (stage widths; default 32 per head) and ``token_dim`` (the stem's
            inner width, default 32). A stage merges patches (halving the resolution) where its width differs
            from the previous one, as the official model.
        in_channels: Input image channels.
        window_size: Window side, also the neighbour-window conv kernel (odd; 7 in every official model).
        mlp_ratio: MLP hidden width over the token width.
        shuffle: Shuffled windows in every second block (False: regular windows only, the paper's ablation).
        local_bias: Bias in the neighbour-window conv (True in the official configs, through their ``qkv_bias``).
        drop_rate: Dropout after attention projections and in MLPs.
        attn_drop_rate: Dropout on attention weights (the original defines but never applies it).
        drop_path_rate: Stochastic depth; stage i uses ``linspace(0, rate, num_stages)[i]`` (official rule).
        out_indices: Stages to output; later stages are not built.
        frozen_stages: -1 nothing, 0 the stem, k the stem and stages 0..k-1.
        norm_eval: Keep the BatchNorms in eval mode while training (usual with small detection batches).
        with_cp: Non-reentrant activation checkpointing per block.
        fused_attn: ``F.scaled_dot_product_attention`` (True), the math path (False) or the package default (None).
        act: MLP activation name (official: ``'relu6'``).
        init_cfg: mmengine init config, e.g. ``dict(type='Pretrained', checkpoint=PATH)`` with an official
            (``{'model': ...}``) or our checkpoint.
        cls_output: ``'avg_featmap'``: the last stage's map averaged over space (see
            :class:`~vit_backbones.backbones.base.BaseBackbone`).
    """

    checkpoint_family = 'shuffle'
    stem_conv_keys = ('patch_embed.conv1.weight',)

    def __init__(self, arch: Union[str, dict] = 'tiny', in_channels: int = 3, window_size: int = 7,
                 mlp_ratio: float = 4.0, shuffle: bool = True, local_bias: bool = True, drop_rate: float = 0.0,
                 attn_drop_rate: float = 0.0, drop_path_rate: float = 0.1,
                 out_indices: Union[int, Sequence[int]] = (0, 1, 2, 3), frozen_stages: int = -1,
                 norm_eval: bool = False, with_cp: bool = False, fused_attn: Optional[bool] = None,
                 act: str = 'relu6', init_cfg: Union[dict, list, None] = None,
                 cls_output: Optional[str] = None) -> None:
        cfg = resolve_arch(arch, ARCHS, ARCH_KEYS, optional=ARCH_OPTIONAL)
        num_stages = len(cfg['depths']) if isinstance(cfg['depths'], (list, tuple)) else 1
        depths = check_per_stage(cfg, 'depths', num_stages, minimum=2)
        if any(d % 2 for d in depths):
            raise ValueError(f"arch['depths'] entries must be even (regular + shuffled block pairs), got {depths!r}")
        heads = check_per_stage(cfg, 'num_heads', num_stages)
        dims = check_per_stage(dict(cfg, dims=cfg.get('dims', [h * HEAD_WIDTH for h in heads])), 'dims', num_stages)
        embed_dim = check_int("arch['embed_dim']", cfg['embed_dim'])
        token_dim = check_int("arch['token_dim']", cfg.get('token_dim', TOKEN_DIM))
        check_heads_divide(dims, heads, "arch['dims']")
        check_int('window_size', window_size)
        if window_size % 2 == 0:
            raise ValueError(f'window_size must be odd (it is also the neighbour-window conv kernel), '
                             f'got {window_size}')
        check_positive('mlp_ratio', mlp_ratio)
        check_rates(drop_rate=drop_rate, attn_drop_rate=attn_drop_rate, drop_path_rate=drop_path_rate)
        super().__init__(in_channels, num_stages, out_indices, frozen_stages, norm_eval, with_cp, init_cfg, cls_output)
        num_built = max(self.out_indices) + 1
        act_layer = get_act_layer(act)

        self.patch_embed = ConvTokenStem(in_channels, token_dim, embed_dim)
        stage_rates = torch.linspace(0, drop_path_rate, num_stages, device='cpu').tolist()
        widths = [embed_dim, *dims]
        self.stages = nn.ModuleList([
            ShuffleStage(widths[i], widths[i + 1], depths[i], window_size, shuffle, stage_rates[i],
                         num_heads=heads[i], mlp_ratio=mlp_ratio, local_bias=local_bias, drop=drop_rate,
                         attn_drop=attn_drop_rate, act_layer=act_layer, fused_attn=fused_attn)
            for i in range(num_built)])
        strides, stride = [], 4
        for i in range(num_built):
            stride *= 2 if widths[i] != widths[i + 1] else 1
            strides.append(stride)
        self.out_channels = tuple(dims[i] for i in self.out_indices)
        self.out_strides = tuple(strides[i] for i in self.out_indices)

    def random_init(self) -> None:
        """The official init: truncated-normal (std 0.02) linear and conv weights with zero bias, BatchNorms 1/0,
        truncated-normal relative-position tables."""
        super().random_init()
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, WindowAttention):
                nn.init.trunc_normal_(module.relative_position_bias_table, std=0.02)

    def stem_parts(self) -> list[Freezable]:
        return [self.patch_embed]

    def adapt_state_dict(self, state_dict: dict[str, Any], own: dict[str, Tensor]) -> dict[str, Any]:
        """Resize relative-position tables to this model's window."""
        sd = dict(state_dict)
        for key, value in state_dict.items():
            if key.endswith('relative_position_bias_table') and key in own and own[key].shape != value.shape:
                sd[key] = resize_rel_pos_bias_table(value, round((own[key].shape[0] ** 0.5 + 1) / 2))
        return sd

    def forward_stem(self, x: Tensor) -> Tensor:
        """Convolutional token stem: (B, C, H, W) -> (B, ceil(H/4), ceil(W/4), embed_dim)."""
        return self.patch_embed(x)
