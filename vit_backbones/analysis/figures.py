"""The four analysis figures of the ViT paper for any backbone here: each ``run_*`` writes ``OUT/<name>.png`` and the
numbers behind it as ``OUT/<name>.json``, and returns those numbers.

* ``filters``: principal components of the patch-embedding filters (patchify stems); for convolutional stems
  (Shuffle, CvT, LeViT, CeiT, DeepViT's conv stem, hybrid ResNet) the first conv's filters themselves.
* ``pos-embed``: cosine similarity of learned absolute position embeddings (ViT / DeiT / CaiT / CeiT / DeepViT /
  hybrid / ViT-Adapter ``pos_embed``, PVT v1 stage 0, Swin ``absolute_pos_embed``); relative-position bias per
  offset and head (Swin, Shuffle window tables, LeViT's offset biases).
* ``attention-distance``: mean attention distance of every head of every attention layer against depth.
* ``attention-maps``: attention rollout from the cls token (global attention with a cls token all the way), and
  the attention of one query pixel in every layer.

Rendering uses matplotlib's object API on an Agg canvas (no pyplot state, no display needed).
"""
import json
import math
import os
import os.path as osp
from typing import Any, Optional

import numpy as np
import torch
from torch import Tensor, nn

from ..layers import capture_attention
from .geometry import GeometryRecorder, Placement, calibrate_strides
from .stats import MeanAttentionDistance, QueryMaps, Rollout, cosine_similarity_grid, filter_components, paint_keys

__all__ = ['SUBCOMMANDS', 'run_filters', 'run_pos_embed', 'run_attention_distance', 'run_attention_maps',
           'first_conv']

SUBCOMMANDS = ('filters', 'pos-embed', 'attention-distance', 'attention-maps')


# ---- output --------------------------------------------------------------------------------------------
def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _write(out_dir: str, name: str, fig: Any, numbers: dict) -> dict:
    os.makedirs(out_dir, exist_ok=True)
    fig.savefig(osp.join(out_dir, f'{name}.png'))
    with open(osp.join(out_dir, f'{name}.json'), 'w') as f:
        json.dump(numbers, f, indent=1)
    return numbers


def _note_figure(title: str, text: str) -> Any:
    fig = _figure(6, 2)
    fig.text(0.5, 0.6, title, ha='center', fontsize=12)
    fig.text(0.5, 0.3, text, ha='center', fontsize=8, wrap=True)
    return fig


def _rgb(t: Tensor) -> np.ndarray:
    """(3, h, w) -> (h, w, 3) in [0, 1], min-max per patch (a 1-channel input is shown grey)."""
    t = t.float()
    t = (t - t.min()) / (t.max() - t.min()).clamp_min(1e-12)
    if t.shape[0] == 1:
        t = t.expand(3, -1, -1)
    return t[:3].permute(1, 2, 0).numpy()  # (3, h, w) -> (h, w, 3)


# ---- filters ---------------------------------------------------------------------------------------------
def first_conv(model: nn.Module) -> tuple[str, nn.Conv2d]:
    """The first conv that reads the image (module order): the patch embedding or a conv stem's first layer."""
    in_channels = getattr(model, 'in_channels', 3)
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d) and module.in_channels == in_channels:
            return name, module
    raise ValueError(f'{type(model).__name__} has no conv reading {in_channels}-channel images')


def run_filters(model: nn.Module, out_dir: str, num: int = 28, mode: str = 'auto') -> dict:
    """Principal components of the first conv's filters (``mode='pca'``), or the filters (``'raw'``, the
    ``num`` largest by norm); ``'auto'``: PCA for a patchify conv (kernel = stride), raw filters otherwise."""
    if mode not in ('auto', 'pca', 'raw'):
        raise ValueError(f"mode must be 'auto', 'pca' or 'raw', got {mode!r}")
    name, conv = first_conv(model)
    weight = conv.weight.detach().cpu()
    patchify = tuple(conv.kernel_size) == tuple(conv.stride)
    if mode == 'pca' or (mode == 'auto' and patchify):
        shown, explained = filter_components(weight, num)
        what = 'principal components'
        extra = dict(explained_variance=explained.tolist())
    else:
        order = weight.flatten(1).norm(dim=1).argsort(descending=True)[:num]
        shown, what = weight[order], 'filters (largest norm first)'
        extra = dict(filter_index=order.tolist())
    k = shown.shape[0]
    cols = min(7, k)
    rows = math.ceil(k / cols)
    fig = _figure(1.2 * cols, 1.2 * rows + 0.5)
    fig.suptitle(f'{type(model).__name__} {name}: {what}', fontsize=9)
    for i in range(k):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.imshow(_rgb(shown[i]), interpolation='nearest')
        ax.set_axis_off()
    numbers = dict(model=type(model).__name__, module=name, kernel_size=list(conv.kernel_size),
                   stride=list(conv.stride), mode='pca' if what == 'principal components' else 'raw', count=k,
                   weights=shown.tolist(), **extra)
    return _write(out_dir, 'filters', fig, numbers)


# ---- position embeddings ----------------------------------------------------------------------------------
def absolute_embedding(model: nn.Module, max_grid: int = 32) -> Optional[tuple[str, Tensor]]:
    """The learned absolute position embedding of the patch grid as (h, w, C), or None.

    ``pos_embed`` (1, P + h * w, C) of the ViT family (prefix rows dropped; grid ``model.pos_grid``), or the first
    4-D one (1, C, h, w): Swin's ``absolute_pos_embed``, PVT v1's stage-0 ``pos_embed``. Grids larger than
    ``max_grid`` are resized down to it (bilinear) so the figure and the JSON stay readable.
    """
    from ..layers import resize_abs_pos_embed

    for name, param in model.named_parameters():
        if not name.endswith('pos_embed') or param.ndim not in (3, 4):
            continue
        p = param.detach().float().cpu()
        if p.ndim == 3:
            grid = tuple(getattr(model, 'pos_grid', ()))
            if len(grid) != 2:
                side = math.isqrt(p.shape[1])
                grid = (side, side)
            prefix = p.shape[1] - grid[0] * grid[1]
            if prefix < 0:
                continue
            p = p[0, prefix:].reshape(grid[0], grid[1], -1).permute(2, 0, 1)[None]  # (N, C) -> (1, C, h, w)
        if max(p.shape[-2:]) > max_grid:
            h, w = p.shape[-2:]
            scale = max_grid / max(h, w)
            p = resize_abs_pos_embed(p, (max(round(h * scale), 1), max(round(w * scale), 1)), mode='bilinear')
        return name, p[0].permute(1, 2, 0)  # (1, C, h, w) -> (h, w, C)
    return None


def relative_tables(model: nn.Module) -> list[tuple[str, str, Tensor]]:
    """(module name, kind, (heads, a, b) bias per offset) of every relative-position table.

    Swin / Shuffle windows: ``relative_position_bias_table`` ((2ws - 1)^2, h) viewed as (h, dy, dx) for offsets
    ``-(ws - 1) .. ws - 1``; LeViT: ``attention_biases`` (h, R0 * R1) viewed as (h, |dy|, |dx|).
    """
    tables = []
    for name, module in model.named_modules():
        table = getattr(module, 'relative_position_bias_table', None)
        if isinstance(table, Tensor):
            side = math.isqrt(table.shape[0])
            tables.append((name, 'signed offset', table.detach().float().cpu().reshape(side, side, -1)
                           .permute(2, 0, 1)))  # ((2ws-1)^2, h) -> (dy, dx, h) -> (h, dy, dx)
        biases = getattr(module, 'attention_biases', None)
        if isinstance(biases, Tensor) and hasattr(module, 'table_size'):
            tables.append((name, 'absolute offset', biases.detach().float().cpu()
                           .reshape(biases.shape[0], *module.table_size)))  # (h, R0 * R1) -> (h, R0, R1)
    return tables


def run_pos_embed(model: nn.Module, out_dir: str, max_rows: int = 12, max_heads: int = 16) -> dict:
    """Cosine-similarity grid of the absolute embedding and/or the relative bias tables per head."""
    absolute = absolute_embedding(model)
    tables = relative_tables(model)
    numbers: dict[str, Any] = dict(model=type(model).__name__)
    if absolute is None and not tables:
        why = ('no learned position table: positions come from convolutions (CvT, CPVT PEG, PVT v2), or from '
               "decomposed per-channel tables (ViTDet rel_pos, which depend on the query and have no per-offset bias)")
        numbers['note'] = why
        return _write(out_dir, 'pos-embed', _note_figure(f'{type(model).__name__}: no position embedding', why),
                      numbers)
    shown = [t for t in tables[::max(1, math.ceil(len(tables) / max_rows))]]
    heads = min(max((t[2].shape[0] for t in shown), default=0), max_heads)
    abs_rows = 0
    if absolute is not None:
        h, w = absolute[1].shape[:2]
        abs_rows = 4
    fig = _figure(max(1.1 * heads, 6), 1.1 * len(shown) + (1.6 * abs_rows if abs_rows else 0) + 0.6)
    rows = abs_rows + len(shown)
    if absolute is not None:
        name, embed = absolute
        sim = cosine_similarity_grid(embed)  # (h, w, h, w)
        tiles = torch.full((h * (h + 1), w * (w + 1)), float('nan'))
        for i in range(h):
            for j in range(w):
                tiles[i * (h + 1):i * (h + 1) + h, j * (w + 1):j * (w + 1) + w] = sim[i, j]
        ax = fig.add_subplot(rows, 1, (1, abs_rows))
        im = ax.imshow(tiles.numpy(), cmap='viridis', vmin=-1, vmax=1, interpolation='nearest')
        ax.set_title(f'{name}: cosine similarity of each position with all others ({h}x{w} grid)', fontsize=8)
        ax.set_axis_off()
        fig.colorbar(im, ax=ax, fraction=0.03)
        numbers['absolute'] = dict(name=name, grid=[h, w], similarity=sim.reshape(h * w, h * w).tolist())
    for r, (name, kind, table) in enumerate(shown):
        for head in range(min(table.shape[0], max_heads)):
            ax = fig.add_subplot(rows, max(heads, 1), (abs_rows + r) * max(heads, 1) + head + 1)
            ax.imshow(table[head].numpy(), cmap='coolwarm', interpolation='nearest')
            ax.set_xticks([])
            ax.set_yticks([])
            if head == 0:
                ax.set_ylabel(name.replace('.attn', '').replace('layers.', 'L').replace('stages.', 'S'), fontsize=5)
            if r == 0:
                ax.set_title(f'head {head}', fontsize=6)
    if tables:
        numbers['relative'] = [dict(name=name, kind=kind, bias=table.tolist()) for name, kind, table in tables]
    return _write(out_dir, 'pos-embed', fig, numbers)


# ---- attention -------------------------------------------------------------------------------------------
def _batches(n: int, batch_size: int) -> list[slice]:
    return [slice(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]


@torch.no_grad()
def run_attention_distance(model: nn.Module, images: Tensor, out_dir: str, batch_size: int = 4,
                           progress: bool = True, calibration_size: int = 448) -> dict:
    """Mean attention distance of every head of every attention layer over ``images`` (N, 3, H, W);
    ``calibration_size``: see :func:`~vit_backbones.analysis.geometry.calibrate_strides`."""
    strides = calibrate_strides(model, images.shape[1], calibration_size)
    meter = MeanAttentionDistance()
    recorder = GeometryRecorder(model)
    unplaced: dict[str, str] = {}

    def callback(name: str, module: nn.Module, attn: Tensor) -> None:
        where = recorder.place(name, tuple(attn.shape))
        if isinstance(where, Placement) and name in strides:
            meter.add(name, attn, where, strides[name])
        elif name not in unplaced:
            unplaced[name] = where if isinstance(where, str) else 'no stride (not seen in calibration)'

    bar = None
    if progress:
        from mmengine.utils import ProgressBar
        bar = ProgressBar(images.shape[0])
    with recorder, capture_attention(model, callback):
        for part in _batches(images.shape[0], batch_size):
            model(images[part])
            if bar is not None:
                for _ in range(part.stop - part.start):
                    bar.update()
    layers = meter.result()
    fig = _figure(7, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    kinds = sorted({kind for _, kind, _ in layers})
    colours = {kind: f'C{i}' for i, kind in enumerate(kinds)}
    for depth, (name, kind, dist) in enumerate(layers):
        ax.scatter([depth] * len(dist), dist.numpy(), s=10, color=colours[kind],
                   label=kind if kind not in ax.get_legend_handles_labels()[1] else None)
    ax.set_xlabel('network depth (attention layer)')
    ax.set_ylabel('mean attention distance (pixels)')
    ax.set_title(f'{type(model).__name__}: mean attention distance per head, {images.shape[0]} images '
                 f'{images.shape[2]}x{images.shape[3]}', fontsize=9)
    if layers:
        ax.legend(fontsize=7)
    numbers = dict(model=type(model).__name__, images=images.shape[0], image_size=list(images.shape[2:]),
                   layers=[dict(depth=i, name=name, kind=kind, stride=list(strides[name]), grid=list(meter.grids[name]),
                                mean_distance=dist.tolist()) for i, (name, kind, dist) in enumerate(layers)],
                   unplaced=unplaced)
    return _write(out_dir, 'attention-distance', fig, numbers)


@torch.no_grad()
def run_attention_maps(model: nn.Module, image: Tensor, picture: np.ndarray, out_dir: str,
                       query: Optional[tuple[float, float]] = None, max_layers: int = 8,
                       calibration_size: int = 448) -> dict:
    """Attention rollout from the cls token (when every attention layer is global with a cls token) and the
    attention of the query pixel (default: the centre) in every layer, over one image (1, 3, H, W)."""
    H, W = image.shape[-2:]
    query = query if query is not None else ((H - 1) / 2 + 0.5, (W - 1) / 2 + 0.5)
    if not (0 <= query[0] < H and 0 <= query[1] < W):
        raise ValueError(f'query pixel {query} is outside the {H}x{W} image')
    strides = calibrate_strides(model, image.shape[1], calibration_size)
    recorder = GeometryRecorder(model)
    rows = QueryMaps(query)
    rollout, kinds, last = Rollout(), [], None
    unplaced: dict[str, str] = {}

    def callback(name: str, module: nn.Module, attn: Tensor) -> None:
        nonlocal last
        where = recorder.place(name, tuple(attn.shape))
        if not isinstance(where, Placement) or name not in strides:
            unplaced.setdefault(name, where if isinstance(where, str) else 'no stride')
            return
        rows.add(name, attn, where, strides[name])
        kinds.append((where.kind, where.num_prefix, attn.shape[-2], attn.shape[-1]))
        if where.kind == 'global' and attn.shape[-1] == attn.shape[-2] and (
                rollout.value is None or rollout.value.shape[-1] == attn.shape[-1]):
            rollout.add(attn[:1])
            last = (where, strides[name])

    with recorder, capture_attention(model, callback):
        model(image[:1])
    numbers: dict[str, Any] = dict(model=type(model).__name__, image_size=[H, W], query=list(query),
                                   unplaced=unplaced)
    heat_rollout = None
    every_global = bool(kinds) and rollout.layers == len(kinds)
    if every_global and last is not None:
        where, stride = last
        R = rollout.value[0]  # (N, N)
        grid = where.grid
        P = where.num_prefix
        if P:
            source, what = 0, 'cls token'
        else:  # no cls token: the flow into the query pixel's token
            centres = where.q_xy[0, P:] * torch.tensor(stride, dtype=torch.float64)
            source = P + int(((centres - torch.tensor(query, dtype=torch.float64)) ** 2).sum(-1).argmin())
            what = 'query token'
        flow = R[source, P:].reshape(grid)  # (h, w)
        keys = (where.k_xy[0, P:] * torch.tensor(stride, dtype=torch.float64)).tolist()
        heat_rollout = paint_keys(keys, flow.flatten().tolist(), stride, (H, W))
        numbers['rollout'] = dict(source=what, layers=rollout.layers, grid=list(grid), flow=flow.tolist())
    else:
        numbers['rollout'] = None
        numbers['rollout_note'] = ('attention rollout needs global self-attention over one token set in every '
                                   'layer (ViT-style); this model mixes windows, reduced keys or changing grids')
    numbers['query_maps'] = rows.rows
    picked = rows.rows
    if len(picked) > max_layers:
        idx = np.linspace(0, len(picked) - 1, max_layers).round().astype(int)
        picked = [picked[i] for i in idx]
    panels = 1 + (heat_rollout is not None) + len(picked)
    cols = min(panels, 5)
    fig = _figure(2.4 * cols, 2.5 * math.ceil(panels / cols))
    ax = fig.add_subplot(math.ceil(panels / cols), cols, 1)
    ax.imshow(picture)
    ax.plot([query[1] - 0.5], [query[0] - 0.5], 'r+', markersize=10)
    ax.set_title('input, query +', fontsize=7)
    ax.set_axis_off()
    k = 2
    if heat_rollout is not None:
        ax = fig.add_subplot(math.ceil(panels / cols), cols, k)
        ax.imshow(picture)
        ax.imshow(heat_rollout.numpy(), cmap='jet', alpha=0.5)
        ax.set_title(f'rollout ({numbers["rollout"]["source"]})', fontsize=7)
        ax.set_axis_off()
        k += 1
    for row in picked:
        ax = fig.add_subplot(math.ceil(panels / cols), cols, k)
        ax.imshow(picture)
        ax.imshow(paint_keys(row['keys_xy'], row['weights'], row['cell'], (H, W)).numpy(), cmap='jet', alpha=0.5)
        ax.plot([query[1] - 0.5], [query[0] - 0.5], 'w+', markersize=8)
        ax.set_title(f"{row['name'].replace('.attn', '')}\n{row['kind']}", fontsize=6)
        ax.set_axis_off()
        k += 1
    return _write(out_dir, 'attention-maps', fig, numbers)
