"""Swin Transformer: hierarchical vision transformer using shifted windows.

Paper: Liu et al., "Swin Transformer: Hierarchical Vision Transformer using Shifted Windows", ICCV 2021,
arXiv:2103.14030. Reference code: microsoft/Swin-Transformer, timm ``swin_transformer.py``.

Layout follows timm (channel-last tokens, ``layers.{i}.downsample`` at the start of stage i), so timm
checkpoints map almost one to one. Any input size works: the patch embedding and patch merging pad at the
bottom/right, and each block pads its normalised input to a multiple of the window (as the official
detection/segmentation code does), so stage i outputs ``ceil(H / (4 * 2**i)) x ceil(W / (4 * 2**i))``.
A feature map that fits in one window along an axis is not shifted along it (as in the classification
reference); larger maps always shift. Padding, shifts and masks are computed without Python branches on the input
size, so exported and compiled graphs stay right at every size.
"""
from typing import Any, Callable, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from ..converters import swin as _swin_layouts  # noqa: F401  (registers the 'swin' checkpoint layouts)
from ..layers import (
    BackboneStage,
    DropPath,
    LayoutCache,
    Mlp,
    PatchEmbed,
    PatchMerging,
    WindowAttention,
    WindowIndex,
    get_act_layer,
    get_norm_layer,
    residual_add,
    resize_abs_pos_embed,
    resize_rel_pos_bias_table,
    shifted_window_mask,
    window_grid,
    window_index,
    window_shift,
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
    drop_path_rates,
    resolve_arch,
)

__all__ = ['SwinTransformer']

ARCHS: dict[str, dict[str, Any]] = {
    'tiny': dict(embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24)),
    'small': dict(embed_dim=96, depths=(2, 2, 18, 2), num_heads=(3, 6, 12, 24)),
    'base': dict(embed_dim=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32)),
    'large': dict(embed_dim=192, depths=(2, 2, 18, 2), num_heads=(6, 12, 24, 48)),
}
ARCH_KEYS = ('embed_dim', 'depths', 'num_heads')


class SwinBlock(nn.Module):
    """Pre-norm transformer block with (shifted) window attention on (B, H, W, C) tokens.

    Args:
        dim: Token channels.
        num_heads: Attention heads.
        window_size: Window side.
        shifted: Whether this block uses shifted windows (shift of ``window_size // 2``).
        mlp_ratio: MLP hidden width over ``dim``.
        qkv_bias: Bias in the qkv projection.
        drop: Dropout after projections.
        attn_drop: Dropout on attention weights.
        drop_path: Stochastic depth rate of this block.
        norm_layer: Norm constructor.
        act_layer: Activation constructor.
        fused_attn: Per-module fused/math override.
    """

    def __init__(self, dim: int, num_heads: int, window_size: int, shifted: bool, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, drop: float = 0.0, attn_drop: float = 0.0, drop_path: float = 0.0,
                 norm_layer: Callable[[int], nn.Module] = nn.LayerNorm,
                 act_layer: Callable[[], nn.Module] = nn.GELU, fused_attn: Optional[bool] = None) -> None:
        super().__init__()
        self.window_size = window_size
        self.shifted = shifted
        self.norm1 = norm_layer(dim)
        self.attn = WindowAttention(dim, num_heads, window_size, qkv_bias, attn_drop, drop, fused_attn)
        self.drop_path1 = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=act_layer, drop=drop)
        self.drop_path2 = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: Tensor, index: WindowIndex, mask: Optional[Tensor] = None) -> Tensor:
        """Transform tokens of shape (B, H, W, C); ``index``/``mask`` come from the stage (see :class:`SwinStage`)."""
        x = residual_add(x, self.drop_path1(self.attn.forward_map(self.norm1(x), index, mask)))
        return residual_add(x, self.drop_path2(self.mlp(self.norm2(x))))


class SwinStage(BackboneStage):
    """Optional patch merging followed by alternating regular / shifted window blocks.

    Args:
        dim: Input channels.
        out_dim: Channels of the blocks (``2 * dim`` after merging).
        depth: Number of blocks.
        num_heads: Attention heads.
        window_size: Window side.
        downsample: Start with patch merging.
        drop_path: Stochastic depth rate of each block.
        norm_layer: Norm constructor.
        **block_kwargs: Passed to :class:`SwinBlock`.

    The window indices (regular and shifted: :func:`~vit_backbones.layers.window.window_index`) and the shifted-window
    mask are computed once per map size (:meth:`layouts`, kept by a :class:`~vit_backbones.layers.window.LayoutCache`
    in eager mode) and shared by the stage's blocks.
    """

    def __init__(self, dim: int, out_dim: int, depth: int, num_heads: int, window_size: int,
                 downsample: bool, drop_path: Sequence[float], norm_layer: Callable[[int], nn.Module],
                 **block_kwargs: Any) -> None:
        super().__init__()
        self.window_size = window_size
        self.downsample = PatchMerging(dim, out_dim, norm_layer) if downsample else nn.Identity()
        self.blocks = nn.Sequential(*[
            SwinBlock(out_dim, num_heads, window_size, shifted=bool(j % 2), drop_path=drop_path[j],
                      norm_layer=norm_layer, **block_kwargs) for j in range(depth)])
        self._layouts = LayoutCache()

    def shift_and_mask(self, x: Tensor) -> tuple[tuple[Any, Any], Tensor]:
        """Shift per axis (0 where the map fits one window) and the shifted-window mask for tokens ``x``."""
        _, H, W, _ = x.shape
        ws = self.window_size
        shift = (window_shift(H, ws, x.device), window_shift(W, ws, x.device))
        padded = (window_grid(H, ws) * ws, window_grid(W, ws) * ws)
        return shift, shifted_window_mask(padded[0], padded[1], ws, shift, x.device, x.dtype)

    def layouts(self, x: Tensor) -> tuple[WindowIndex, WindowIndex, Optional[Tensor]]:
        """Regular and shifted window indices and the shifted-window mask for tokens ``x`` (B, H, W, C)."""
        B, H, W, _ = x.shape
        ws, heads = self.window_size, self.blocks[0].attn.num_heads
        plain = window_index(H, W, ws, B, heads, device=x.device)
        if len(self.blocks) < 2:
            return plain, plain, None
        shift, mask = self.shift_and_mask(x)
        return plain, window_index(H, W, ws, B, heads, shift, device=x.device), mask

    def forward(self, x: Tensor) -> Tensor:
        """Transform (B, H, W, C) tokens."""
        x = self.downsample(x)
        B, H, W, _ = x.shape
        plain, shifted, mask = self._layouts.get((B, H, W, x.device, x.dtype), lambda: self.layouts(x))
        for block in self.blocks:
            x = self.run_block(block, x, shifted, mask) if block.shifted else self.run_block(block, x, plain)
        return x


@MODELS.register_module()
class SwinTransformer(BaseBackbone):
    """Swin Transformer backbone returning NCHW maps at strides 4, 8, 16, 32.

    Args:
        arch: ``'tiny'``, ``'small'``, ``'base'``, ``'large'`` or a dict with ``embed_dim``, ``depths``,
            ``num_heads``.
        in_channels: Input image channels.
        patch_size: Patch side of the stem.
        window_size: Attention window side (7 for 224 pre-training, 12 for 384).
        mlp_ratio: MLP hidden width over the token width.
        qkv_bias: Bias in qkv projections.
        drop_rate: Dropout after the embedding and in blocks.
        attn_drop_rate: Dropout on attention weights.
        drop_path_rate: Stochastic depth, linear from 0 to this over all blocks.
        use_abs_pos_embed: Add a learned absolute position embedding after the stem, resized bicubically to
            the input's patch grid.
        pretrain_img_size: Image size the absolute embedding's grid is defined for.
        out_indices: Stages to output; stages after the last one are not built.
        frozen_stages: -1 nothing, 0 the stem, k the stem and stages 0..k-1.
        norm_eval: Keep BatchNorms in eval mode (Swin has none; part of the shared contract).
        with_cp: Non-reentrant activation checkpointing per block.
        fused_attn: ``F.scaled_dot_product_attention`` (True), the explicit math path (False) or the package
            default (None, see :func:`vit_backbones.layers.set_fused_attn`).
        norm: Norm name (see :func:`get_norm_layer`).
        act: Activation name (see :func:`get_act_layer`).
        init_cfg: mmengine init config, e.g. ``dict(type='Pretrained', checkpoint=PATH)`` with our, timm,
            official or mmdet/mmseg Swin checkpoints (whole-model ones included).
        cls_output: ``'avg_featmap'``: the last stage's normed map averaged over space (timm's classifier feature; see
            :class:`~vit_backbones.backbones.base.BaseBackbone`).
    """

    stages_attr = 'layers'
    out_norms_attr = 'norms'
    checkpoint_family = 'swin'

    def __init__(self, arch: Union[str, dict] = 'tiny', in_channels: int = 3, patch_size: int = 4,
                 window_size: int = 7, mlp_ratio: float = 4.0, qkv_bias: bool = True, drop_rate: float = 0.0,
                 attn_drop_rate: float = 0.0, drop_path_rate: float = 0.1, use_abs_pos_embed: bool = False,
                 pretrain_img_size: int = 224, out_indices: Union[int, Sequence[int]] = (0, 1, 2, 3),
                 frozen_stages: int = -1, norm_eval: bool = False, with_cp: bool = False,
                 fused_attn: Optional[bool] = None, norm: str = 'ln', act: str = 'gelu',
                 init_cfg: Union[dict, list, None] = None,
                 cls_output: Optional[str] = None) -> None:
        cfg = resolve_arch(arch, ARCHS, ARCH_KEYS)
        num_stages = len(cfg['depths']) if isinstance(cfg['depths'], (list, tuple)) else 1
        depths = check_per_stage(cfg, 'depths', num_stages)
        heads = check_per_stage(cfg, 'num_heads', num_stages)
        embed_dim = check_int("arch['embed_dim']", cfg['embed_dim'])
        check_int('patch_size', patch_size)
        check_int('window_size', window_size)
        check_positive('mlp_ratio', mlp_ratio)
        check_rates(drop_rate=drop_rate, attn_drop_rate=attn_drop_rate, drop_path_rate=drop_path_rate)
        if use_abs_pos_embed:
            check_int('pretrain_img_size', pretrain_img_size, minimum=patch_size)
        dims = [embed_dim * 2 ** i for i in range(num_stages)]
        check_heads_divide(dims, heads, 'the stage width')
        super().__init__(in_channels, num_stages, out_indices, frozen_stages, norm_eval, with_cp, init_cfg, cls_output)
        norm_layer, act_layer = get_norm_layer(norm), get_act_layer(act)
        num_built = max(self.out_indices) + 1

        self.patch_embed = PatchEmbed(in_channels, dims[0], patch_size, norm_layer=norm_layer)
        self.absolute_pos_embed: Optional[nn.Parameter] = None
        if use_abs_pos_embed:
            grid = pretrain_img_size // patch_size
            self.absolute_pos_embed = nn.Parameter(torch.zeros(1, dims[0], grid, grid))
        self.pos_drop = nn.Dropout(drop_rate)

        rates = drop_path_rates(drop_path_rate, depths)
        self.layers = nn.ModuleList([
            SwinStage(dims[max(i - 1, 0)], dims[i], depths[i], heads[i], window_size, downsample=i > 0,
                      drop_path=rates[i], norm_layer=norm_layer, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                      drop=drop_rate, attn_drop=attn_drop_rate, act_layer=act_layer, fused_attn=fused_attn)
            for i in range(num_built)])
        self.norms = nn.ModuleList(
            [norm_layer(dims[i]) if i in self.out_indices else nn.Identity() for i in range(num_built)])
        self.out_channels = tuple(dims[i] for i in self.out_indices)
        self.out_strides = tuple(patch_size * 2 ** i for i in self.out_indices)

    def random_init(self) -> None:
        """Truncated-normal linear weights, relative-position tables and absolute embedding."""
        super().random_init()
        for module in self.modules():
            if isinstance(module, WindowAttention):
                nn.init.trunc_normal_(module.relative_position_bias_table, std=0.02)
        if self.absolute_pos_embed is not None:
            nn.init.trunc_normal_(self.absolute_pos_embed, std=0.02)

    def stem_parts(self) -> list[Freezable]:
        parts: list[Freezable] = [self.patch_embed]
        if self.absolute_pos_embed is not None:
            parts.append(self.absolute_pos_embed)
        return parts

    def adapt_state_dict(self, state_dict: dict[str, Any], own: dict[str, Tensor]) -> dict[str, Any]:
        """Resize relative-position tables to this model's window and the absolute embedding to its grid."""
        sd = dict(state_dict)
        for key, value in state_dict.items():
            if key not in own or own[key].shape == value.shape:
                continue
            if key.endswith('relative_position_bias_table'):
                window = round((own[key].shape[0] ** 0.5 + 1) / 2)
                sd[key] = resize_rel_pos_bias_table(value, window)
            elif key == 'absolute_pos_embed':
                sd[key] = resize_abs_pos_embed(value, tuple(own[key].shape[-2:]))
        return sd

    def forward_stem(self, x: Tensor) -> Tensor:
        """Patch embedding, then the absolute embedding resized to the patch grid: (B, H/4, W/4, C)."""
        x = self.patch_embed(x)  # (B, H/4, W/4, C)
        if self.absolute_pos_embed is not None:
            pos = resize_abs_pos_embed(self.absolute_pos_embed, (x.shape[1], x.shape[2]))
            x = x + pos.permute(0, 2, 3, 1)  # (1, C, h, w) -> (1, h, w, C)
        return self.pos_drop(x)
