"""Window partitioning, shifted-window masks and relative-position indices for windowed attention.

References:
    Liu et al., "Swin Transformer", ICCV 2021, arXiv:2103.14030.
"""
import torch
from torch import Tensor


def window_partition(x: Tensor, window_size: int) -> Tensor:
    """Split (B, H, W, C) into windows of shape (B, nW, window_size**2, C); H and W divisible by the window."""
    B, H, W, C = x.shape
    # (B, H, W, C) -> (B, H/ws, ws, W/ws, ws, C) -> (B, H/ws, W/ws, ws, ws, C) -> (B, nW, ws*ws, C)
    x = x.view(B, H // window_size, window_size, W // window_size, window_size, C)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(B, -1, window_size * window_size, C)


def window_reverse(windows: Tensor, window_size: int, H: int, W: int) -> Tensor:
    """Inverse of :func:`window_partition`: (B, nW, window_size**2, C) -> (B, H, W, C)."""
    B, C = windows.shape[0], windows.shape[-1]
    # (B, nW, ws*ws, C) -> (B, H/ws, W/ws, ws, ws, C) -> (B, H/ws, ws, W/ws, ws, C) -> (B, H, W, C)
    x = windows.view(B, H // window_size, W // window_size, window_size, window_size, C)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(B, H, W, C)


def relative_position_index(window_size: int) -> Tensor:
    """Index into a ((2ws-1)**2, heads) bias table for every (query, key) pair of a window: (ws*ws, ws*ws)."""
    coords = torch.stack(torch.meshgrid(torch.arange(window_size), torch.arange(window_size),
                                        indexing='ij')).flatten(1)  # (2, N)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)  # (2, N, N) -> (N, N, 2)
    rel = rel + (window_size - 1)
    return rel[..., 0] * (2 * window_size - 1) + rel[..., 1]


def _shift_regions(size: int, window_size: int, shift: int) -> Tensor:
    """Region id (0, 1 or 2) of each position along one axis after a cyclic shift by ``shift``."""
    ids = torch.zeros(size, dtype=torch.long)
    if shift > 0:
        ids[size - window_size:size - shift] = 1
        ids[size - shift:] = 2
    return ids


def shifted_window_mask(height: int, width: int, window_size: int, shift: tuple[int, int],
                        device: torch.device, dtype: torch.dtype) -> Tensor:
    """Additive attention mask for shifted windows on a padded (height, width) grid: (nW, N, N).

    Tokens that the cyclic shift brought together from different image regions get -100 (as in the
    reference implementation), all others 0.
    """
    ids = _shift_regions(height, window_size, shift[0])[:, None] * 3 \
        + _shift_regions(width, window_size, shift[1])[None, :]  # (H, W)
    ids = window_partition(ids[None, :, :, None], window_size)[0, :, :, 0]  # (1, H, W, 1) -> (nW, N)
    mask = (ids[:, :, None] != ids[:, None, :]).to(dtype) * -100.0  # (nW, N, N)
    return mask.to(device)
