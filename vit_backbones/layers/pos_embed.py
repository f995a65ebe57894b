"""Resizing of learned position encodings: absolute embeddings and relative-position bias tables.

References:
    Dosovitskiy et al., ICLR 2021 (arXiv:2010.11929) for interpolated absolute embeddings;
    Liu et al., ICCV 2021 (arXiv:2103.14030) for relative-position bias tables.
"""
import torch.nn.functional as F
from torch import Tensor


def resize_abs_pos_embed(pos_embed: Tensor, size: tuple[int, int], mode: str = 'bicubic') -> Tensor:
    """Resize a grid embedding of shape (1, C, h, w) to (1, C, size[0], size[1])."""
    if tuple(pos_embed.shape[-2:]) == tuple(size):
        return pos_embed
    return F.interpolate(pos_embed, size=size, mode=mode, align_corners=False)


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
