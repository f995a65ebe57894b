"""Multi-head self-attention inside windows with a learned relative-position bias (Swin, Shuffle Transformer).

References:
    Liu et al., "Swin Transformer", ICCV 2021, arXiv:2103.14030.
    Huang et al., "Shuffle Transformer: Rethinking Spatial Shuffle for Vision Transformer", arXiv:2106.03650.
"""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attention import Attention
from .window import WindowIndex, relative_position_index

__all__ = ['WindowAttention']


class WindowAttention(Attention):
    """Multi-head self-attention inside windows, with a learned relative-position bias.

    :meth:`forward_map` attends on a whole (B, H, W, C) map through a
    :class:`~vit_backbones.layers.window.WindowIndex` (padding, shift and windows as row gathers, the projections
    on real tokens only); :meth:`forward` takes ready-made windows. The bias is gathered from its table at every
    call (no cache: weights changed in place, through ``.data`` or an EMA update, are always seen, and compilers
    trace it).

    Args:
        dim: Token channels.
        num_heads: Attention heads.
        window_size: Window side.
        qkv_bias: Bias in the qkv projection.
        attn_drop: Dropout on attention weights.
        proj_drop: Dropout after the output projection.
        fused_attn: Per-module fused/math override (None: the package default).
    """

    def __init__(self, dim: int, num_heads: int, window_size: int, qkv_bias: bool = True,
                 attn_drop: float = 0.0, proj_drop: float = 0.0, fused_attn: Optional[bool] = None) -> None:
        super().__init__(dim, num_heads, qkv_bias, attn_drop, proj_drop, fused_attn=fused_attn)
        self.window_size = window_size
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        self.register_buffer('relative_position_index', relative_position_index(window_size), persistent=False)

    def relative_position_bias(self) -> Tensor:
        """The (heads, N, N) bias for one window."""
        n = self.window_size * self.window_size
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]  # (N*N, h)
        return bias.view(n, n, self.num_heads).permute(2, 0, 1)  # (N, N, h) -> (h, N, N)

    def forward(self, x: Tensor, mask: Optional[Tensor] = None) -> Tensor:  # type: ignore[override]
        """Attend within windows.

        Args:
            x: Windows of shape (B, nW, N, C).
            mask: Additive per-window mask of shape (nW, N, N) or (nW, 1, N) (shifted-window regions, padded keys),
                or None.

        Returns:
            Tensor of shape (B, nW, N, C).
        """
        B, nW, N, C = x.shape
        q, k, v = self.project(x.reshape(B * nW, N, C))  # (B, nW, N, C) -> (B*nW, N, C) -> (B*nW, h, N, d)
        bias = self.relative_position_bias()  # (h, N, N)
        if mask is None:
            x = self.attend(q, k, v, bias=bias)
        else:  # one bias per window: (nW, h, N, N), repeating for every image
            x = self.attend(q, k, v, bias=bias.unsqueeze(0) + mask.unsqueeze(1), tile=nW)
        x = self.out(x)  # (B*nW, h, N, d) -> (B*nW, N, C)
        return x.reshape(B, nW, N, C)  # (B*nW, N, C) -> (B, nW, N, C)

    def _project_map(self, x: Tensor) -> Tensor:
        """q/k/v of tokens (T, C), with one more row for a padding token (a zero input): (T + 1, 3C)."""
        weight, bias = self.qkv.weight, self.qkv.bias
        pad = bias if bias is not None else weight.new_zeros(weight.shape[0])
        if torch.is_grad_enabled() or torch.is_autocast_enabled(x.device.type) or x.dtype != weight.dtype:
            projected = F.linear(x, weight, bias)  # (T, 3C), in autocast's dtype where it is on
            return torch.cat([projected, pad.to(projected.dtype)[None]], 0)
        out = x.new_empty(x.shape[0] + 1, weight.shape[0])  # no autograd: project straight into the table
        if bias is None:
            torch.mm(x, weight.t(), out=out[:-1])
        else:
            torch.addmm(bias, x, weight.t(), out=out[:-1])
        out[-1] = pad
        return out

    def forward_map(self, x: Tensor, index: WindowIndex, mask: Optional[Tensor] = None) -> Tensor:
        """Attend within the windows of a whole map.

        Args:
            x: Normalised tokens (B, H, W, C), unpadded.
            index: :func:`~vit_backbones.layers.window.window_index` of this map's size, batch, heads and shift.
            mask: Additive per-window mask (nW, N, N) or (nW, 1, N), or None.

        Returns:
            (B, H, W, C): the projected attention output at every real token (padding tokens act as keys and values
            only, as in the reference that pads before windowing and crops after).
        """
        B, H, W, C = x.shape
        h, d, n = self.num_heads, self.head_dim, self.window_size * self.window_size
        nW = index.windows
        table = self._project_map(x.reshape(B * H * W, C))  # (B, H, W, C) -> (T, C) -> (T + 1, 3C)
        # (T + 1, 3C) -> rows of head vectors (3 (T + 1) h, d) -> gathered (3, B*nW, h, N, d)
        q, k, v = table.view(-1, d).index_select(0, index.qkv).view(3, B * nW, h, n, d).unbind(0)
        bias = self.relative_position_bias()  # (h, N, N)
        if mask is None:
            out = self.attend(q, k, v, bias=bias)
        else:  # one bias per window: (nW, h, N, N), repeating for every image
            out = self.attend(q, k, v, bias=bias.unsqueeze(0) + mask.unsqueeze(1), tile=nW)
        rows = out.transpose(1, 2)  # (B*nW, h, N, d) -> (B*nW, N, h, d): contiguous after CPU flash attention
        if torch.compiler.is_exporting():  # the traced layout may not be the run one: settle it with a real copy
            out = out.clone(memory_format=torch.contiguous_format)
            out = out.view(-1, d).index_select(0, index.out_head_major)  # (B*nW*h*N, d) -> (B*H*W*h, d)
        elif rows.is_contiguous():
            out = rows.reshape(-1, d).index_select(0, index.out_token_major)  # -> (B*H*W*h, d)
        else:
            out = out.reshape(-1, d).index_select(0, index.out_head_major)  # (B*nW*h*N, d) -> (B*H*W*h, d)
        return self.proj_drop(self.proj(out.view(B, H, W, C)))  # (B*H*W*h, d) -> (B, H, W, C)
