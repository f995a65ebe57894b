"""ViT-Adapter: a plain ViT plus a convolutional spatial prior and cross-attention adapters for dense prediction.

Paper: Chen et al., "Vision Transformer Adapter for Dense Predictions", ICLR 2023, arXiv:2205.08534.
Reference code: czczup/ViT-Adapter (``detection/mmdet_custom/models/backbones/{vit_adapter.py,
adapter_modules.py, base/vit.py}``, the same modules again under ``segmentation/mmseg_custom``, and
``detection/ops/modules/ms_deform_attn.py``); the deformable sampling itself is Zhu et al., "Deformable DETR",
ICLR 2021, arXiv:2010.04159, run here through mmcv's ``MultiScaleDeformableAttention`` kernels.

What the official model computes, and this code with it:

* **Deformable attention** (``MSDeformAttn``): ``sampling_offsets`` and ``attention_weights`` are linear maps of
  the query; the weights are a softmax over ``levels * points`` per head; sampling locations are
  ``reference + offset / (W_l, H_l)``; values (``value_proj`` to ``int(dim * deform_ratio)`` channels, split
  over the heads) are sampled bilinearly with zero padding and ``align_corners=False`` (``grid_sample`` at
  ``2 * loc - 1``), weighted, summed, and mapped back by ``output_proj``. No residual and no dropout inside (mmcv's
  module adds both; the adapters add their own residual). The sampling runs in float32 (float64 stays float64)
  also under autocast (the official CUDA function is ``custom_fwd(cast_inputs=torch.float32)``). Init:
  ``sampling_offsets`` weight 0 and bias the ring of head directions ``(cos, sin) / max(|cos|, |sin|)`` times
  ``point + 1``; ``attention_weights`` 0/0; ``value_proj`` and ``output_proj`` Xavier-uniform with zero bias.
* **Reference points and shapes** (``deform_inputs``) for an image of ``(H, W)``, a multiple of 32: the injector's
  queries are the ViT tokens at ``(H/16, W/16)``, its values the spatial-prior tokens at 1/8, 1/16 and 1/32 (level
  start indices ``0, N8, N8 + N16``); the extractor's queries are those spatial-prior tokens (one reference point
  per token, concatenated over the three levels), its single value level the ViT tokens. Reference points are cell
  centres ``((j + 0.5) / w, (i + 0.5) / h)``, shared by every level of the value.
* **Spatial prior module** (``spm``): ``conv3x3/2 -> BN -> ReLU``, twice ``conv3x3/1 -> BN -> ReLU``,
  ``maxpool 3/2 p1`` (1/4, ``inplanes``); then ``conv3x3/2 -> BN -> ReLU`` to 1/8 (``2 * inplanes``), 1/16 and 1/32
  (``4 * inplanes``); every conv without bias, padding 1; ``fc1..fc4`` are 1x1 convs with bias to ``embed_dim``.
  The 1/4 map stays NCHW; 1/8, 1/16, 1/32 become tokens and get ``level_embed[0..2]`` added.
* **ConvFFN**: ``fc1 -> DWConv -> GELU -> dropout -> fc2 -> dropout``, hidden ``int(dim * cffn_ratio)``; the
  depth-wise 3x3 conv (bias, padding 1) runs on each of the three levels separately (the official ``DWConv`` splits
  the concatenated tokens 16:4:1).
* **Injector**: ``x + gamma * attn(LN(x), LN(c))`` with ``gamma`` initialised to ``init_values`` (0 by default).
* **Extractor**: ``c + attn(LN(c), LN(x))``, then ``c + drop_path(ConvFFN(LN(c)))``; the last interaction has
  two extra extractors (``use_extra_extractor``). Every extractor gets the same drop-path rate: the backbone's
  ``drop_path_rate`` itself, not a per-depth rate.
* **Interaction** i: injector, then the ViT blocks of ``interaction_indexes[i]``, then the extractor(s).
* **Backbone**: the ViT (patch 16, LayerNorm eps 1e-6, LayerScale ``gamma1/2`` initialised to 1 by default) runs
  without a cls token and without a final norm; its position embedding drops the checkpoint's cls row and is resized
  to the token grid at every forward (bicubic, ``align_corners=False``, no antialias). After the interactions
  ``c1 = up(c2) + c1`` (``ConvTranspose2d`` k2 s2 with bias); with ``add_vit_feature`` the ViT map is added to
  each level, bilinearly resized by 4, 2, 1, 0.5 (``align_corners=False``): the mmdet copy adds the map after
  the last interaction everywhere, the mmseg copy the map after interaction i to level i (``vit_feature``). Each
  level then goes through its own BatchNorm (``norm1..norm4``).
* Every LayerNorm of the adapter has ``eps=1e-6``. Random init of the adapter (``up``, ``spm``, ``interactions``):
  linear weights truncated normal std 0.02 with zero bias, LayerNorm/BatchNorm 1/0, convolutions and the transposed
  conv normal with std ``sqrt(2 / fan_out)`` (``fan_out = k * k * out_channels / groups``) and zero bias; then the
  deformable attention init above and ``level_embed ~ N(0, 1)``.

The official code hard-codes ``SyncBatchNorm`` in the spatial prior and the output norms; here both are
``norm_cfg`` (mmcv ``build_norm_layer``, default ``dict(type='BN')``), so a config picks ``SyncBN`` for multi-GPU
training and the model still runs on a CPU or one GPU.
"""
import math
import re
from functools import partial
from typing import Any, Callable, NamedTuple, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmcv.ops.multi_scale_deform_attn import (
    MultiScaleDeformableAttention,
    MultiScaleDeformableAttnFunction,
    multi_scale_deformable_attn_pytorch,
)
from mmengine.logging import print_log
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.checkpoint import checkpoint

from ..converters import vit_adapter as _vit_adapter_layouts  # noqa: F401  (registers the 'vit_adapter' layouts)
from ..converters.common import Converted, drop_keys
from ..converters.registry import convert_to_ours, get_family
from ..layers import DropPath, nchw_to_nhwc, nchw_to_nlc, nlc_to_nchw
from ..registry import MODELS
from .base import BaseBackbone, check_int, parse_out_indices
from .vit import VisionTransformer

__all__ = ['ViTAdapter']

#: The LayerNorm of every adapter module.
ADAPTER_LN_EPS = 1e-6


# ---- pure helpers -----------------------------------------------------------------------------------------
class DeformInputs(NamedTuple):
    """What a deformable attention needs besides its query and value tokens.

    Attributes:
        reference_points: (1, Lq, 1, 2) normalised (x, y) of every query, shared by all value levels.
        shapes: The (h, w) of each value level, as ints (sizes stay symbolic under tracing and compilation).
    """

    reference_points: Tensor
    shapes: tuple[tuple[int, int], ...]


def shape_tensors(shapes: Sequence[tuple[int, int]], device: torch.device) -> tuple[Tensor, Tensor]:
    """The official ``spatial_shapes`` (L, 2) and ``level_start_index`` (L,) long tensors of level grids."""
    spatial_shapes = torch.as_tensor(shapes, dtype=torch.long, device=device)
    sizes = spatial_shapes.prod(1)
    return spatial_shapes, torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]])


def cell_centres(shapes: Sequence[tuple[int, int]], device: torch.device) -> Tensor:
    """Normalised centres ``((j + 0.5) / w, (i + 0.5) / h)`` of every cell of each grid, row-major, concatenated.

    Returns:
        (1, sum(h * w), 1, 2) reference points.
    """
    points = []
    for h, w in shapes:
        ys = (torch.arange(h, dtype=torch.float32, device=device) + 0.5) / h
        xs = (torch.arange(w, dtype=torch.float32, device=device) + 0.5) / w
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing='ij')
        points.append(torch.stack([grid_x.reshape(-1), grid_y.reshape(-1)], dim=-1))  # (h, w) -> (h * w, 2)
    return torch.cat(points)[None, :, None]  # (N, 2) -> (1, N, 1, 2)


def adapter_level_shapes(h: int, w: int) -> tuple[tuple[int, int], ...]:
    """The spatial-prior token grids at 1/8, 1/16 and 1/32 of an ``(h, w)`` image (a multiple of 32)."""
    return (h // 8, w // 8), (h // 16, w // 16), (h // 32, w // 32)


def deform_inputs(h: int, w: int, device: torch.device) -> tuple[DeformInputs, DeformInputs]:
    """Injector and extractor inputs for an ``(h, w)`` image whose sides are multiples of 32.

    Returns:
        The injector's (ViT tokens at 1/16 query the three spatial-prior levels) and the extractor's (the
        spatial-prior tokens query the single 1/16 ViT level).
    """
    levels, vit = adapter_level_shapes(h, w), ((h // 16, w // 16),)
    return DeformInputs(cell_centres(vit, device), levels), DeformInputs(cell_centres(levels, device), vit)


def _maybe_checkpoint(enabled: bool, fn: Callable[..., Tensor], *args: Tensor) -> Tensor:
    """``fn(*args)``, recomputed in backward (non-reentrant) when ``enabled`` and gradients are on."""
    if enabled and torch.is_grad_enabled():
        return checkpoint(fn, *args, use_reentrant=False)
    return fn(*args)


# ---- blocks -----------------------------------------------------------------------------------------------
class MSDeformAttn(MultiScaleDeformableAttention):
    """Multi-scale deformable attention with ViT-Adapter's value ratio, batch first, without residual.

    mmcv's module with the official parameter names and shapes (``sampling_offsets``, ``attention_weights``,
    ``value_proj`` to ``int(dim * ratio)``, ``output_proj`` back) and the official init (mmcv's
    ``init_weights``); the forward returns ``output_proj(sampled)`` only. Sampling uses mmcv's CUDA kernel for
    CUDA tensors and its ``grid_sample`` path otherwise, in float32 at least.

    Args:
        dim: Query and value channels.
        num_heads: Attention heads.
        num_levels: Value levels.
        num_points: Sampling points per head and level.
        ratio: Value channels as a share of ``dim`` (``deform_ratio``).
    """

    def __init__(self, dim: int, num_heads: int = 6, num_levels: int = 1, num_points: int = 4,
                 ratio: float = 1.0) -> None:
        value_dim = int(dim * ratio)
        if value_dim < num_heads or value_dim % num_heads:
            raise ValueError(f'deform_ratio={ratio} gives int({dim} * {ratio}) = {value_dim} value channels, which '
                             f'deform_num_heads={num_heads} does not divide')
        super().__init__(embed_dims=dim, num_heads=num_heads, num_levels=num_levels, num_points=num_points,
                         im2col_step=64, dropout=0.0, batch_first=True, value_proj_ratio=ratio)
        del self.dropout  # mmcv's dropout on the residual path; this module has no residual
        self.ratio = ratio

    def forward(self, query: Tensor, reference_points: Tensor, value: Tensor,  # type: ignore[override]
                shapes: Sequence[tuple[int, int]]) -> Tensor:
        """Attend from (B, Lq, C) queries to (B, Lv, C) values on the level grids ``shapes``; returns (B, Lq, C).

        ``reference_points`` is (B or 1, Lq, L or 1, 2), normalised (x, y).
        """
        B, Lq, _ = query.shape
        Lv = value.shape[1]
        heads, levels, points = self.num_heads, self.num_levels, self.num_points
        value = self.value_proj(value).view(B, Lv, heads, self.value_proj.out_features // heads)  # -> (B, Lv, M, D)
        offsets = self.sampling_offsets(query).view(B, Lq, heads, levels, points, 2)  # (B, Lq, M*L*P*2) -> (.., 2)
        weights = self.attention_weights(query).view(B, Lq, heads, levels * points)  # (B, Lq, M*L*P) -> (.., L*P)
        weights = weights.softmax(-1).view(B, Lq, heads, levels, points)  # (B, Lq, M, L*P) -> (B, Lq, M, L, P)
        # reference + offset / (w, h) per level; written with the ints so that sizes stay symbolic
        offsets = torch.stack([torch.cat([offsets[:, :, :, i, :, :1] / w, offsets[:, :, :, i, :, 1:] / h], -1)
                               for i, (h, w) in enumerate(shapes)], dim=3)
        locations = reference_points[:, :, None, :, None, :] + offsets  # (B, Lq, heads, L, P, 2)
        out_dtype, dtype = value.dtype, torch.promote_types(value.dtype, torch.float32)  # half -> float32
        with torch.autocast(device_type=value.device.type, enabled=False):
            value, locations, weights = value.to(dtype), locations.to(dtype), weights.to(dtype)
            if value.is_cuda:
                out = MultiScaleDeformableAttnFunction.apply(value, *shape_tensors(shapes, value.device), locations,
                                                             weights, self.im2col_step)
            else:
                out = multi_scale_deformable_attn_pytorch(value, shapes, locations, weights)
        return self.output_proj(out.to(out_dtype))  # (B, Lq, C') -> (B, Lq, C)


class SpatialPriorModule(nn.Module):
    """Convolutional stem giving the spatial prior at 1/4, 1/8, 1/16 and 1/32, projected to ``embed_dim``.

    Args:
        in_channels: Image channels.
        inplanes: Stem width (1/4); 1/8 has twice, 1/16 and 1/32 four times as many channels.
        embed_dim: Output channels of every level.
        norm_cfg: mmcv norm config of the stem's BatchNorms.
    """

    def __init__(self, in_channels: int = 3, inplanes: int = 64, embed_dim: int = 384,
                 norm_cfg: Optional[dict] = None) -> None:
        super().__init__()
        norm_cfg = norm_cfg or dict(type='BN')

        def conv_norm_relu(cin: int, cout: int, stride: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), build_norm_layer(norm_cfg, cout)[1],
                    nn.ReLU(inplace=True)]

        # Sequential indices are the official checkpoint keys (stem.0 conv, stem.1 norm, ..., stem.9 max-pool).
        self.stem = nn.Sequential(*conv_norm_relu(in_channels, inplanes, 2), *conv_norm_relu(inplanes, inplanes, 1),
                                  *conv_norm_relu(inplanes, inplanes, 1), nn.MaxPool2d(3, 2, 1))
        self.conv2 = nn.Sequential(*conv_norm_relu(inplanes, 2 * inplanes, 2))
        self.conv3 = nn.Sequential(*conv_norm_relu(2 * inplanes, 4 * inplanes, 2))
        self.conv4 = nn.Sequential(*conv_norm_relu(4 * inplanes, 4 * inplanes, 2))
        self.fc1 = nn.Conv2d(inplanes, embed_dim, 1)
        self.fc2 = nn.Conv2d(2 * inplanes, embed_dim, 1)
        self.fc3 = nn.Conv2d(4 * inplanes, embed_dim, 1)
        self.fc4 = nn.Conv2d(4 * inplanes, embed_dim, 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(B, C, H, W) -> the (B, D, H/4, W/4) map and (B, N_l, D) tokens at 1/8, 1/16, 1/32."""
        c1 = self.stem(x)
        c2 = self.conv2(c1)
        c3 = self.conv3(c2)
        c4 = self.conv4(c3)
        # (B, D, h, w) -> (B, h * w, D)
        return self.fc1(c1), nchw_to_nlc(self.fc2(c2)), nchw_to_nlc(self.fc3(c3)), nchw_to_nlc(self.fc4(c4))


class DWConv(nn.Module):
    """Depth-wise 3x3 conv (with bias) applied to each level of concatenated multi-level tokens.

    Args:
        dim: Channels.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)

    def forward(self, x: Tensor, shapes: Sequence[tuple[int, int]]) -> Tensor:
        """(B, sum(h * w), C) tokens of the grids ``shapes`` -> the same shape."""
        levels = x.split([h * w for h, w in shapes], dim=1)
        # (B, h * w, C) -> (B, C, h, w) -> conv -> (B, h * w, C)
        return torch.cat([nchw_to_nlc(self.dwconv(nlc_to_nchw(t, hw))) for t, hw in zip(levels, shapes)], dim=1)


class ConvFFN(nn.Module):
    """``fc1 -> DWConv -> GELU -> dropout -> fc2 -> dropout`` over multi-level tokens.

    Args:
        dim: Input and output channels.
        hidden_dim: Hidden channels.
        drop: Dropout rate.
    """

    def __init__(self, dim: int, hidden_dim: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.dwconv = DWConv(hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor, shapes: Sequence[tuple[int, int]]) -> Tensor:
        """(B, sum(h * w), C) tokens of the grids ``shapes`` -> the same shape."""
        x = self.drop(self.act(self.dwconv(self.fc1(x), shapes)))
        return self.drop(self.fc2(x))


class Injector(nn.Module):
    """Spatial prior -> ViT: ``x + gamma * attn(LN(x), LN(c))`` over the three prior levels.

    Args:
        dim, num_heads, num_points, deform_ratio, init_values, with_cp: As :class:`InteractionBlock`.
        num_levels: Levels of the spatial prior.
    """

    def __init__(self, dim: int, num_heads: int = 6, num_points: int = 4, num_levels: int = 3,
                 deform_ratio: float = 1.0, init_values: float = 0.0, with_cp: bool = False) -> None:
        super().__init__()
        self.with_cp = with_cp
        self.init_values = init_values
        self.query_norm = nn.LayerNorm(dim, eps=ADAPTER_LN_EPS)
        self.feat_norm = nn.LayerNorm(dim, eps=ADAPTER_LN_EPS)
        self.attn = MSDeformAttn(dim, num_heads, num_levels, num_points, deform_ratio)
        self.gamma = nn.Parameter(torch.full((dim,), float(init_values)))

    def forward(self, x: Tensor, c: Tensor, inputs: DeformInputs) -> Tensor:
        """Update the (B, N, C) ViT tokens ``x`` from the (B, N8 + N16 + N32, C) prior tokens ``c``."""
        def inject(x: Tensor, c: Tensor) -> Tensor:
            return x + self.gamma * self.attn(self.query_norm(x), inputs.reference_points, self.feat_norm(c),
                                              inputs.shapes)

        return _maybe_checkpoint(self.with_cp, inject, x, c)


class Extractor(nn.Module):
    """ViT -> spatial prior: ``c + attn(LN(c), LN(x))``, then ``c + drop_path(ConvFFN(LN(c)))``.

    Args:
        dim, num_heads, num_points, deform_ratio, with_cffn, cffn_ratio, drop, drop_path, with_cp: As
            :class:`InteractionBlock`.
        num_levels: Levels of the ViT features (1).
    """

    def __init__(self, dim: int, num_heads: int = 6, num_points: int = 4, num_levels: int = 1,
                 deform_ratio: float = 1.0, with_cffn: bool = True, cffn_ratio: float = 0.25, drop: float = 0.0,
                 drop_path: float = 0.0, with_cp: bool = False) -> None:
        super().__init__()
        self.with_cp = with_cp
        self.query_norm = nn.LayerNorm(dim, eps=ADAPTER_LN_EPS)
        self.feat_norm = nn.LayerNorm(dim, eps=ADAPTER_LN_EPS)
        self.attn = MSDeformAttn(dim, num_heads, num_levels, num_points, deform_ratio)
        self.with_cffn = with_cffn
        if with_cffn:
            self.ffn = ConvFFN(dim, int(dim * cffn_ratio), drop)
            self.ffn_norm = nn.LayerNorm(dim, eps=ADAPTER_LN_EPS)
            self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, c: Tensor, x: Tensor, inputs: DeformInputs, shapes: Sequence[tuple[int, int]]) -> Tensor:
        """Update the (B, N8 + N16 + N32, C) prior tokens ``c`` on the grids ``shapes`` from the ViT tokens ``x``."""
        def extract(c: Tensor, x: Tensor) -> Tensor:
            c = c + self.attn(self.query_norm(c), inputs.reference_points, self.feat_norm(x), inputs.shapes)
            if self.with_cffn:
                c = c + self.drop_path(self.ffn(self.ffn_norm(c), shapes))
            return c

        return _maybe_checkpoint(self.with_cp, extract, c, x)


class InteractionBlock(nn.Module):
    """Injector, a slice of ViT blocks (run by the caller's function), extractor and optional extra extractors.

    Args:
        dim: Channels.
        num_heads: Deformable attention heads.
        num_points: Sampling points per head and level.
        init_values: Initial injector ``gamma``.
        deform_ratio: Value channels of the deformable attentions as a share of ``dim``.
        with_cffn: Extractors add a ConvFFN.
        cffn_ratio: ConvFFN hidden channels as a share of ``dim``.
        drop: ConvFFN dropout.
        drop_path: Stochastic depth of the extractors' ConvFFN branches.
        extra_extractor: Two more extractors after the first (the last interaction of the official model).
        with_cp: Non-reentrant activation checkpointing of the injector and extractors.
    """

    def __init__(self, dim: int, num_heads: int = 6, num_points: int = 4, init_values: float = 0.0,
                 deform_ratio: float = 1.0, with_cffn: bool = True, cffn_ratio: float = 0.25, drop: float = 0.0,
                 drop_path: float = 0.0, extra_extractor: bool = False, with_cp: bool = False) -> None:
        super().__init__()
        self.injector = Injector(dim, num_heads, num_points, 3, deform_ratio, init_values, with_cp)

        def extractor() -> Extractor:
            return Extractor(dim, num_heads, num_points, 1, deform_ratio, with_cffn, cffn_ratio, drop, drop_path,
                             with_cp)

        self.extractor = extractor()
        self.extra_extractors = nn.ModuleList([extractor(), extractor()]) if extra_extractor else None

    def forward(self, x: Tensor, c: Tensor, blocks: Callable[[Tensor], Tensor], inject_inputs: DeformInputs,
                extract_inputs: DeformInputs, shapes: Sequence[tuple[int, int]]) -> tuple[Tensor, Tensor]:
        """One interaction: (B, N, C) ViT tokens ``x`` and (B, N8 + N16 + N32, C) prior tokens ``c`` -> both updated.

        ``blocks`` runs this interaction's ViT blocks on the injected tokens; ``shapes`` are the prior's grids.
        """
        x = blocks(self.injector(x, c, inject_inputs))
        extractors = [self.extractor, *(self.extra_extractors or [])]
        for extractor in extractors:
            c = extractor(c, x, extract_inputs, shapes)
        return x, c


def init_adapter_weights(module: nn.Module) -> None:
    """The official random init of one adapter module (see the module docstring); use with ``Module.apply``."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.LayerNorm, _BatchNorm)):
        if module.weight is not None:
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        # ConvTranspose2d stores (in, out / groups, k, k); the official fan-out uses its out_channels all the same
        fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels // module.groups
        nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan_out))
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, Injector):
        nn.init.constant_(module.gamma, module.init_values)
    if isinstance(module, MSDeformAttn):  # after its Linear children (``apply`` visits children first)
        module.init_weights()


def check_interaction_indexes(indexes: Optional[Sequence[Sequence[int]]], depth: int) -> list[tuple[int, int]]:
    """``[first, last]`` block of each interaction, contiguous and covering all blocks; None: four equal groups
    (the official presets: ``[[0, 2], [3, 5], [6, 8], [9, 11]]`` for 12 blocks, ``[[0, 5], ..., [18, 23]]`` for 24)."""
    if indexes is None:
        if depth % 4:
            raise ValueError(f'interaction_indexes must be given for a depth of {depth} (not a multiple of 4)')
        return [(i * depth // 4, (i + 1) * depth // 4 - 1) for i in range(4)]
    groups = [tuple(g) if isinstance(g, (list, tuple)) else () for g in indexes]
    valid = bool(groups) and all(len(g) == 2 and all(type(i) is int for i in g) and g[0] <= g[1] for g in groups)
    if not valid or [g[0] for g in groups] != [0] + [g[1] + 1 for g in groups[:-1]] or groups[-1][1] != depth - 1:
        raise ValueError(f'interaction_indexes must split blocks 0..{depth - 1} into contiguous [first, last] groups '
                         f'in order, got {indexes!r}')
    return groups  # type: ignore[return-value]


@MODELS.register_module()
class ViTAdapter(VisionTransformer):
    """ViT-Adapter: our :class:`VisionTransformer` (token-free, no final norm) plus the adapter, four NCHW maps at
    strides 4, 8, 16, 32, all ``embed_dim`` wide.

    Official settings (``arch``, ``deform_num_heads``, ``deform_ratio``; ``interaction_indexes`` four equal groups):
    ViT-Adapter-T ``'tiny'``, 6, 1.0; -S ``'small'``, 6, 1.0; -B ``'base'``, 12, 0.5; -L ``'large'``, 16, 0.5; every
    official config also has ``cffn_ratio=0.25``, ``n_points=4``, ``conv_inplane=64``, ``init_values=0``.

    Any input size: the image is zero-padded at the bottom/right to a multiple of 32 (as mmdet/mmseg data
    preprocessors pad), the official model runs on it, and each output is cropped to ``ceil(H / stride)``; at
    sides that are multiples of 32 the outputs are the official ones.

    Args:
        arch: ViT preset (``'tiny'`` ... ``'huge'``) or a dict, as :class:`VisionTransformer`.
        in_channels: Input image channels.
        pretrain_img_size: Image size the position embedding was learned at (official ``pretrain_size``).
        qkv_bias, patch_bias, drop_rate, attn_drop_rate, use_rel_pos, fused_attn: As :class:`VisionTransformer`.
        layer_scale_init_value: ViT LayerScale initial value; 0: none (official ``gamma1/2`` are then folded into the
            projections on load); ``1.0`` is the official ``layer_scale=True``.
        drop_path_rate: Stochastic depth of the ViT blocks (linear from 0) and of every extractor's ConvFFN branch
            (this rate itself, as the official model does).
        window_size, window_block_indexes: Windowed ViT blocks (official ``window_attn`` / ``window_size``).
        window_pad: ``'qkv'`` zero-pads q, k and v to whole windows after the projection (the official windowed
            attention); ``'tokens'`` pads the normalised tokens before it, as ViTDet does. They agree where the
            windows tile the token grid.
        interaction_indexes: ``[first, last]`` ViT block of each interaction; None: four equal groups.
        conv_inplane: Width of the spatial prior's stem.
        n_points: Deformable sampling points per head and level.
        deform_num_heads: Heads of the deformable attentions.
        init_values: Initial value of the injectors' ``gamma``.
        with_cffn: Extractors add a ConvFFN.
        cffn_ratio: ConvFFN hidden channels as a share of ``embed_dim``.
        deform_ratio: Value channels of the deformable attentions as a share of ``embed_dim``.
        add_vit_feature: Add the ViT's (resized) token map to each level.
        vit_feature: ``'last'``: the map after the last interaction, to every level (official mmdet model);
            ``'interactions'``: the map after interaction i to level i (official mmseg model; four interactions).
        use_extra_extractor: Two extra extractors in the last interaction.
        norm_cfg: mmcv norm config of the spatial prior and the output norms (official: ``dict(type='SyncBN')``).
        out_indices: Pyramid levels to output (0: stride 4, ..., 3: stride 32); all four are always computed.
        frozen_stages: -1 nothing, 0 the patch and position embeddings, k also ViT blocks 0..k-1; the adapter trains.
        norm_eval: Keep the BatchNorms (spatial prior, output norms) in eval mode while training.
        with_cp: Non-reentrant activation checkpointing of every ViT block, injector and extractor.
        init_cfg: e.g. ``dict(type='Pretrained', checkpoint=PATH)``: an official ViT-Adapter checkpoint, one of ours,
            or a plain ViT one (timm, DeiT, mmseg) for the ViT part.
        cls_output: ``'avg_featmap'``: the stride-32 level averaged over space (see
            :class:`~vit_backbones.backbones.base.BaseBackbone`); it needs level 3 in ``out_indices``.
    """

    checkpoint_family = 'vit_adapter'
    cls_outputs = ('avg_featmap',)
    #: Every convolution that reads the image (both are adapted to other ``in_channels`` on load).
    stem_conv_keys = ('patch_embed.proj.weight', 'spm.stem.0.weight')
    #: Strides of the four pyramid levels.
    level_strides = (4, 8, 16, 32)

    def __init__(self, arch: Union[str, dict] = 'base', in_channels: int = 3,
                 pretrain_img_size: Union[int, Sequence[int]] = 224, qkv_bias: bool = True, patch_bias: bool = True,
                 layer_scale_init_value: float = 0.0, drop_rate: float = 0.0, attn_drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0, window_size: int = 0, window_block_indexes: Sequence[int] = (),
                 window_pad: str = 'qkv', use_rel_pos: bool = False,
                 interaction_indexes: Optional[Sequence[Sequence[int]]] = None, conv_inplane: int = 64,
                 n_points: int = 4, deform_num_heads: int = 6, init_values: float = 0.0,
                 with_cffn: bool = True, cffn_ratio: float = 0.25, deform_ratio: float = 1.0,
                 add_vit_feature: bool = True, vit_feature: str = 'last', use_extra_extractor: bool = True,
                 norm_cfg: Optional[dict] = None, out_indices: Union[int, Sequence[int]] = (0, 1, 2, 3),
                 frozen_stages: int = -1, norm_eval: bool = False, with_cp: bool = False,
                 fused_attn: Optional[bool] = None, init_cfg: Union[dict, list, None] = None,
                 cls_output: Optional[str] = None) -> None:
        levels = parse_out_indices(out_indices, len(self.level_strides))
        for name, value in (('conv_inplane', conv_inplane), ('n_points', n_points),
                            ('deform_num_heads', deform_num_heads)):
            check_int(name, value)
        for name, value in (('cffn_ratio', cffn_ratio), ('deform_ratio', deform_ratio)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
                raise ValueError(f'{name} must be a positive number, got {value!r}')
        if isinstance(init_values, bool) or not isinstance(init_values, (int, float)) or init_values < 0:
            raise ValueError(f'init_values must be a number >= 0, got {init_values!r}')
        if vit_feature not in ('last', 'interactions'):
            raise ValueError(f"vit_feature must be 'last' or 'interactions', got {vit_feature!r}")
        super().__init__(arch, 16, in_channels, pretrain_img_size, distilled=False, with_cls_token=False,
                         use_abs_pos=True, qkv_bias=qkv_bias, patch_bias=patch_bias,
                         layer_scale_init_value=layer_scale_init_value, drop_rate=drop_rate,
                         attn_drop_rate=attn_drop_rate, drop_path_rate=drop_path_rate, window_size=window_size,
                         window_block_indexes=window_block_indexes, window_pad=window_pad, use_rel_pos=use_rel_pos,
                         final_norm=False, interpolate_mode='bicubic', interpolate_antialias=False, out_indices=-1,
                         frozen_stages=frozen_stages, norm_eval=norm_eval, with_cp=with_cp, fused_attn=fused_attn,
                         init_cfg=init_cfg, cls_output=cls_output)
        dim = self.embed_dim
        if dim % deform_num_heads or int(dim * deform_ratio) % deform_num_heads or int(dim * deform_ratio) < 1:
            raise ValueError(f'deform_num_heads={deform_num_heads} must divide embed_dim={dim} and its '
                             f'int({dim} * deform_ratio={deform_ratio}) value channels')
        if with_cffn and int(dim * cffn_ratio) < 1:
            raise ValueError(f'cffn_ratio={cffn_ratio} leaves the ConvFFN no hidden channels at embed_dim={dim}')
        self.interaction_indexes = check_interaction_indexes(interaction_indexes, len(self.blocks))
        if add_vit_feature and vit_feature == 'interactions' and len(self.interaction_indexes) != 4:
            raise ValueError(f"vit_feature='interactions' adds the map of interaction i to level i and needs four "
                             f'interactions, got interaction_indexes={self.interaction_indexes}')
        self.num_stages = len(self.level_strides)
        self.out_indices = levels
        if cls_output is not None and self.num_stages - 1 not in levels:
            raise ValueError(f'cls_output={cls_output!r} reads the last level ({self.num_stages - 1}); add it to '
                             f'out_indices, got {levels}')
        self.add_vit_feature = add_vit_feature
        self.vit_feature = vit_feature
        norm_cfg = norm_cfg or dict(type='BN')

        self.level_embed = nn.Parameter(torch.zeros(3, dim))
        self.spm = SpatialPriorModule(in_channels, conv_inplane, dim, norm_cfg)
        last = len(self.interaction_indexes) - 1
        self.interactions = nn.ModuleList([
            InteractionBlock(dim, deform_num_heads, n_points, init_values, deform_ratio, with_cffn, cffn_ratio,
                             drop_path=drop_path_rate, extra_extractor=use_extra_extractor and i == last,
                             with_cp=with_cp)
            for i in range(len(self.interaction_indexes))])
        self.up = nn.ConvTranspose2d(dim, dim, 2, 2)
        # the official names of the four output norms (strides 4, 8, 16, 32)
        self.norm1 = build_norm_layer(norm_cfg, dim)[1]
        self.norm2 = build_norm_layer(norm_cfg, dim)[1]
        self.norm3 = build_norm_layer(norm_cfg, dim)[1]
        self.norm4 = build_norm_layer(norm_cfg, dim)[1]
        self.out_channels = tuple(dim for _ in levels)
        self.out_strides = tuple(self.level_strides[i] for i in levels)

    # ---- structure ------------------------------------------------------------------------------------
    @BaseBackbone.with_cp.setter  # type: ignore[attr-defined]
    def with_cp(self, value: bool) -> None:
        """Checkpoint the ViT blocks (as every backbone) and the injectors and extractors."""
        BaseBackbone.with_cp.fset(self, value)  # type: ignore[attr-defined]
        for module in self._modules['interactions'].modules() if 'interactions' in self._modules else ():
            if isinstance(module, (Injector, Extractor)):
                module.with_cp = bool(value)

    def random_init(self) -> None:
        """The ViT as :class:`VisionTransformer` (the official ViT is always loaded from a checkpoint); the adapter
        as the official model: see the module docstring."""
        super().random_init()
        for part in (self.up, self.spm, self.interactions):
            part.apply(init_adapter_weights)
        nn.init.normal_(self.level_embed)

    def own_init_parameters(self) -> list[str]:
        """Parameters whose random init is their own, not the package-wide rule (trunc-normal linear weights, zero
        biases): the deformable attentions' (zero offset and attention weights, the ring of offset biases, Xavier
        projections) and the injectors' ``gamma`` (``init_values``, 0 by default)."""
        return [name for name, _ in self.named_parameters()
                if re.search(r'\.attn\.(sampling_offsets|attention_weights|value_proj|output_proj)\.|\.gamma$', name)
                and name.startswith('interactions.')]

    # ---- loading --------------------------------------------------------------------------------------
    def convert_state_dict(self, state_dict: dict[str, Any], own: dict[str, Tensor],
                           version: Optional[int] = None) -> Converted:
        """A ViT-Adapter checkpoint (official or ours), or a plain ViT checkpoint (any layout of the ``vit``
        family: timm, DeiT, mmseg) for the ViT part, whose adapter (and LayerScale) keep their current weights."""
        if get_family(self.checkpoint_family).detect(state_dict) is not None \
                or get_family('vit').detect(state_dict) is None:
            return super().convert_state_dict(state_dict, own, version)
        plain = convert_to_ours(state_dict, 'vit')
        dropped = dict(plain.dropped)
        sd = drop_keys(plain.state_dict, [(r'^(cls_token|dist_token)$', 'ViT-Adapter runs its ViT without tokens'),
                                          (r'^norm\.', 'ViT-Adapter has no final ViT norm')], dropped)
        sd = self._adapt_stem(self.adapt_state_dict(sd, own), own)
        kept = [k for k in own if k not in sd and not re.match(r'(patch_embed|pos_embed|blocks\.\d+\.(?!ls[12]\.))', k)]
        sd.update({k: own[k] for k in kept})
        print_log(f'{type(self).__name__}: a plain ViT checkpoint ({plain.source} layout) initialises the ViT; the '
                  f'adapter and LayerScale keep their current weights ({len(kept)} tensors)', logger='current')
        return Converted(sd, f'vit/{plain.source}', dropped)

    def adapt_state_dict(self, state_dict: dict[str, Any], own: dict[str, Tensor]) -> dict[str, Any]:
        """The ViT's position-embedding resize; LayerScale folded into the projections when this model has none;
        both image convolutions are adapted to ``in_channels`` by the base class."""
        sd = dict(super().adapt_state_dict(state_dict, own))
        for key in [k for k in sd if re.match(r'blocks\.\d+\.ls[12]\.gamma$', k) and k not in own]:
            block, branch = key.split('.ls')[0], key.split('.ls')[1][0]
            proj = f'{block}.attn.proj' if branch == '1' else f'{block}.mlp.fc2'
            gamma = sd.pop(key)
            sd[f'{proj}.weight'] = sd[f'{proj}.weight'] * gamma[:, None]  # gamma * (W x + b) = (gamma W) x + gamma b
            sd[f'{proj}.bias'] = sd[f'{proj}.bias'] * gamma
        return sd

    # ---- forward --------------------------------------------------------------------------------------
    def _run_blocks(self, x: Tensor, first: int, last: int, hw: tuple[int, int]) -> Tensor:
        for block in self.blocks[first:last + 1]:
            x = block(x, hw)
        return x

    def forward_pyramid(self, x: Tensor) -> list[Tensor]:
        """The official forward on images whose sides are multiples of 32: four NCHW maps (before the norms)."""
        H, W = x.shape[-2:]
        inject, extract = deform_inputs(H, W, x.device)
        shapes = adapter_level_shapes(H, W)
        c1, c2, c3, c4 = self.spm(x)
        c = torch.cat([c2 + self.level_embed[0], c3 + self.level_embed[1], c4 + self.level_embed[2]], dim=1)
        tokens, hw = self.embed(x)
        vit_maps = []
        for interaction, (first, last) in zip(self.interactions, self.interaction_indexes):
            run_blocks = partial(self._run_blocks, first=first, last=last, hw=hw)
            tokens, c = interaction(tokens, c, run_blocks, inject, extract, shapes)
            vit_maps.append(tokens)
        sizes = [h * w for h, w in shapes]
        # (B, N_l, C) -> (B, C, h_l, w_l) for the 1/8, 1/16, 1/32 levels
        c2, c3, c4 = (nlc_to_nchw(t, s) for t, s in zip(c.split(sizes, dim=1), shapes))
        c1 = self.up(c2) + c1
        maps = [c1, c2, c3, c4]
        if self.add_vit_feature:
            picked = vit_maps if self.vit_feature == 'interactions' else vit_maps[-1:] * 4
            for i, (scale, t) in enumerate(zip((4.0, 2.0, 1.0, 0.5), picked)):
                vit = nlc_to_nchw(t, hw)  # (B, N, C) -> (B, C, H/16, W/16)
                if scale != 1.0:
                    vit = F.interpolate(vit, scale_factor=scale, mode='bilinear', align_corners=False)
                maps[i] = maps[i] + vit
        return maps

    def forward_features(self, x: Tensor) -> dict[int, Tensor]:
        """The normalised NHWC map of each level in ``out_indices``, cropped to ``ceil(H / stride)``."""
        H, W = x.shape[-2:]
        x = F.pad(x, (0, (W + 31) // 32 * 32 - W, 0, (H + 31) // 32 * 32 - H))  # always (possibly by 0): traceable
        maps = self.forward_pyramid(x)
        norms = [self.norm1, self.norm2, self.norm3, self.norm4]
        feats = {}
        for i in self.out_indices:
            s = self.level_strides[i]
            feat = norms[i](maps[i])[:, :, :(H + s - 1) // s, :(W + s - 1) // s]
            feats[i] = nchw_to_nhwc(feat)  # (B, C, h, w) -> (B, h, w, C)
        return feats

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        """One (B, embed_dim, ceil(H / s), ceil(W / s)) map per ``out_indices`` level (stride s), then the
        ``cls_output`` feature."""
        self.check_input(x)
        return self.append_cls_output(self.format_outputs(self.forward_features(x)))
