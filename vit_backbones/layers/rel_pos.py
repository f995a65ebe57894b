"""Decomposed relative position bias: one learned embedding per row offset and one per column offset.

The bias between query (y, x) and key (y', x') is ``q . R_h[y - y'] + q . R_w[x - x']``, computed from the
unscaled query. A table learned for another grid is linearly interpolated to ``2 * size - 1`` entries. (The
references also scale offsets when query and key grids differ; self-attention never needs that.)

References:
    Li et al., "MViTv2", CVPR 2022, arXiv:2112.01526 (decomposed relative positions);
    Li et al., "Exploring Plain Vision Transformer Backbones for Object Detection" (ViTDet), ECCV 2022,
    arXiv:2203.16527; detectron2 ``modeling/backbone/utils.py`` and timm ``vision_transformer_sam.py``
    (``get_rel_pos``), whose numbers these functions reproduce.
"""
import torch
import torch.nn.functional as F
from torch import Tensor


def rel_pos_table(size: int, rel_pos: Tensor) -> Tensor:
    """Embeddings of every (query, key) offset along an axis of ``size`` positions: (L, d) -> (size, size, d).

    Args:
        size: Positions along the axis (queries and keys alike: self-attention).
        rel_pos: Learned table of L = 2 * s - 1 offsets for some size s, linearly interpolated to
            ``2 * size - 1`` entries (always: the identity when L already fits, and no size test to freeze a traced
            graph).
    """
    # (L, d) -> (1, d, L) -> interpolate -> (2 * size - 1, d)
    table = F.interpolate(rel_pos.T.unsqueeze(0), size=2 * size - 1, mode='linear', align_corners=False)[0].T
    coords = torch.arange(size, device=rel_pos.device)
    return table[coords[:, None] - coords[None, :] + (size - 1)]  # offset y - y' + size - 1 in [0, 2 * size - 1)


def decomposed_rel_pos_bias(q: Tensor, rel_pos_h: Tensor, rel_pos_w: Tensor, hw: tuple[int, int]) -> Tensor:
    """Additive self-attention bias from decomposed relative positions.

    Args:
        q: Unscaled queries (B, heads, h * w, d) of tokens on the (h, w) grid ``hw``.
        rel_pos_h: Row-offset table (Lh, d).
        rel_pos_w: Column-offset table (Lw, d).
        hw: The token grid (h, w); keys lie on the same grid.

    Returns:
        (B, heads, h * w, h * w).
    """
    q_h, q_w = hw
    k_h, k_w = hw
    r_h = rel_pos_table(q_h, rel_pos_h)  # (q_h, k_h, d)
    r_w = rel_pos_table(q_w, rel_pos_w)  # (q_w, k_w, d)
    B, heads, _, d = q.shape
    grid = q.reshape(B, heads, q_h, q_w, d)  # (B, h, N, d) -> (B, h, q_h, q_w, d)
    bias_h = torch.einsum('bnyxd,ykd->bnyxk', grid, r_h.to(q.dtype))  # (B, h, q_h, q_w, k_h)
    bias_w = torch.einsum('bnyxd,xkd->bnyxk', grid, r_w.to(q.dtype))  # (B, h, q_h, q_w, k_w)
    bias = bias_h[..., :, None] + bias_w[..., None, :]  # (B, h, q_h, q_w, k_h, k_w)
    return bias.reshape(B, heads, q_h * q_w, k_h * k_w)  # -> (B, h, N, M)
