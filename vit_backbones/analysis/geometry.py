"""Where the query and key tokens of every attention call sit in the image: the geometry behind the figures.

:func:`~vit_backbones.layers.capture_attention` hands over (B', h, Nq, Nk) maps; to measure distances or paint a
map, each query and key index needs a position. The backbones are left as they are: a :class:`GeometryRecorder`
registers forward pre-hooks (public ``torch.nn.Module`` API) on every attention module and on the block that calls
it, and records what they are called with (the token grid ``hw``, the (B, H, W, C) map of windowed blocks). From
that and the module's own settings, :func:`locate` rebuilds the layout the family used, with the family's own
partition functions applied to a map of coordinates, so windows, shifts and shuffles are placed exactly as the
tokens were:

=============================  ===================================================================================
attention (family)             placement
=============================  ===================================================================================
ViT blocks (ViT, DeiT, CaiT,   P prefix tokens (unplaced) + the (h, w) grid from the block's ``hw``; ViTDet window
DeepViT, CeiT, CPVT, hybrid,   blocks: the padded grid split by ``window_partition`` (padded tokens placed outside
ViT-Adapter)                   the image, as they are attended to)
Swin ``WindowAttention``       padded grid, ``cyclic_shift`` by ``window_size // 2`` on axes longer than a window,
                               then ``window_partition``
Shuffle ``WindowAttention``    padded grid through ``window_partition`` or ``shuffle_partition`` (strided windows)
PVT / PCPVT spatial reduction  queries on the grid, keys at the centres of the ``sr_ratio`` conv cells (or of the
                               7 x 7 adaptive-pool cells of linear SRA)
CvT conv projections           cls token unplaced; q / kv grids at the centres of their strided depth-wise convs
LeViT (shrink) attention       keys on the grid, queries on the stride-2 subsample
CaiT class attention           the cls query unplaced, keys: cls + the grid of the last self-attention block
=============================  ===================================================================================

Positions are in token units of the attention's input grid (token (i, j) centred at (i + 0.5, j + 0.5)); the
pixel stride of each grid comes from :func:`calibrate_strides`. CeiT's layer-wise class attention attends over
per-layer cls tokens, which have no place in the image: it is reported as unplaced.
"""
from dataclasses import dataclass
from typing import Any, Optional, Union

import torch
from torch import Tensor, nn

from ..layers import Attention, WindowAttention, cyclic_shift, shuffle_partition, window_grid, window_partition

__all__ = ['Placement', 'GeometryRecorder', 'locate', 'grid_centres', 'calibrate_strides']


@dataclass
class Placement:
    """Token positions of one attention call, in token units of its input grid.

    Attributes:
        kind: Layout name ('global', 'window', 'shifted window', 'shuffled window', 'spatial reduction', ...).
        grid: (H, W) of the attention's input token grid.
        q_xy: (G, Nq, 2) query centres (y, x); NaN for tokens without a place (prefix tokens).
        k_xy: (G, Nk, 2) key centres.
        q_valid: (G, Nq) queries that are image tokens (placed and inside the grid, not padding).
        k_cell: (cy, cx) extent of a key token (e.g. ``sr_ratio`` for spatially reduced keys).
        num_prefix: Prefix (cls-like) tokens in front of the queries and keys.
    """

    kind: str
    grid: tuple[int, int]
    q_xy: Tensor
    k_xy: Tensor
    q_valid: Tensor
    k_cell: tuple[float, float] = (1.0, 1.0)
    num_prefix: int = 0

    @property
    def groups(self) -> int:
        """G: windows per image (1 for global attention)."""
        return self.q_xy.shape[0]


def grid_centres(height: int, width: int, stride: float = 1.0, offset: float = 0.0) -> Tensor:
    """(height, width, 2) token centres (y, x): ``(i * stride + offset + 0.5, j * stride + offset + 0.5)``."""
    ys = torch.arange(height, dtype=torch.float64) * stride + offset + 0.5
    xs = torch.arange(width, dtype=torch.float64) * stride + offset + 0.5
    return torch.stack(torch.meshgrid(ys, xs, indexing='ij'), dim=-1)


def _with_prefix(xy: Tensor, prefix: int) -> Tensor:
    """Prepend ``prefix`` unplaced (NaN) tokens: (N, 2) -> (prefix + N, 2)."""
    return torch.cat([torch.full((prefix, 2), float('nan'), dtype=xy.dtype), xy], dim=0)


def _inside(xy: Tensor, hw: tuple[int, int]) -> Tensor:
    """Placed and inside the (H, W) grid: (..., 2) -> (...)."""
    return (xy[..., 0] < hw[0]) & (xy[..., 1] < hw[1])  # NaN compares False


def _global(grid: tuple[int, int], n_q: int, n_k: int, kind: str = 'global') -> Placement:
    """Self-attention over prefix tokens + the whole grid (the prefix count is what the map has beyond it)."""
    tokens = grid_centres(*grid).reshape(-1, 2)  # (h, w, 2) -> (N, 2)
    prefix = n_q - tokens.shape[0]
    if prefix < 0 or n_k - tokens.shape[0] != prefix:
        raise ValueError(f'a ({n_q}, {n_k}) map does not fit a {grid} grid with prefix tokens')
    xy = _with_prefix(tokens, prefix)[None]  # (1, P + N, 2)
    return Placement(kind, grid, xy, xy, _inside(xy, grid), num_prefix=prefix)


def _windows(grid: tuple[int, int], ws: int, shift: tuple[int, int] = (0, 0), shuffle: bool = False,
             kind: str = 'window') -> Placement:
    """Windows of a bottom/right padded grid, grouped exactly as the block does (shift, then partition)."""
    hp, wp = window_grid(grid[0], ws) * ws, window_grid(grid[1], ws) * ws
    xy = grid_centres(hp, wp)[None]  # (1, Hp, Wp, 2)
    if any(shift):
        xy = cyclic_shift(xy, shift)
    xy = (shuffle_partition if shuffle else window_partition)(xy, ws)[0]  # (1, Hp, Wp, 2) -> (nW, ws*ws, 2)
    return Placement(kind, grid, xy, xy, _inside(xy, grid))


def _conv_centres(size: int, kernel: int, stride: int, padding: int) -> Tensor:
    """Centres (token units) of the outputs of a 1-D conv over ``size`` tokens."""
    count = (size + 2 * padding - kernel) // stride + 1
    return torch.arange(count, dtype=torch.float64) * stride - padding + (kernel - 1) / 2 + 0.5


def _grid_of(centres_y: Tensor, centres_x: Tensor) -> Tensor:
    """(Ny, Nx, 2) from per-axis centres."""
    return torch.stack(torch.meshgrid(centres_y, centres_x, indexing='ij'), dim=-1)


def _spatial_reduction(module: nn.Module, grid: tuple[int, int], n_q: int, n_k: int) -> Placement:
    """PVT / PCPVT: queries on the grid; keys from an ``sr_ratio`` conv (tiny maps padded up to one kernel) or
    the 7 x 7 adaptive average pool of linear SRA."""
    H, W = grid
    q = grid_centres(H, W).reshape(-1, 2)
    if getattr(module, 'pool', None) is not None:
        out = module.pool.output_size
        oh, ow = (out, out) if isinstance(out, int) else out

        def pooled(size: int, n: int) -> Tensor:  # adaptive pooling cells [floor(i*s/n), ceil((i+1)*s/n))
            i = torch.arange(n, dtype=torch.float64)
            return (torch.floor(i * size / n) + torch.ceil((i + 1) * size / n)) / 2

        k, cell = _grid_of(pooled(H, oh), pooled(W, ow)), (H / oh, W / ow)
    elif getattr(module, 'sr', None) is not None:
        r = module.sr_ratio
        k = _grid_of(_conv_centres(max(H, r), r, r, 0), _conv_centres(max(W, r), r, r, 0))
        cell = (float(r), float(r))
    else:
        k, cell = grid_centres(H, W), (1.0, 1.0)
    k = k.reshape(-1, 2)
    if q.shape[0] != n_q or k.shape[0] != n_k:
        raise ValueError(f'spatial reduction of a {grid} grid gives ({q.shape[0]}, {k.shape[0]}) tokens, the map '
                         f'has ({n_q}, {n_k})')
    return Placement('spatial reduction', grid, q[None], k[None], _inside(q[None], grid), cell)


def _conv_projection(module: nn.Module, grid: tuple[int, int], n_q: int, n_k: int) -> Placement:
    """CvT: prefix tokens bypass the convolutions; q / kv come from strided depth-wise convs (padding k // 2)."""
    prefix = module.num_prefix

    def placed(proj: nn.Module) -> Tensor:
        conv = proj.conv
        (kh, kw), (sh, sw), (ph, pw) = conv.kernel_size, conv.stride, conv.padding
        return _grid_of(_conv_centres(grid[0], kh, sh, ph), _conv_centres(grid[1], kw, sw, pw)).reshape(-1, 2)

    q, k = _with_prefix(placed(module.conv_proj_q), prefix), _with_prefix(placed(module.conv_proj_k), prefix)
    if q.shape[0] != n_q or k.shape[0] != n_k:
        raise ValueError(f'CvT projections of a {grid} grid give ({q.shape[0]}, {k.shape[0]}) tokens, the map has '
                         f'({n_q}, {n_k})')
    stride = module.conv_proj_k.conv.stride
    kind = 'conv projection' if stride == (1, 1) else 'conv projection, strided keys'
    return Placement(kind, grid, q[None], k[None], _inside(q[None], grid), (float(stride[0]), float(stride[1])),
                     prefix)


def _shrink(module: nn.Module, grid: tuple[int, int], n_q: int, n_k: int) -> Placement:
    """LeViT: keys on the grid; queries on the ``stride`` subsample ``x[::s, ::s]``."""
    s = module.stride
    q = grid_centres(window_grid(grid[0], s), window_grid(grid[1], s), stride=s).reshape(-1, 2)
    k = grid_centres(*grid).reshape(-1, 2)
    if q.shape[0] != n_q or k.shape[0] != n_k:
        raise ValueError(f'LeViT attention on a {grid} grid gives ({q.shape[0]}, {k.shape[0]}) tokens, the map has '
                         f'({n_q}, {n_k})')
    return Placement('global' if s == 1 else 'shrink (stride-2 queries)', grid, q[None], k[None],
                     _inside(q[None], grid))


def _is_grid(value: Any) -> bool:
    return isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, int) for v in value)


def locate(module: nn.Module, parent: Optional[nn.Module], args: tuple, parent_args: tuple,
           attn_shape: tuple[int, ...], last_grid: Optional[tuple[int, int]] = None) -> Union[Placement, str]:
    """The :class:`Placement` of one attention call, or a sentence saying why it has none.

    Args:
        module: The attention module that produced the map.
        parent: The module that holds it (the block), or None.
        args: Positional arguments ``module`` was last called with.
        parent_args: Positional arguments ``parent`` was last called with (empty if never).
        attn_shape: The map's shape (B', h, Nq, Nk).
        last_grid: The token grid of the last placed attention (for CaiT's class attention).
    """
    from ..backbones.cvt import ConvAttention
    from ..backbones.levit import LeViTAttention
    from ..backbones.pvt import SpatialReductionAttention
    from ..backbones.vit import ViTAttention

    n_q, n_k = attn_shape[-2], attn_shape[-1]
    if isinstance(module, WindowAttention):
        if not parent_args or parent_args[0].ndim != 4:
            return f'{type(module).__name__} outside a block with a (B, H, W, C) map'
        H, W = parent_args[0].shape[1], parent_args[0].shape[2]
        ws = module.window_size
        if getattr(parent, 'shuffle', False):
            return _windows((H, W), ws, shuffle=True, kind='shuffled window')
        if getattr(parent, 'shifted', False):  # Swin: shift only along axes longer than one window
            shift = (ws // 2 if H > ws else 0, ws // 2 if W > ws else 0)
            return _windows((H, W), ws, shift, kind='shifted window' if any(shift) else 'window')
        return _windows((H, W), ws)
    if isinstance(module, SpatialReductionAttention):
        return _spatial_reduction(module, tuple(args[1]), n_q, n_k)
    if isinstance(module, ConvAttention):
        return _conv_projection(module, tuple(args[1]), n_q, n_k)
    if isinstance(module, LeViTAttention):
        return _shrink(module, (args[0].shape[1], args[0].shape[2]), n_q, n_k)
    if isinstance(module, ViTAttention) and len(parent_args) >= 2 and _is_grid(parent_args[1]):
        grid = tuple(parent_args[1])
        ws = getattr(parent, 'window_size', 0)
        if ws:
            return _windows(grid, ws)
        return _global(grid, n_q, n_k)
    if type(module) is Attention and n_q == 1 and last_grid is not None \
            and n_k == 1 + last_grid[0] * last_grid[1]:  # CaiT class attention: cls query over cls + patches
        k = _with_prefix(grid_centres(*last_grid).reshape(-1, 2), 1)[None]
        q = torch.full((1, 1, 2), float('nan'), dtype=k.dtype)
        return Placement('class attention', last_grid, q, k, torch.zeros(1, 1, dtype=torch.bool), num_prefix=1)
    return (f'{type(module).__name__} ({n_q} queries, {n_k} keys) attends over tokens without a place in the image '
            '(or in a layout this tool does not know)')


class GeometryRecorder:
    """Record, for every attention module of ``model``, the arguments it and its block were last called with.

    Use as a context manager around a forward pass (hooks removed on exit); :meth:`place` then turns a captured
    map of that pass into its :class:`Placement`. Only shapes and small grid tuples are kept.
    """

    def __init__(self, model: nn.Module) -> None:
        named = dict(model.named_modules())
        self.modules = {name: m for name, m in named.items() if isinstance(m, Attention)}
        self.parents = {name: named.get(name.rsplit('.', 1)[0]) if '.' in name else None for name in self.modules}
        self.args: dict[int, tuple] = {}
        self.last_grid: Optional[tuple[int, int]] = None
        self._handles: list[Any] = []

    def _hook(self, module: nn.Module, args: tuple) -> None:
        self.args[id(module)] = tuple(_light(a) for a in args)

    def __enter__(self) -> 'GeometryRecorder':
        seen = set()
        for name, module in self.modules.items():
            for m in (module, self.parents[name]):
                if m is not None and id(m) not in seen:
                    seen.add(id(m))
                    self._handles.append(m.register_forward_pre_hook(self._hook))
        return self

    def __exit__(self, *exc: Any) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def place(self, name: str, attn_shape: tuple[int, ...]) -> Union[Placement, str]:
        """Placement of the map ``name`` just produced (or why there is none)."""
        module, parent = self.modules[name], self.parents[name]
        where = locate(module, parent, self.args.get(id(module), ()),
                       self.args.get(id(parent), ()) if parent is not None else (), attn_shape, self.last_grid)
        if isinstance(where, Placement) and where.kind != 'class attention':
            self.last_grid = where.grid
        return where


class _Shape:
    """Stands in for a recorded tensor argument: its shape and ndim only (no reference to the data)."""

    def __init__(self, t: Tensor) -> None:
        self.shape = tuple(t.shape)
        self.ndim = t.ndim


def _light(value: Any) -> Any:
    if isinstance(value, Tensor):
        return _Shape(value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, (int, Tensor)) for v in value):
        return tuple(int(v) for v in value)  # a grid (h, w)
    return None


@torch.no_grad()
def calibrate_strides(model: nn.Module, in_channels: int = 3, size: int = 448) -> dict[str, tuple[float, float]]:
    """Pixel stride (sy, sx) of the token grid every attention module works on, from one forward pass.

    ``size`` (448) is a multiple of every stride of the families here (4 ... 64, 14, 16, 28), so ``size / grid``
    is the exact stride even where grids round up at other input sizes.
    """
    from ..layers import capture_attention

    strides: dict[str, tuple[float, float]] = {}
    recorder = GeometryRecorder(model)

    def callback(name: str, module: nn.Module, attn: Tensor) -> None:
        where = recorder.place(name, tuple(attn.shape))
        if isinstance(where, Placement) and name not in strides:
            strides[name] = (size / where.grid[0], size / where.grid[1])

    param = next(model.parameters())
    with recorder, capture_attention(model, callback):
        model(torch.zeros(1, in_channels, size, size, device=param.device, dtype=param.dtype))
    return strides
