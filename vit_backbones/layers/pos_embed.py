"""Resizing of learned position encodings: absolute embeddings (with or without prefix tokens) and relative tables.

The resizes never short-cut on equal sizes: interpolating to the same size is exactly the identity for these
modes, and a size comparison would freeze an exported graph to the example input's size.

References:
    Dosovitskiy et al., ICLR 2021 (arXiv:2010.11929) for interpolated absolute embeddings;
    Liu et al., ICCV 2021 (arXiv:2103.14030) for relative-position bias tables;
    timm ``layers/pos_embed.py`` (``resample_abs_pos_embed``), whose numbers :func:`resample_abs_pos_embed` matches.
"""
import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor


def resize_abs_pos_embed(pos_embed: Tensor, size: tuple[int, int], mode: str = 'bicubic',
                         antialias: bool = False) -> Tensor:
    """Resize a grid embedding of shape (1, C, h, w) to (1, C, size[0], size[1]) (align_corners=False)."""
    return F.interpolate(pos_embed, size=size, mode=mode, align_corners=False, antialias=antialias)


def resample_abs_pos_embed(pos_embed: Tensor, new_size: tuple[int, int], old_size: Optional[tuple[int, int]] = None,
                           num_prefix_tokens: int = 1, mode: str = 'bicubic', antialias: bool = True) -> Tensor:
    """Resize a sequence embedding (1, P + h*w, C) with ``P`` prefix tokens to (1, P + H*W, C).

    The prefix rows (cls, distillation) are kept as they are; the grid rows are interpolated in 2-D in float32, as
    timm's ``resample_abs_pos_embed`` does (the same defaults: bicubic with antialiasing).

    Args:
        pos_embed: (1, P + h*w, C).
        new_size: Target grid (H, W).
        old_size: Source grid (h, w); default: square.
        num_prefix_tokens: Leading rows that are not on the grid.
        mode: Interpolation mode.
        antialias: Antialias when downsampling.
    """
    if old_size is None:
        side = math.isqrt(pos_embed.shape[1] - num_prefix_tokens)
        if side * side != pos_embed.shape[1] - num_prefix_tokens:
            raise ValueError(f'position embedding of shape {tuple(pos_embed.shape)} with {num_prefix_tokens} prefix '
                             'tokens is not a square grid; pass old_size')
        old_size = (side, side)
    prefix, grid = pos_embed[:, :num_prefix_tokens], pos_embed[:, num_prefix_tokens:]
    dim = grid.shape[-1]
    grid = grid.float().reshape(1, old_size[0], old_size[1], dim).permute(0, 3, 1, 2)  # (1, N, C) -> (1, C, h, w)
    grid = F.interpolate(grid, size=new_size, mode=mode, align_corners=False, antialias=antialias)
    grid = grid.permute(0, 2, 3, 1).reshape(1, -1, dim).to(pos_embed.dtype)  # (1, C, H, W) -> (1, H*W, C)
    return torch.cat([prefix, grid], dim=1) if num_prefix_tokens else grid


def resize_rel_pos_bias_table(table: Tensor, window_size: int) -> Tensor:
    """Resize a ((2w-1)**2, heads) relative-position bias table to a new window size (bicubic)."""
    old_side = round(table.shape[0] ** 0.5)
    if old_side * old_side != table.shape[0]:
        raise ValueError(f'expected a square ((2w-1)**2, heads) table, got shape {tuple(table.shape)}')
    new_side = 2 * window_size - 1
    if old_side == new_side:
        return table
    heads = table.shape[1]
    grid = table.T.reshape(1, heads, old_side, old_side)  # (L, heads) -> (1, heads, S, S)
    grid = F.interpolate(grid, size=(new_side, new_side), mode='bicubic', align_corners=False)
    return grid.reshape(heads, new_side * new_side).T.contiguous()  # (1, heads, S', S') -> (L', heads)
