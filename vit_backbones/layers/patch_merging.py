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
        x = F.pad(x, (0, 0, 0, x.shape[2] % 2, 0, x.shape[1] % 2))  # always (possibly by 0): traceable
        B, H, W, C = x.shape
        # (B, H, W, C) -> (B, H/2, 2, W/2, 2, C) -> (B, H/2, W/2, 2[col], 2[row], C) -> (B, H/2, W/2, 4C)
        x = x.reshape(B, H // 2, 2, W // 2, 2, C).permute(0, 1, 3, 4, 2, 5).flatten(3)
        return self.reduction(self.norm(x))
