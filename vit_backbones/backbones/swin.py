"""Swin Transformer: hierarchical vision transformer using shifted windows.

Paper: Liu et al., "Swin Transformer: Hierarchical Vision Transformer using Shifted Windows", ICCV 2021,
arXiv:2103.14030. Reference code: microsoft/Swin-Transformer, timm ``swin_transformer.py``.

Layout follows timm (channel-last tokens, ``layers.{i}.downsample`` at the start of stage i), so timm
checkpoints map almost one to one. Any input size works: the patch embedding and patch merging pad at the
bottom/right, and each block pads its normalised input to a multiple of the window (as the official
detection/segmentation code does), so stage i outputs ``ceil(H / (4 * 2**i)) x ceil(W / (4 * 2**i))``.
A feature map that fits in one window along an axis is not shifted along it (as in the classification
reference); larger maps always shift.
"""
from typing import Any, Callable, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..converters.common import Converted
from ..converters.swin import convert_swin_to_ours
from ..layers import (DropPath, Mlp, PatchEmbed, PatchMerging, get_act_layer, get_norm_layer,
                      nhwc_to_nchw, relative_position_index, resize_abs_pos_embed,
                      resize_rel_pos_bias_table, shifted_window_mask, window_partition, window_reverse)
from ..registry import MODELS
from .base import BaseBackbone, Freezable, resolve_arch

ARCHS: dict[str, dict[str, Any]] = {
    'tiny': dict(embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24)),
    'small': dict(embed_dim=96, depths=(2, 2, 18, 2), num_heads=(3, 6, 12, 24)),
    'base': dict(embed_dim=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32)),
    'large': dict(embed_dim=192, depths=(2, 2, 18, 2), num_heads=(6, 12, 24, 48)),
}
ARCH_KEYS = ('embed_dim', 'depths', 'num_heads')


class WindowAttention(nn.Module):
    """Multi-head self-attention inside windows, with a learned relative-position bias.

    Args:
        dim: Token channels.
        num_heads: Attention heads.
        window_size: Window side.
        qkv_bias: Bias in the qkv projection.
        attn_drop: Dropout on attention weights.
        proj_drop: Dropout after the output projection.
        fused_attn: Use ``F.scaled_dot_product_attention``; False runs the explicit softmax path.
    """

    def __init__(self, dim: int, num_heads: int, window_size: int, qkv_bias: bool = True,
                 attn_drop: float = 0.0, proj_drop: float = 0.0, fused_attn: bool = True) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'dim {dim} is not divisible by num_heads {num_heads}')
        self.num_heads = num_heads
        self.window_size = window_size
        self.scale = (dim // num_heads) ** -0.5
        self.fused_attn = fused_attn
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        self.register_buffer('relative_position_index', relative_position_index(window_size), persistent=False)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self._bias_cache: Optional[tuple[tuple, Tensor]] = None

    def relative_position_bias(self) -> Tensor:
        """The (heads, N, N) bias for one window; cached while gradients are off and the table is unchanged."""
        table = self.relative_position_bias_table
        key = (table._version, table.device, table.dtype)
        if not torch.is_grad_enabled() and self._bias_cache is not None and self._bias_cache[0] == key:
            return self._bias_cache[1]
        n = self.window_size * self.window_size
        bias = table[self.relative_position_index.view(-1)].view(n, n, -1).permute(2, 0, 1)  # (N, N, h) -> (h, N, N)
        if not torch.is_grad_enabled():
            self._bias_cache = (key, bias)
        return bias

    def forward(self, x: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        """Attend within windows.

        Args:
            x: Windows of shape (B, nW, N, C).
            mask: Additive shifted-window mask of shape (nW, N, N), or None.

        Returns:
            Tensor of shape (B, nW, N, C).
        """
        B, nW, N, C = x.shape
        # (B, nW, N, 3C) -> (B*nW, N, 3, h, d) -> (3, B*nW, h, N, d)
        qkv = self.qkv(x).reshape(B * nW, N, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        bias = self.relative_position_bias()  # (h, N, N)
        if mask is not None:
            bias = bias.unsqueeze(0) + mask.unsqueeze(1)  # (nW, h, N, N)
        if self.fused_attn:
            if mask is not None:  # the CPU and CUDA kernels want a 4-D mask: (nW, h, N, N) -> (B*nW, h, N, N)
                bias = bias.unsqueeze(0).expand(B, -1, -1, -1, -1).reshape(B * nW, self.num_heads, N, N)
            x = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype),
                                               dropout_p=self.attn_drop if self.training else 0.0)
        else:
            attn = (q * self.scale) @ k.transpose(-2, -1)  # (B*nW, h, N, N)
            attn = attn.view(B, nW, self.num_heads, N, N) + bias  # broadcast over batch (and windows)
            attn = F.dropout(attn.softmax(dim=-1), self.attn_drop, self.training)
            x = attn.view(B * nW, self.num_heads, N, N) @ v
        x = x.transpose(1, 2).reshape(B, nW, N, C)  # (B*nW, h, N, d) -> (B*nW, N, h, d) -> (B, nW, N, C)
        return self.proj_drop(self.proj(x))


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
        fused_attn: Attention through ``F.scaled_dot_product_attention``.
    """

    def __init__(self, dim: int, num_heads: int, window_size: int, shifted: bool, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, drop: float = 0.0, attn_drop: float = 0.0, drop_path: float = 0.0,
                 norm_layer: Callable[[int], nn.Module] = nn.LayerNorm,
                 act_layer: Callable[[], nn.Module] = nn.GELU, fused_attn: bool = True) -> None:
        super().__init__()
        self.window_size = window_size
        self.shifted = shifted
        self.norm1 = norm_layer(dim)
        self.attn = WindowAttention(dim, num_heads, window_size, qkv_bias, attn_drop, drop, fused_attn)
        self.drop_path1 = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=act_layer, drop=drop)
        self.drop_path2 = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def _window_attention(self, x: Tensor, mask: Optional[Tensor], shift: tuple[int, int]) -> Tensor:
        B, H, W, C = x.shape
        ws = self.window_size
        pad_h, pad_w = -H % ws, -W % ws
        if pad_h or pad_w:
            x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
        if any(shift):
            x = torch.roll(x, shifts=(-shift[0], -shift[1]), dims=(1, 2))
        x = window_partition(x, ws)  # (B, Hp, Wp, C) -> (B, nW, ws*ws, C)
        x = self.attn(x, mask)
        x = window_reverse(x, ws, H + pad_h, W + pad_w)  # (B, nW, ws*ws, C) -> (B, Hp, Wp, C)
        if any(shift):
            x = torch.roll(x, shifts=shift, dims=(1, 2))
        return x[:, :H, :W] if pad_h or pad_w else x

    def forward(self, x: Tensor, mask: Optional[Tensor] = None, shift: tuple[int, int] = (0, 0)) -> Tensor:
        """Transform tokens of shape (B, H, W, C); ``mask``/``shift`` come from the stage (shifted blocks)."""
        x = x + self.drop_path1(self._window_attention(self.norm1(x), mask, shift))
        return x + self.drop_path2(self.mlp(self.norm2(x)))


class SwinStage(nn.Module):
    """Optional patch merging followed by alternating regular / shifted window blocks.

    Args:
        dim: Input channels.
        out_dim: Channels of the blocks (``2 * dim`` after merging).
        depth: Number of blocks.
        downsample: Start with patch merging.
        drop_path: Stochastic depth rate of each block.
        **block_kwargs: Passed to :class:`SwinBlock`.
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
        self._mask_cache: dict[tuple, Tensor] = {}

    def shift_and_mask(self, x: Tensor) -> tuple[tuple[int, int], Optional[Tensor]]:
        """Shift per axis (none where the map fits one window) and the cached mask for tokens ``x``."""
        _, H, W, _ = x.shape
        ws = self.window_size
        shift = (ws // 2 if H > ws else 0, ws // 2 if W > ws else 0)
        if not any(shift):
            return shift, None
        key = (H + (-H % ws), W + (-W % ws), shift, x.device, x.dtype)
        if key not in self._mask_cache:
            if len(self._mask_cache) >= 16:
                self._mask_cache.clear()
            with torch.inference_mode(False):
                self._mask_cache[key] = shifted_window_mask(key[0], key[1], ws, shift, x.device, x.dtype)
        return shift, self._mask_cache[key]

    def forward(self, x: Tensor, run_block: Callable[..., Tensor]) -> Tensor:
        """Transform (B, H, W, C) tokens; ``run_block`` calls a block (with checkpointing if enabled)."""
        x = self.downsample(x)
        shift, mask = self.shift_and_mask(x)
        for block in self.blocks:
            x = run_block(block, x, mask, shift) if block.shifted else run_block(block, x, None, (0, 0))
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
        fused_attn: ``F.scaled_dot_product_attention`` (True) or the explicit math path (False).
        norm: Norm name (see :func:`get_norm_layer`).
        act: Activation name (see :func:`get_act_layer`).
        init_cfg: mmengine init config, e.g. ``dict(type='Pretrained', checkpoint=PATH)`` with our, timm,
            official or mmdet/mmseg Swin checkpoints (whole-model ones included).
    """

    def __init__(self, arch: Union[str, dict] = 'tiny', in_channels: int = 3, patch_size: int = 4,
                 window_size: int = 7, mlp_ratio: float = 4.0, qkv_bias: bool = True, drop_rate: float = 0.0,
                 attn_drop_rate: float = 0.0, drop_path_rate: float = 0.1, use_abs_pos_embed: bool = False,
                 pretrain_img_size: int = 224, out_indices: Union[int, Sequence[int]] = (0, 1, 2, 3),
                 frozen_stages: int = -1, norm_eval: bool = False, with_cp: bool = False,
                 fused_attn: bool = True, norm: str = 'ln', act: str = 'gelu',
                 init_cfg: Union[dict, list, None] = None) -> None:
        cfg = resolve_arch(arch, ARCHS, ARCH_KEYS)
        depths, heads = tuple(cfg['depths']), tuple(cfg['num_heads'])
        if len(depths) != len(heads):
            raise ValueError(f'arch depths {depths} and num_heads {heads} differ in length')
        super().__init__(in_channels, len(depths), out_indices, frozen_stages, norm_eval, with_cp, init_cfg)
        norm_layer, act_layer = get_norm_layer(norm), get_act_layer(act)
        dims = [cfg['embed_dim'] * 2 ** i for i in range(len(depths))]
        num_built = max(self.out_indices) + 1

        self.patch_embed = PatchEmbed(in_channels, dims[0], patch_size, norm_layer)
        self.absolute_pos_embed: Optional[nn.Parameter] = None
        if use_abs_pos_embed:
            grid = pretrain_img_size // patch_size
            self.absolute_pos_embed = nn.Parameter(torch.zeros(1, dims[0], grid, grid))
        self.pos_drop = nn.Dropout(drop_rate)

        rates = torch.linspace(0, drop_path_rate, sum(depths), device='cpu').tolist()
        self.layers = nn.ModuleList()
        for i in range(num_built):
            self.layers.append(SwinStage(
                dims[max(i - 1, 0)], dims[i], depths[i], heads[i], window_size, downsample=i > 0,
                drop_path=rates[sum(depths[:i]):sum(depths[:i + 1])], norm_layer=norm_layer,
                mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, drop=drop_rate, attn_drop=attn_drop_rate,
                act_layer=act_layer, fused_attn=fused_attn))
        self.norms = nn.ModuleList(
            [norm_layer(dims[i]) if i in self.out_indices else nn.Identity() for i in range(num_built)])
        self.out_channels = tuple(dims[i] for i in self.out_indices)
        self.out_strides = tuple(patch_size * 2 ** i for i in self.out_indices)
        self.random_init()
        self.freeze_stages()

    @property
    def fused_attn(self) -> bool:
        """Whether attention runs through ``F.scaled_dot_product_attention``."""
        return all(m.fused_attn for m in self.modules() if isinstance(m, WindowAttention))

    @fused_attn.setter
    def fused_attn(self, value: bool) -> None:
        for module in self.modules():
            if isinstance(module, WindowAttention):
                module.fused_attn = value

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

    def stage_parts(self, index: int) -> list[Freezable]:
        return [self.layers[index], self.norms[index]] if index < len(self.layers) else []

    def convert_state_dict(self, state_dict: dict[str, Any], own: dict[str, Tensor]) -> Converted:
        """Convert timm/official/our Swin keys and resize position tables to this model's shapes."""
        result = convert_swin_to_ours(state_dict)
        sd = result.state_dict
        for key, value in sd.items():
            if key not in own or own[key].shape == value.shape:
                continue
            if key.endswith('relative_position_bias_table'):
                window = round((own[key].shape[0] ** 0.5 + 1) / 2)
                sd[key] = resize_rel_pos_bias_table(value, window)
            elif key == 'absolute_pos_embed':
                sd[key] = resize_abs_pos_embed(value, tuple(own[key].shape[-2:]))
        return result

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        """Return one (B, C_i, H_i, W_i) map per entry of ``out_indices``."""
        self.check_input(x)
        x = self.patch_embed(x)  # (B, H/4, W/4, C)
        if self.absolute_pos_embed is not None:
            pos = resize_abs_pos_embed(self.absolute_pos_embed, tuple(x.shape[1:3]))
            x = x + pos.permute(0, 2, 3, 1)  # (1, C, h, w) -> (1, h, w, C)
        x = self.pos_drop(x)
        outs = {}
        for i, stage in enumerate(self.layers):
            x = stage(x, self.run_block)
            if i in self.out_indices:
                outs[i] = nhwc_to_nchw(self.norms[i](x))  # (B, H, W, C) -> (B, C, H, W)
        return tuple(outs[i] for i in self.out_indices)
