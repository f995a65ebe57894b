"""Patch embedding: a strided convolution from images (or a previous stage's map) to channel-last tokens.

References:
    Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021, arXiv:2010.11929 (non-overlapping patches);
    Wang et al., "PVT v2", arXiv:2106.13797 (overlapping patch embedding).
"""
from typing import Callable, Optional

import torch.nn.functional as F
from torch import Tensor, nn

from .format import nchw_to_nhwc


class PatchEmbed(nn.Module):
    """Project ``patch_size`` patches, ``stride`` apart, to ``embed_dim`` channels, then an optional norm.

    Three forms cover the families: non-overlapping patches with ``pad_input=True`` (Swin, ViT: the input is
    zero-padded at the bottom/right, so the grid is ``ceil(H / patch_size)``), non-overlapping without padding
    (PVT v1: the grid floors), and overlapping patches with conv ``padding`` (PVT v2: ``k7 s4 p3`` rounds up).

    Args:
        in_channels: Input channels.
        embed_dim: Output channels.
        patch_size: Conv kernel side.
        stride: Conv stride (default: ``patch_size``).
        padding: Conv zero padding on every side.
        pad_input: Zero-pad the input at the bottom/right to a multiple of ``stride`` first.
        norm_layer: Optional norm over channels, applied to the tokens.
        bias: Bias in the projection.
    """

    def __init__(self, in_channels: int = 3, embed_dim: int = 96, patch_size: int = 4, stride: Optional[int] = None,
                 padding: int = 0, pad_input: bool = True,
                 norm_layer: Optional[Callable[[int], nn.Module]] = None, bias: bool = True) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.stride = stride or patch_size
        self.pad_input = pad_input
        self.proj = nn.Conv2d(in_channels, embed_dim, kernel_size=patch_size, stride=self.stride, padding=padding,
                              bias=bias)
        self.norm = norm_layer(embed_dim) if norm_layer is not None else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """Embed ``x`` of shape (B, C, H, W) into tokens of shape (B, H', W', embed_dim)."""
        if self.pad_input:  # always pad (possibly by 0) so that traced graphs keep the rule for every size
            H, W, s = x.shape[2], x.shape[3], self.stride
            x = F.pad(x, (0, (W + s - 1) // s * s - W, 0, (H + s - 1) // s * s - H))  # up to ceil(H / s) * s
        x = nchw_to_nhwc(self.proj(x))  # (B, C, H', W') -> (B, H', W', C)
        return self.norm(x)
