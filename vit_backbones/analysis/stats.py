"""The numbers behind the ViT paper's analysis figures, as small pure functions and streaming accumulators.

* :func:`filter_components`: principal components of patch-embedding filters (Dosovitskiy et al. 2021, Fig. 7 left).
* :func:`cosine_similarity_grid`: cosine similarity of every position embedding with all others (Fig. 7 centre).
* :class:`MeanAttentionDistance`: per head and layer, the attention-weighted mean distance in pixels between a
  query and its keys, averaged over queries and images (Fig. 7 right; the "receptive field size" of a head).
* :func:`attention_rollout` / :class:`Rollout`: attention rollout (Abnar and Zuidema, "Quantifying Attention Flow
  in Transformers", ACL 2020, arXiv:2005.00928): ``R = prod_l (0.5 * mean_h A_l + 0.5 * I)`` with rows renormalised.
* :class:`QueryMaps`: the attention of one query pixel over the image, layer by layer.

The accumulators take one captured map at a time and keep only per-head sums (or one (B, N, N) product, or one
row), so memory stays bounded by a single layer's map whatever the input size.

References:
    Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021, arXiv:2010.11929 (Fig. 7, Appendix D.7).
    Abnar and Zuidema, "Quantifying Attention Flow in Transformers", ACL 2020, arXiv:2005.00928.
"""
from typing import Iterable, Optional

import torch
from torch import Tensor

from .geometry import Placement

__all__ = ['filter_components', 'cosine_similarity_grid', 'MeanAttentionDistance', 'attention_rollout', 'Rollout',
           'QueryMaps', 'paint_keys']


def filter_components(weight: Tensor, num: int = 28) -> tuple[Tensor, Tensor]:
    """The first ``num`` principal components of conv filters.

    Args:
        weight: (C_out, C_in, kh, kw) filters (each output channel one sample).

    Returns:
        (k, C_in, kh, kw) unit-norm components, sign fixed so the largest entry is positive, and the (k,) fraction
        of the variance each explains; ``k = min(num, C_out, C_in * kh * kw)``.
    """
    if weight.ndim != 4:
        raise ValueError(f'expected (C_out, C_in, kh, kw) conv filters, got shape {tuple(weight.shape)}')
    flat = weight.detach().double().flatten(1)  # (C_out, C_in, kh, kw) -> (C_out, D)
    flat = flat - flat.mean(0, keepdim=True)
    _, sv, vt = torch.linalg.svd(flat, full_matrices=False)  # rows of vt: components, by decreasing variance
    k = min(num, vt.shape[0])
    comps = vt[:k]
    sign = torch.sign(comps.gather(1, comps.abs().argmax(1, keepdim=True)))
    explained = sv ** 2 / (sv ** 2).sum().clamp_min(1e-30)
    return (comps * sign).reshape(k, *weight.shape[1:]).float(), explained[:k].float()


def cosine_similarity_grid(embed: Tensor) -> Tensor:
    """Cosine similarity of each grid position's embedding with every other: (h, w, C) -> (h, w, h, w)."""
    h, w, c = embed.shape
    flat = torch.nn.functional.normalize(embed.detach().double().reshape(h * w, c), dim=1)  # (h, w, C) -> (N, C)
    return (flat @ flat.t()).reshape(h, w, h, w).float()  # (N, N) -> (h, w, h, w)


def _positions(where: Placement, stride: tuple[float, float]) -> tuple[Tensor, Tensor]:
    scale = torch.tensor(stride, dtype=torch.float64)
    return where.q_xy * scale, where.k_xy * scale


def image_keys(where: Placement) -> Tensor:
    """(G, Nk) keys whose cell starts inside the grid: not prefix tokens, not window padding."""
    start = where.k_xy - torch.tensor(where.k_cell, dtype=where.k_xy.dtype) / 2
    return (start[..., 0] < where.grid[0]) & (start[..., 1] < where.grid[1])  # NaN (prefix) compares False


class MeanAttentionDistance:
    """Streaming mean attention distance in pixels, per head of every attention layer.

    For a query q the distance is ``sum_k |a_qk| * |p_q - p_k| / sum_k |a_qk|`` over the keys that are image
    tokens (prefix tokens and the zero padding of windows excluded, the weights renormalised over the rest); it
    is averaged over the queries that are image tokens and over the images. The magnitude ``|a|`` matters only
    where maps are not softmax outputs (CaiT's talking heads and DeepViT's re-attention mix heads after the
    softmax, with signed weights).

    """

    def __init__(self) -> None:
        self.sums: dict[str, Tensor] = {}
        self.counts: dict[str, float] = {}
        self.kinds: dict[str, str] = {}
        self.grids: dict[str, tuple[int, int]] = {}
        self.order: list[str] = []

    def add(self, name: str, attn: Tensor, where: Placement, stride: tuple[float, float] = (1.0, 1.0)) -> None:
        """Reduce one (B * G, h, Nq, Nk) map of ``name`` placed by ``where``, on a grid of pixel ``stride``."""
        G = where.groups
        BG, h, n_q, n_k = attn.shape
        a = attn.reshape(BG // G, G, h, n_q, n_k).double().abs()  # (B*G, h, Nq, Nk) -> (B, G, h, Nq, Nk)
        q, k = _positions(where, stride)
        k_ok = image_keys(where)  # (G, Nk)
        dist = torch.cdist(torch.nan_to_num(q), torch.nan_to_num(k))  # (G, Nq, Nk)
        dist = dist * k_ok[:, None, :]
        a = a.to(dist.device)
        num = torch.einsum('bghqk,gqk->bghq', a, dist)
        den = torch.einsum('bghqk,gk->bghq', a, k_ok.double())
        per_query = num / den.clamp_min(1e-12)  # (B, G, h, Nq)
        valid = where.q_valid.to(per_query.device)[None, :, None, :]  # (1, G, 1, Nq)
        total = (per_query * valid).sum(dim=(0, 1, 3))  # (h,)
        count = float(valid.sum()) * a.shape[0]
        if count == 0:
            return
        if name not in self.sums:
            self.order.append(name)
            self.sums[name] = torch.zeros(h, dtype=torch.float64)
            self.counts[name] = 0.0
            self.kinds[name] = where.kind
            self.grids[name] = where.grid
        self.sums[name] += total.cpu()
        self.counts[name] += count

    def result(self) -> list[tuple[str, str, Tensor]]:
        """(name, kind, (h,) mean distance per head) for every layer with image queries, in forward order."""
        return [(name, self.kinds[name], (self.sums[name] / self.counts[name]).float()) for name in self.order]


def _rollout_step(attn: Tensor) -> Tensor:
    """One layer's (B, h, N, N) map -> the row-normalised ``0.5 * mean_h A + 0.5 * I`` (B, N, N)."""
    a = attn.double().abs().mean(1)  # (B, h, N, N) -> (B, N, N); |a|: signed only after head mixing
    a = 0.5 * a + 0.5 * torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
    return a / a.sum(-1, keepdim=True)


def attention_rollout(maps: Iterable[Tensor]) -> Tensor:
    """Attention rollout of (B, h, N, N) maps given first layer first: (B, N, N), row i the flow into token i."""
    rollout = Rollout()
    for attn in maps:
        rollout.add(attn)
    if rollout.value is None:
        raise ValueError('attention_rollout needs at least one map')
    return rollout.value.float()


class Rollout:
    """Streaming attention rollout: keeps only the running (B, N, N) product."""

    def __init__(self) -> None:
        self.value: Optional[Tensor] = None
        self.layers = 0

    def add(self, attn: Tensor) -> None:
        """Multiply in the next layer's (B, h, N, N) map (the token count must stay the same)."""
        if attn.shape[-1] != attn.shape[-2]:
            raise ValueError(f'rollout needs square self-attention maps, got {tuple(attn.shape)}')
        step = _rollout_step(attn)
        if self.value is not None and self.value.shape != step.shape:
            raise ValueError(f'rollout over maps of changing size: {tuple(self.value.shape)} then {tuple(step.shape)}')
        self.value = step if self.value is None else step @ self.value
        self.layers += 1


class QueryMaps:
    """The head-averaged attention row of the query token nearest to one pixel, for every layer (first image).

    Args:
        pixel: (y, x) in image pixels.
    """

    def __init__(self, pixel: tuple[float, float]) -> None:
        self.pixel = pixel
        self.rows: list[dict] = []

    def add(self, name: str, attn: Tensor, where: Placement, stride: tuple[float, float]) -> None:
        """Keep the row of ``name``'s (B * G, h, Nq, Nk) map for the query nearest to the pixel (image 0)."""
        q, k = _positions(where, stride)
        target = torch.tensor(self.pixel, dtype=torch.float64)
        d = ((q - target) ** 2).sum(-1).sqrt()  # (G, Nq)
        d = torch.where(where.q_valid, torch.nan_to_num(d, nan=float('inf')), torch.full_like(d, float('inf')))
        if not torch.isfinite(d).any():
            return
        flat = int(d.argmin())
        g, qi = divmod(flat, d.shape[1])
        row = attn[g].double().mean(0)[qi]  # first image, window g: (h, Nq, Nk) -> (Nk,)
        placed = image_keys(where)[g]
        cell = (where.k_cell[0] * stride[0], where.k_cell[1] * stride[1])
        self.rows.append(dict(name=name, kind=where.kind, query_xy=q[g, qi].tolist(), keys_xy=k[g][placed].tolist(),
                              weights=row.cpu()[placed].tolist(), other_weight=float(row.cpu()[~placed].sum()),
                              cell=cell))


def paint_keys(keys_xy: list, weights: list, cell: tuple[float, float], size: tuple[int, int]) -> Tensor:
    """Spread key weights over an (H, W) image: each key fills its cell (``cell`` pixels around its centre)."""
    heat = torch.zeros(size, dtype=torch.float64)
    for (y, x), w in zip(keys_xy, weights):
        y0, y1 = max(int(round(y - cell[0] / 2)), 0), min(int(round(y + cell[0] / 2)), size[0])
        x0, x1 = max(int(round(x - cell[1] / 2)), 0), min(int(round(x + cell[1] / 2)), size[1])
        if y1 > y0 and x1 > x0:
            heat[y0:y1, x0:x1] += w
    return heat.float()
