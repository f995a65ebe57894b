"""Multi-head attention shared by every family: one fused/math switch, additive bias and mask, math-path hooks.

The fused path runs ``F.scaled_dot_product_attention``; the math path spells out ``softmax(q k^T * scale + bias)
v``. Which one runs is decided per call by :func:`fused_attn_enabled`: a module's own ``fused_attn`` (set by a
backbone's ``fused_attn=`` argument) wins, otherwise the package-wide default from :func:`set_fused_attn`, which
initially picks by device, CPU ISA and attention size (the faster path differs between CPUs and between windowed
and global attention: see :func:`fused_attn_enabled`). Hooks that only exist on the math path force it: talking
heads (CaiT: head mixing before and after the softmax) and re-attention (DeepViT: a learned head-mixing of the
softmaxed map, then BatchNorm).

:func:`capture_attention` records the per-head attention maps of every attention module in a model without
changing its outputs (the maps are recomputed beside the fused path), for the analysis tools; with a callback the
maps are streamed to it one call at a time instead of kept.

References:
    Vaswani et al., "Attention Is All You Need", NeurIPS 2017, arXiv:1706.03762.
    Touvron et al., "Going deeper with Image Transformers" (CaiT, talking heads), arXiv:2103.17239.
    Zhou et al., "DeepViT: Towards Deeper Vision Transformer" (re-attention), arXiv:2103.11886.
"""
from contextlib import contextmanager
from typing import Callable, Iterator, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _cpu_has_avx512() -> bool:
    return torch.backends.cpu.get_cpu_capability().startswith('AVX512')


_CPU_AVX512 = _cpu_has_avx512()
SHORT_ATTENTION = 64 * 64  # query x key lengths up to this are "short" (windows of up to 8 x 8 tokens)
QKV_LAYOUTS = ('qkv', 'q_kv', 'q_k_v')
_FUSED_DEFAULT: Optional[bool] = None  # None: by device, CPU ISA and attention size (see fused_attn_enabled)


def set_fused_attn(enable: Optional[bool]) -> None:
    """Set the package-wide default: ``F.scaled_dot_product_attention`` (True), the math path (False) or the
    faster one where it runs (None, the initial setting; see :func:`fused_attn_enabled`).

    Modules whose ``fused_attn`` is not None (a backbone built with ``fused_attn=True/False``) keep their own choice.
    """
    global _FUSED_DEFAULT
    _FUSED_DEFAULT = None if enable is None else bool(enable)


def fused_attn_enabled(override: Optional[bool] = None, device: Optional[torch.device] = None,
                       size: Optional[int] = None) -> bool:
    """The fused/math choice for a module whose own setting is ``override`` (None follows the package default).

    With the default left at None the choice follows measurements (batch 1, fp32, 2 threads; ``tools/benchmark.py``
    times ``ours`` against the other path on any machine): GPUs and AVX-512 CPUs run fused SDPA; CPUs without
    AVX-512 run the math path for short attention (``size``, query x key length, at most :data:`SHORT_ATTENTION`:
    windows) and fused SDPA otherwise. On a 2-core AVX2 EPYC: Swin-T (49 x 49 windows) math 121 / fused 135 ms at
    224 and 526 / 543 at 512; ViT-B/16 (197 and 1025 tokens) fused 305 / math 326 ms and 1693 / 2377; PVTv2-b2
    (3136 queries x 49 reduced keys) fused 164 / math 178 ms.

    Args:
        override: The module's own setting.
        device: Where the attention runs (None: a CPU).
        size: Query length times key length (None: long).
    """
    if override is not None:
        return override
    if _FUSED_DEFAULT is not None:
        return _FUSED_DEFAULT
    if (device is not None and device.type != 'cpu') or _CPU_AVX512:
        return True
    return size is None or size > SHORT_ATTENTION


class Attention(nn.Module):
    """Multi-head attention with input/output projections, timm's key names.

    ``forward(x)`` is self-attention; families with other key/value sources (spatial reduction, class attention)
    call :meth:`project` with their own ``kv_input`` and :meth:`attend` / :meth:`out` around it.

    Args:
        dim: Token channels (input and output).
        num_heads: Attention heads; ``dim`` must be divisible by it.
        qkv_bias: Bias in the q/k/v projections.
        attn_drop: Dropout on the attention weights (training only).
        proj_drop: Dropout after the output projection.
        qkv_layout: ``'qkv'`` one ``qkv`` linear (ViT, Swin), ``'q_kv'`` separate ``q`` and ``kv`` (PVT),
            ``'q_k_v'`` three linears ``q``, ``k``, ``v`` (CaiT class attention).
        talking_heads: Learned head mixing ``proj_l`` before and ``proj_w`` after the softmax (math path).
        re_attention: DeepViT re-attention: ``reatten_matrix`` (1x1 conv over heads) on the softmaxed map, then
            ``var_norm`` (BatchNorm over heads), scaled by ``reatten_scale`` (math path).
        reatten_scale: Factor after the re-attention norm.
        fused_attn: Per-module override of the package default (None: follow :func:`set_fused_attn`).
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, attn_drop: float = 0.0,
                 proj_drop: float = 0.0, qkv_layout: str = 'qkv', talking_heads: bool = False,
                 re_attention: bool = False, reatten_scale: float = 1.0, fused_attn: Optional[bool] = None) -> None:
        super().__init__()
        if num_heads < 1 or dim % num_heads:
            raise ValueError(f'num_heads must be a positive divisor of the width {dim}, got {num_heads}')
        if qkv_layout not in QKV_LAYOUTS:
            raise ValueError(f'qkv_layout must be one of {QKV_LAYOUTS}, got {qkv_layout!r}')
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.qkv_layout = qkv_layout
        self.fused_attn = fused_attn
        if qkv_layout == 'qkv':
            self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        else:
            self.q = nn.Linear(dim, dim, bias=qkv_bias)
            if qkv_layout == 'q_kv':
                self.kv = nn.Linear(dim, dim * 2, bias=qkv_bias)
            else:
                self.k = nn.Linear(dim, dim, bias=qkv_bias)
                self.v = nn.Linear(dim, dim, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.talking_heads = talking_heads
        if talking_heads:
            self.proj_l = nn.Linear(num_heads, num_heads)
            self.proj_w = nn.Linear(num_heads, num_heads)
        self.re_attention = re_attention
        self.reatten_scale = reatten_scale
        if re_attention:
            self.reatten_matrix = nn.Conv2d(num_heads, num_heads, 1)
            self.var_norm = nn.BatchNorm2d(num_heads)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self._capture: Optional[Callable[[Tensor], None]] = None  # set by capture_attention only

    # ---- pieces -------------------------------------------------------------------------------------
    def _heads(self, x: Tensor) -> Tensor:
        """(B, N, C) -> (B, h, N, d)."""
        B, N, _ = x.shape
        return x.reshape(B, N, self.num_heads, self.head_dim).transpose(1, 2)  # (B, N, h, d) -> (B, h, N, d)

    def project(self, x: Tensor, kv_input: Optional[Tensor] = None) -> tuple[Tensor, Tensor, Tensor]:
        """Queries from ``x`` (B, N, C), keys/values from ``kv_input`` (B, M, C; default ``x``): each (B, h, *, d)."""
        if self.qkv_layout == 'qkv':
            if kv_input is not None:
                raise ValueError("qkv_layout 'qkv' projects q, k and v from one input; use 'q_kv' or 'q_k_v'")
            B, N, _ = x.shape
            # (B, N, 3C) -> (B, N, 3, h, d) -> (3, B, h, N, d)
            qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
            q, k, v = qkv.unbind(0)
            return q, k, v
        source = x if kv_input is None else kv_input
        q = self._heads(self.q(x))
        if self.qkv_layout == 'q_kv':
            B, M, _ = source.shape
            # (B, M, 2C) -> (B, M, 2, h, d) -> (2, B, h, M, d)
            kv = self.kv(source).reshape(B, M, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
            k, v = kv.unbind(0)
            return q, k, v
        return q, self._heads(self.k(source)), self._heads(self.v(source))

    def _math_path_only(self) -> bool:
        return self.talking_heads or self.re_attention

    def _attention_map(self, q: Tensor, k: Tensor, attn_mask: Optional[Tensor], tile: Optional[int] = None,
                       drop: float = 0.0) -> Tensor:
        """Softmaxed attention weights (B, h, N, M) with the math-path hooks, before dropout; with re-attention,
        ``drop`` is applied to the softmaxed weights before they are mixed (DeepViT's order, training only)."""
        attn = (q * self.scale) @ k.transpose(-2, -1)  # (B, h, N, M)
        if self.talking_heads:
            attn = self.proj_l(attn.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)  # mix heads: (B, N, M, h) -> (B, h, N, M)
        if attn_mask is not None and tile is not None:  # broadcast over the repeats instead of materialising them
            B, h, N, M = attn.shape
            attn = (attn.view(B // tile, tile, h, N, M) + attn_mask).view(B, h, N, M)  # (B/t, t, h, N, M) -> back
        elif attn_mask is not None:
            attn = attn + attn_mask
        attn = attn.softmax(dim=-1)
        if self.talking_heads:
            attn = self.proj_w(attn.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)  # (B, h, N, M) -> (B, N, M, h) -> back
        if self.re_attention:
            if drop:
                attn = F.dropout(attn, drop, self.training)
            attn = self.var_norm(self.reatten_matrix(attn)) * self.reatten_scale
        return attn

    def attend(self, q: Tensor, k: Tensor, v: Tensor, bias: Optional[Tensor] = None,
               mask: Optional[Tensor] = None, tile: Optional[int] = None) -> Tensor:
        """Scaled dot-product attention over heads.

        Args:
            q: Queries (B, h, N, d).
            k: Keys (B, h, M, d).
            v: Values (B, h, M, d).
            bias: Additive float bias broadcastable to (B, h, N, M), e.g. a relative-position bias (h, N, M).
            mask: Additive float mask (0 keep, large negative drop) or boolean mask (True keep), broadcastable to
                (B, h, N, M).
            tile: The combined bias/mask is (t, h, N, M) and repeats every ``t`` batch entries (B = images x t:
                per-window masks of windowed attention); the math path broadcasts it instead of repeating it.

        Returns:
            (B, h, N, d).
        """
        attn_mask = bias
        if mask is not None:
            if mask.dtype == torch.bool:
                mask = torch.zeros(mask.shape, dtype=q.dtype, device=q.device).masked_fill(~mask, float('-inf'))
            attn_mask = mask if attn_mask is None else attn_mask + mask
        if attn_mask is not None:
            attn_mask = attn_mask.to(q.dtype)
        drop = self.attn_drop if self.training else 0.0
        if fused_attn_enabled(self.fused_attn, q.device, q.shape[-2] * k.shape[-2]) and not self._math_path_only():
            full = attn_mask
            if attn_mask is not None and tile is not None:  # the kernels want one 4-D mask: (t, h, N, M) -> (B, ...)
                B, h, N, M = q.shape[0], q.shape[1], q.shape[2], k.shape[2]
                full = attn_mask.unsqueeze(0).expand(B // tile, tile, h, N, M).reshape(B, h, N, M)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=full, dropout_p=drop, scale=self.scale)
            if self._capture is not None:
                self._capture(self._attention_map(q, k, attn_mask, tile).detach())
            return out
        attn = self._attention_map(q, k, attn_mask, tile, drop)
        if self._capture is not None:
            self._capture(attn.detach())
        return (attn if self.re_attention else F.dropout(attn, drop, self.training)) @ v

    def out(self, x: Tensor) -> Tensor:
        """Merge heads and project: (B, h, N, d) -> (B, N, C)."""
        B, _, N, _ = x.shape
        x = x.transpose(1, 2)  # (B, h, N, d) -> (B, N, h, d)
        if torch.compiler.is_exporting():  # the fused kernel's output layout differs from its decomposition's:
            x = x.clone(memory_format=torch.contiguous_format)  # a real copy keeps torch.export's view valid
        x = x.reshape(B, N, self.num_heads * self.head_dim)  # (B, N, h, d) -> (B, N, C)
        return self.proj_drop(self.proj(x))

    def forward(self, x: Tensor, bias: Optional[Tensor] = None, mask: Optional[Tensor] = None) -> Tensor:
        """Self-attention over tokens (B, N, C) -> (B, N, C); ``bias``/``mask`` as in :meth:`attend`."""
        q, k, v = self.project(x)
        return self.out(self.attend(q, k, v, bias, mask))

    def extra_repr(self) -> str:
        return (f'num_heads={self.num_heads}, qkv_layout={self.qkv_layout!r}, fused_attn={self.fused_attn}'
                f'{", talking_heads" if self.talking_heads else ""}{", re_attention" if self.re_attention else ""}')


@contextmanager
def capture_attention(model: nn.Module, callback: Optional[Callable[[str, 'Attention', Tensor], None]] = None
                      ) -> Iterator[dict[str, list[Tensor]]]:
    """Record the attention maps of every :class:`Attention` in ``model`` while the context is open.

    Yields a dict from module name to the list of maps it produced, one (B', h, N, M) tensor per call (windowed
    attention gives B' = batch x windows). Outputs are unchanged: on the fused path the maps are computed beside
    it. Maps are detached, and exclude attention dropout. They are the weights that mix the values: after
    talking heads' second mixing and after re-attention (whose maps are therefore not row-stochastic).

    Args:
        model: Any module; every :class:`Attention` inside it (subclasses included) is recorded.
        callback: Instead of keeping the maps, call ``callback(name, module, attn)`` with each one as it is
            computed (the yielded dict then stays empty): a caller that reduces every map at once and drops it
            keeps memory bounded on large inputs.

    Example:
        >>> with capture_attention(backbone) as maps:
        ...     backbone(images)
        >>> maps['layers.0.blocks.0.attn'][0].shape
    """
    modules = {name: m for name, m in model.named_modules() if isinstance(m, Attention)}
    maps: dict[str, list[Tensor]] = {name: [] for name in modules}
    previous = {name: m._capture for name, m in modules.items()}
    for name, module in modules.items():
        if callback is None:
            module._capture = maps[name].append
        else:
            module._capture = (lambda attn, name=name, module=module: callback(name, module, attn))
    try:
        yield maps
    finally:
        for name, module in modules.items():
            module._capture = previous[name]
