"""Multi-head self-attention inside windows with a learned relative-position bias (Swin, Shuffle Transformer).

References:
    Liu et al., "Swin Transformer", ICCV 2021, arXiv:2103.14030.
    Huang et al., "Shuffle Transformer: Rethinking Spatial Shuffle for Vision Transformer", arXiv:2106.03650.
"""
from typing import Optional

import torch
from torch import Tensor, nn

from .attention import Attention
from .window import relative_position_index

__all__ = ['WindowAttention']


class WindowAttention(Attention):
    """Multi-head self-attention inside windows, with a learned relative-position bias.

    The bias is gathered from its table at every call (no cache: weights changed in place, through ``.data`` or
    an EMA update, are always seen, and compilers trace it).

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
