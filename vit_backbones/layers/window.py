"""Window partitioning, cyclic shifts, shifted-window masks and relative-position indices for windowed attention.

Everything here is branch-free in the input size: sizes may be symbolic (``torch.compile`` with dynamic shapes,
``torch.export``, ONNX tracing) and the recorded graph stays right for every size. A shift may be a Python int or
a 0-d integer tensor (:func:`window_shift` gives tensors); a shift of 0 is the identity and gives an all-zero mask.

Besides the tensor-level functions (pad, roll, partition, reverse), :func:`window_index` gives the same windows as
row indices: one ``index_select`` takes a projected (B, H, W, 3C) map straight to per-window, per-head q/k/v
(padding, shift and partition in one memory pass, the projection run on real tokens only) and one takes the
attention output straight back to the unpadded, unshifted (B, H, W, C) map.

Two ways of grouping a padded (B, Hp, Wp, C) map into windows: regular windows of neighbouring tokens
(:func:`window_partition`) and the spatial shuffle of the Shuffle Transformer (:func:`shuffle_partition`), whose
window (i, j) gathers the tokens ``nh = Hp / ws`` rows and ``nw = Wp / ws`` columns apart starting at (i, j).

References:
    Liu et al., "Swin Transformer", ICCV 2021, arXiv:2103.14030.
    Huang et al., "Shuffle Transformer: Rethinking Spatial Shuffle for Vision Transformer", arXiv:2106.03650.
"""
from typing import Any, Callable, Hashable, NamedTuple, Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor

Shift = Union[int, Tensor]


def window_grid(size: int, window_size: int) -> int:
    """Windows along an axis of ``size`` tokens: ``ceil(size / window_size)``."""
    return (size + window_size - 1) // window_size


def pad_to_windows(x: Tensor, window_size: int) -> Tensor:
    """Zero-pad (B, H, W, C) at the bottom/right to (B, nh * ws, nw * ws, C), always (possibly by 0)."""
    H, W = x.shape[1], x.shape[2]
    nh, nw = window_grid(H, window_size), window_grid(W, window_size)
    return F.pad(x, (0, 0, 0, nw * window_size - W, 0, nh * window_size - H))


def window_partition(x: Tensor, window_size: int) -> Tensor:
    """Split (B, H, W, C) into windows of shape (B, nW, window_size**2, C); H and W divisible by the window."""
    B, H, W, C = x.shape
    ws = window_size
    nh, nw = H // ws, W // ws
    # (B, H, W, C) -> (B, H/ws, ws, W/ws, ws, C) -> (B, H/ws, W/ws, ws, ws, C) -> (B, nW, ws*ws, C)
    x = x.reshape(B, nh, ws, nw, ws, C)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(B, nh * nw, ws * ws, C)


def window_reverse(windows: Tensor, window_size: int, nh: int, nw: int) -> Tensor:
    """Inverse of :func:`window_partition` for ``nh x nw`` windows: (B, nW, window_size**2, C) -> (B, H, W, C)."""
    B, C = windows.shape[0], windows.shape[-1]
    ws = window_size
    # (B, nW, ws*ws, C) -> (B, nh, nw, ws, ws, C) -> (B, nh, ws, nw, ws, C) -> (B, nh*ws, nw*ws, C)
    x = windows.reshape(B, nh, nw, ws, ws, C)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(B, nh * ws, nw * ws, C)


def shuffle_partition(x: Tensor, window_size: int) -> Tensor:
    """Spatially shuffled windows of (B, H, W, C), H and W divisible by the window: (B, nW, window_size**2, C).

    Row ``r = a * nh + i`` (``a < ws``, ``i < nh = H / ws``) goes to window row ``i`` at in-window row ``a``, and
    likewise for columns: window (i, j) holds the strided grid ``(i + a * nh, j + b * nw)``, its tokens in (a, b)
    row-major order and the windows in (i, j) row-major order, as the official ``(ws1 hh) (ws2 ww)`` rearrange.
    """
    B, H, W, C = x.shape
    ws = window_size
    nh, nw = H // ws, W // ws
    # (B, H, W, C) -> (B, ws[a], nh[i], ws[b], nw[j], C) -> (B, i, j, a, b, C) -> (B, nW, ws*ws, C)
    x = x.reshape(B, ws, nh, ws, nw, C)
    return x.permute(0, 2, 4, 1, 3, 5).reshape(B, nh * nw, ws * ws, C)


def shuffle_reverse(windows: Tensor, window_size: int, nh: int, nw: int) -> Tensor:
    """Inverse of :func:`shuffle_partition` for ``nh x nw`` windows: (B, nW, window_size**2, C) -> (B, H, W, C)."""
    B, C = windows.shape[0], windows.shape[-1]
    ws = window_size
    # (B, nW, ws*ws, C) -> (B, nh[i], nw[j], ws[a], ws[b], C) -> (B, a, i, b, j, C) -> (B, ws*nh, ws*nw, C)
    x = windows.reshape(B, nh, nw, ws, ws, C)
    return x.permute(0, 3, 1, 4, 2, 5).reshape(B, ws * nh, ws * nw, C)


def padded_key_mask(height: int, width: int, window_size: int, shuffle: bool, device: torch.device,
                    dtype: torch.dtype) -> Tensor:
    """Additive mask that hides the zero padding of a (height, width) map from windowed attention: (nW, 1, N).

    The map is padded at the bottom/right to whole windows (:func:`pad_to_windows`) and grouped regularly or
    shuffled; padded keys get ``-inf``, real keys 0 (every window holds at least one real token, so no row is
    all ``-inf``). Without padding the mask is all zeros. Broadcasts over heads and queries.
    """
    nh, nw = window_grid(height, window_size), window_grid(width, window_size)
    rows = torch.arange(nh * window_size, device=device) < height
    cols = torch.arange(nw * window_size, device=device) < width
    valid = (rows[:, None] & cols[None, :])[None, :, :, None]  # (1, Hp, Wp, 1)
    group = shuffle_partition if shuffle else window_partition
    valid = group(valid, window_size)[0, :, :, 0]  # (1, Hp, Wp, 1) -> (nW, N)
    mask = torch.zeros(valid.shape, device=device, dtype=dtype).masked_fill(~valid, float('-inf'))
    return mask[:, None, :]  # (nW, 1, N)


def _rolled_index(size: int, shift: Shift, device: torch.device) -> Tensor:
    """Source index of each position after rolling a length-``size`` axis by ``-shift`` (``torch.roll`` semantics)."""
    index = torch.arange(size, device=device) + shift
    return torch.where(index >= size, index - size, index)


def cyclic_shift(x: Tensor, shift: tuple[Shift, Shift], reverse: bool = False) -> Tensor:
    """Roll (B, H, W, C) by ``-shift`` along H and W (``reverse``: by ``+shift``), as ``torch.roll`` would.

    Written as index selects so that a symbolic shift stays in the graph.
    """
    H, W = x.shape[1], x.shape[2]
    sh, sw = (H - shift[0], W - shift[1]) if reverse else shift
    x = x.index_select(1, _rolled_index(H, sh, x.device))
    return x.index_select(2, _rolled_index(W, sw, x.device))


def window_shift(size: int, window_size: int, device: torch.device) -> Tensor:
    """Shift of one axis for shifted-window blocks: ``window_size // 2``, or 0 where the map fits one window.

    Returned as a 0-d tensor computed by tensor ops, so the decision stays in traced and compiled graphs instead
    of becoming a guard on the size.
    """
    fits = (torch.arange(size, device=device) >= window_size).any()  # True iff size > window_size
    return fits.long() * (window_size // 2)


def relative_position_index(window_size: int) -> Tensor:
    """Index into a ((2ws-1)**2, heads) bias table for every (query, key) pair of a window: (ws*ws, ws*ws)."""
    coords = torch.stack(torch.meshgrid(torch.arange(window_size), torch.arange(window_size),
                                        indexing='ij')).flatten(1)  # (2, N)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)  # (2, N, N) -> (N, N, 2)
    rel = rel + (window_size - 1)
    return rel[..., 0] * (2 * window_size - 1) + rel[..., 1]


def _shift_regions(size: int, window_size: int, shift: Shift, device: torch.device) -> Tensor:
    """Region id (0, 1 or 2) of each position along one axis after a cyclic shift by ``shift`` (0: all 0)."""
    pos = torch.arange(size, device=device)
    start = size - window_size * (shift > 0)  # region 1 starts at the last window, or nowhere without a shift
    return (pos >= start).long() + (pos >= size - shift).long()


def shifted_window_mask(height: int, width: int, window_size: int, shift: tuple[Shift, Shift],
                        device: torch.device, dtype: torch.dtype) -> Tensor:
    """Additive attention mask for shifted windows on a padded (height, width) grid: (nW, N, N).

    Tokens that the cyclic shift brought together from different image regions get -100 (as in the
    reference implementation), all others 0.
    """
    ids = _shift_regions(height, window_size, shift[0], device)[:, None] * 3 \
        + _shift_regions(width, window_size, shift[1], device)[None, :]  # (H, W)
    ids = window_partition(ids[None, :, :, None], window_size)[0, :, :, 0]  # (1, H, W, 1) -> (nW, N)
    return (ids[:, :, None] != ids[:, None, :]).to(dtype) * -100.0  # (nW, N, N)


class WindowIndex(NamedTuple):
    """Row indices that move a projected map into windows and back (see :func:`window_index`).

    Attributes:
        qkv: (parts * B * nW * heads * N,) rows of the (B * H * W + 1, parts, heads, d) projection table (its last
            token the projection of a padding token), in (part, image, window, head, in-window token) order.
        out_head_major: (B * H * W * heads,) rows of a (B * nW, heads, N, d) attention output, in (image, row, column,
            head) order.
        out_token_major: The same rows of a (B * nW, N, heads, d) output (the layout of CPU flash attention).
        windows: Windows per image, nW.
    """

    qkv: Tensor
    out_head_major: Tensor
    out_token_major: Tensor
    windows: int


def window_slots(height: int, width: int, window_size: int, shift: tuple[Shift, Shift] = (0, 0),
                 shuffle: bool = False, device: Union[torch.device, str, None] = None) -> tuple[Tensor, Tensor]:
    """Where each token of a (height, width) map sits in windowed attention, and back.

    The map is zero-padded at the bottom/right to whole windows (:func:`pad_to_windows`), rolled by ``-shift``
    (:func:`cyclic_shift`) and grouped regularly (:func:`window_partition`) or shuffled (:func:`shuffle_partition`).

    Returns:
        ``source``: (nW * N,) for each window slot (windows row-major, tokens row-major inside a window) the row-major
        index of its token in the unpadded map, or ``height * width`` for a padding token; ``slot``: (height *
        width,) the slot of each real token.
    """
    ws = window_size
    nh, nw = window_grid(height, ws), window_grid(width, ws)
    hp, wp = nh * ws, nw * ws
    rows, cols = _rolled_index(hp, shift[0], device), _rolled_index(wp, shift[1], device)  # source of each position
    valid = (rows < height)[:, None] & (cols < width)[None, :]
    source = torch.where(valid, rows[:, None] * width + cols[None, :], height * width)  # (Hp, Wp)
    group = shuffle_partition if shuffle else window_partition
    position = group(torch.arange(hp * wp, device=device).view(1, hp, wp, 1), ws).reshape(-1)  # slot -> position
    source = source.reshape(-1)[position]  # (Hp * Wp,) -> (nW * N,)
    slot_of = torch.empty_like(position).scatter_(0, position, torch.arange(position.shape[0], device=device))
    # shifted position of each real token: rolled by +shift, as cyclic_shift's reverse
    rows, cols = _rolled_index(hp, hp - shift[0], device)[:height], _rolled_index(wp, wp - shift[1], device)[:width]
    slot = slot_of[(rows[:, None] * wp + cols[None, :]).reshape(-1)]  # (H, W) -> (H * W,)
    return source, slot


def window_index(height: int, width: int, window_size: int, batch: int, heads: int,
                 shift: tuple[Shift, Shift] = (0, 0), shuffle: bool = False, parts: int = 3,
                 device: Union[torch.device, str, None] = None) -> WindowIndex:
    """Gather indices for windowed attention on a batch of (height, width) maps (see :class:`WindowIndex`).

    Args:
        height: Map rows H.
        width: Map columns W.
        window_size: Window side; N = window_size ** 2 tokens per window.
        batch: Images B.
        heads: Attention heads.
        shift: Cyclic shift per axis (ints or 0-d tensors, see :func:`window_shift`).
        shuffle: Shuffled windows (:func:`shuffle_partition`) instead of regular ones.
        parts: Projections stacked per token (3: q, k, v).
        device: Where the indices live (the map's device).
    """
    n = window_size * window_size
    source, slot = window_slots(height, width, window_size, shift, shuffle, device)
    tokens = height * width
    windows = source.shape[0] // n
    images = torch.arange(batch, device=device)
    head = torch.arange(heads, device=device)
    source = source.view(1, windows, n)  # (nW * N,) -> (1, nW, N)
    token = torch.where(source == tokens, batch * tokens, source + images.view(-1, 1, 1) * tokens)  # (B, nW, N)
    part = torch.arange(parts, device=device).view(-1, 1, 1, 1, 1)
    # (1, B, nW, 1, N) token rows -> (parts, B, nW, heads, N) rows of head vectors
    qkv = ((token[None, :, :, None, :] * parts + part) * heads + head.view(1, 1, 1, -1, 1)).reshape(-1)
    window = images.view(-1, 1, 1) * windows + (slot // n).view(1, -1, 1)  # (B, HW, 1)
    offset = (slot % n).view(1, -1, 1)  # (1, HW, 1)
    head = head.view(1, 1, -1)
    out_head_major = ((window * heads + head) * n + offset).reshape(-1)  # (B, HW, heads) -> flat
    out_token_major = ((window * n + offset) * heads + head).reshape(-1)  # (B, HW, heads) -> flat
    return WindowIndex(qkv, out_head_major, out_token_major, windows)


def _tracing() -> bool:
    return (torch.compiler.is_compiling() or torch.compiler.is_exporting() or torch.jit.is_tracing()
            or torch.jit.is_scripting())


def _numel(value: Any) -> int:
    if isinstance(value, Tensor):
        return value.numel()
    if isinstance(value, (tuple, list)):
        return sum(_numel(v) for v in value)
    return 0


class LayoutCache:
    """The window layout (indices, masks) of the last map a stage saw, reused while the size stays the same.

    Rebuilding a layout is a few dozen small integer tensor ops (0.3 to 0.5 ms on a CPU), felt at batch 1 on small
    maps. Only eager calls use the cache: compiled, exported and traced graphs build the layout in the graph (so it
    follows symbolic sizes). Layouts of more than ``max_elements`` index entries are not kept (bounded memory;
    building them is cheap next to the attention they serve).

    Args:
        max_elements: Largest layout kept, in tensor elements.
    """

    def __init__(self, max_elements: int = 1 << 20) -> None:
        self.max_elements = max_elements
        self._key: Optional[Hashable] = None
        self._value: Any = None

    def get(self, key: Hashable, build: Callable[[], Any]) -> Any:
        """The cached layout for ``key`` (sizes, batch, device, dtype), or ``build()``, kept if small."""
        if _tracing():
            return build()
        key = (key, torch.is_inference_mode_enabled())  # inference tensors may not be saved for a later backward
        if key != self._key:
            value = build()
            small = _numel(value) <= self.max_elements
            self._key, self._value = (key, value) if small else (None, None)
            return value
        return self._value
