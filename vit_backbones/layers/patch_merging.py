"""Patch merging: 2x2 neighbourhoods concatenated, normalised and projected (Swin's downsampling).

References:
    Liu et al., "Swin Transformer", ICCV 2021, arXiv:2103.14030.
"""
from typing import Callable, Optional

import torch.nn.functional as F
from torch import Tensor, nn


class PatchMerging(nn.Module):
    """Halve the resolution of channel-last tokens and change their width.

    The 2x2 neighbours are concatenated in the order (0, 0), (1, 0), (0, 1), (1, 1) as (row, col) offsets,
    the layout of the official Swin and timm weights. Odd sizes are zero-padded at the bottom/right, so the
    output is ``ceil(H / 2) x ceil(W / 2)``.

    Args:
        dim: Input channels.
        out_dim: Output channels (default ``2 * dim``).
        norm_layer: Norm over the ``4 * dim`` concatenated channels.
    """

    def __init__(self, dim: int, out_dim: Optional[int] = None,
                 norm_layer: Callable[[int], nn.Module] = nn.LayerNorm) -> None:
        super().__init__()
        self.out_dim = out_dim or 2 * dim
        self.norm = norm_layer(4 * dim)
        self.reduction = nn.Linear(4 * dim, self.out_dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        """Merge ``x`` of shape (B, H, W, C) into (B, ceil(H/2), ceil(W/2), out_dim)."""
        B, H, W, C = x.shape
        h, w = (H + 1) // 2, (W + 1) // 2
        x = F.pad(x, (0, 0, 0, 2 * w - W, 0, 2 * h - H))  # always (possibly by 0): traceable
        # (B, 2h, 2w, C) -> (B, h, 2, w, 2, C) -> (B, h, w, 2[col], 2[row], C) -> (B, h, w, 4C)
        x = x.reshape(B, h, 2, w, 2, C).permute(0, 1, 3, 4, 2, 5).reshape(B, h, w, 4 * C)
        return self.reduction(self.norm(x))
