"""Non-overlapping patch embedding: a strided convolution, with bottom/right padding for any input size.

References:
    Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021, arXiv:2010.11929.
"""
from typing import Callable, Optional

import torch.nn.functional as F
from torch import Tensor, nn

from .format import nchw_to_nhwc


class PatchEmbed(nn.Module):
    """Split an image into ``patch_size`` patches and project each to ``embed_dim``.

    Inputs whose size is not a multiple of ``patch_size`` are zero-padded at the bottom and right, so the
    output grid is ``ceil(H / patch_size) x ceil(W / patch_size)``.

    Args:
        in_channels: Image channels.
        embed_dim: Output channels.
        patch_size: Patch side (and stride).
        norm_layer: Optional norm over channels, applied to the tokens.
    """

    def __init__(self, in_channels: int = 3, embed_dim: int = 96, patch_size: int = 4,
                 norm_layer: Optional[Callable[[int], nn.Module]] = None) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_channels, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = norm_layer(embed_dim) if norm_layer is not None else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """Embed ``x`` of shape (B, C, H, W) into tokens of shape (B, H', W', embed_dim)."""
        pad_h = -x.shape[2] % self.patch_size
        pad_w = -x.shape[3] % self.patch_size
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        x = nchw_to_nhwc(self.proj(x))  # (B, C, H', W') -> (B, H', W', C)
        return self.norm(x)
