"""Plain Vision Transformer (ViT / DeiT) for dense prediction, with ViTDet's windowed and relative-position options.

Papers: Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021, arXiv:2010.11929 (ViT); Touvron et al.,
"Training data-efficient image transformers & distillation through attention", ICML 2021, arXiv:2012.12877
(DeiT); Li et al., "Exploring Plain Vision Transformer Backbones for Object Detection", ECCV 2022,
arXiv:2203.16527 (ViTDet); Kirillov et al., "Segment Anything", ICCV 2023, arXiv:2304.02643 (its image encoder is
a ViTDet ViT). Reference code: timm ``vision_transformer.py``, ``deit.py``, ``vision_transformer_sam.py``;
detectron2 ``modeling/backbone/vit.py``.

What the references compute, and this code with it:

* Patch embedding: a conv of kernel = stride = ``patch_size`` (with bias). Inputs whose sides are not multiples of
  the patch are zero-padded at the bottom/right first (timm floors them instead), so the grid is
  ``ceil(H / patch)``.
* Prefix tokens: a learned cls token and, for DeiT's distilled models, a distillation token, in that order.
* Absolute position embedding ``pos_embed`` of shape (1, P + h * w, C): one row per prefix token (timm's layout;
  none when ``with_cls_token=False``) and a grid learned at ``pretrain_img_size``. It is resized in 2-D to the
  input's grid at every forward (bicubic, antialiased when shrinking, in float32: timm's
  ``resample_abs_pos_embed``; ``interpolate_antialias=False`` gives mmseg's and detectron2's ``get_abs_pos``)
  and at load time to the model's pre-training grid; the prefix rows are kept as they are.
* Blocks: pre-norm ``x + ls1(attn(norm1(x)))``, ``x + ls2(mlp(norm2(x)))``; LayerNorm eps 1e-6; MLP
  ``fc1 -> GELU (exact) -> fc2`` with ratio 4; qkv with bias; optional LayerScale (``layer_scale_init_value``,
  parameters ``ls{1,2}.gamma``); stochastic depth rising linearly from 0 to ``drop_path_rate`` over the blocks.
* ViTDet / SAM options (detectron2's names): ``window_size`` with ``window_block_indexes`` (those blocks attend
  within non-overlapping windows; the normalised map is zero-padded at the bottom/right to whole windows, the
  padded tokens are attended to like any other (as both references do) and cropped after; ``window_pad='qkv'``
  zero-pads q, k, v after the projection instead, as the official ViT-Adapter); ``use_rel_pos``
  adds a decomposed relative-position bias from per-block tables ``attn.rel_pos_{h,w}`` sized
  ``2 * window - 1`` (windowed blocks) or ``2 * pretrain grid - 1`` (global blocks), linearly interpolated when
  the grid differs; ``with_cls_token=False`` is the token-free form.
* A final LayerNorm ``norm`` after the last block (``final_norm``; ViTDet and SAM have none).

Dense outputs: each block is a stage, so ``out_indices`` name blocks and every output is the stride-``patch``
NCHW map of that block's tokens (prefix tokens removed); the last block's map goes through ``norm``. With
``output_cls_token=True`` the prefix tokens of the last output follow the maps, each (B, C).
"""
import math
from typing import Any, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from ..converters import vit as _vit_layouts  # noqa: F401  (registers the 'vit' checkpoint layouts)
from ..converters.common import CheckpointMismatchError
from ..layers import (
    Attention,
    BackboneStage,
    DropPath,
    LayerScale,
    Mlp,
    PatchEmbed,
    decomposed_rel_pos_bias,
    get_act_layer,
    get_norm_layer,
    pad_to_windows,
    resample_abs_pos_embed,
    window_grid,
    window_partition,
    window_reverse,
)
from ..registry import MODELS
from .base import BaseBackbone, Freezable, check_heads_divide, check_int, check_rates, drop_path_rates, resolve_arch

__all__ = ['VisionTransformer']

ARCHS: dict[str, dict[str, Any]] = {
    'tiny': dict(embed_dim=192, depth=12, num_heads=3, mlp_ratio=4.0),
    'small': dict(embed_dim=384, depth=12, num_heads=6, mlp_ratio=4.0),
    'base': dict(embed_dim=768, depth=12, num_heads=12, mlp_ratio=4.0),
    'large': dict(embed_dim=1024, depth=24, num_heads=16, mlp_ratio=4.0),
    'huge': dict(embed_dim=1280, depth=32, num_heads=16, mlp_ratio=4.0),
}
ARCH_KEYS = ('embed_dim', 'depth', 'num_heads')
ARCH_OPTIONAL = ('mlp_ratio',)
WINDOW_PADS = ('tokens', 'qkv')


def to_2tuple(value: Union[int, Sequence[int]], name: str) -> tuple[int, int]:
    """``value`` as an (H, W) pair of positive ints; a ValueError names ``name`` otherwise."""
    pair = tuple(value) if isinstance(value, (list, tuple)) else (value, value)
    if len(pair) != 2:
        raise ValueError(f'{name} must be an int or an (H, W) pair, got {value!r}')
    for side in pair:
        check_int(name, side)
    return pair  # type: ignore[return-value]


class ViTAttention(Attention):
    """Multi-head self-attention over a token grid, with an optional decomposed relative-position bias.

    Args:
        dim: Token channels.
        num_heads: Attention heads.
        qkv_bias: Bias in the qkv projection.
        attn_drop: Dropout on attention weights.
        proj_drop: Dropout after the output projection.
        rel_pos_size: Grid (h, w) the relative tables are learned for; None: no relative positions.
        fused_attn: Per-module fused/math override.
        talking_heads: CaiT's talking-heads mixing around the softmax (``attn.proj_l`` / ``attn.proj_w``).
        re_attention: DeepViT's re-attention of the softmaxed map (``attn.reatten_matrix`` / ``attn.var_norm``).
        reatten_scale: Factor after the re-attention norm.
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, attn_drop: float = 0.0,
                 proj_drop: float = 0.0, rel_pos_size: Optional[tuple[int, int]] = None,
                 fused_attn: Optional[bool] = None, talking_heads: bool = False, re_attention: bool = False,
                 reatten_scale: float = 1.0) -> None:
        super().__init__(dim, num_heads, qkv_bias, attn_drop, proj_drop, talking_heads=talking_heads,
                         re_attention=re_attention, reatten_scale=reatten_scale, fused_attn=fused_attn)
        self.use_rel_pos = rel_pos_size is not None
        if rel_pos_size is not None:
            self.rel_pos_h = nn.Parameter(torch.zeros(2 * rel_pos_size[0] - 1, self.head_dim))
            self.rel_pos_w = nn.Parameter(torch.zeros(2 * rel_pos_size[1] - 1, self.head_dim))

    def forward(self, x: Tensor, hw: Optional[tuple[int, int]] = None) -> Tensor:  # type: ignore[override]
        """(B, N, C) -> (B, N, C); with relative positions the N tokens are the (h, w) grid ``hw``."""
        return self.attend_grid(*self.project(x), hw)

    def attend_grid(self, q: Tensor, k: Tensor, v: Tensor, hw: Optional[tuple[int, int]]) -> Tensor:
        """Projected (B, h, N, d) queries, keys and values over the grid ``hw`` -> (B, N, C), projected out."""
        bias = decomposed_rel_pos_bias(q, self.rel_pos_h, self.rel_pos_w, hw) if self.use_rel_pos else None
        return self.out(self.attend(q, k, v, bias))


class ViTBlock(BackboneStage):
    """A pre-norm transformer block; in this backbone each block is a stage of its own.

    Args:
        dim: Token channels.
        num_heads: Attention heads.
        mlp_ratio: MLP hidden width over ``dim``.
        qkv_bias: Bias in the qkv projection.
        drop: Dropout after the attention projection and in the MLP.
        attn_drop: Dropout on attention weights.
        drop_path: Stochastic depth of both residual branches.
        layer_scale: Initial LayerScale value; 0 disables LayerScale.
        window_size: Attend within windows of this side; 0 attends globally.
        rel_pos_size: Grid of the relative tables (the window, or the pre-training grid); None disables them.
        norm: Norm name for :func:`~vit_backbones.layers.get_norm_layer`.
        act: MLP activation name.
        fused_attn: Per-module fused/math override.
        window_pad: How a grid that windows do not tile is padded: ``'tokens'`` zero-pads the normalised tokens
            before the qkv projection (detectron2, SAM, timm), ``'qkv'`` zero-pads q, k and v after it (the
            official ViT-Adapter); the two agree where windows tile the grid.
        talking_heads: CaiT's talking-heads attention (learned head mixing before and after the softmax).
        re_attention: DeepViT's re-attention (learned head mixing and BatchNorm of the softmaxed map).
        reatten_scale: Factor after the re-attention norm.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True, drop: float = 0.0,
                 attn_drop: float = 0.0, drop_path: float = 0.0, layer_scale: float = 0.0, window_size: int = 0,
                 rel_pos_size: Optional[tuple[int, int]] = None, norm: str = 'ln_eps6', act: str = 'gelu',
                 fused_attn: Optional[bool] = None, window_pad: str = 'tokens', talking_heads: bool = False,
                 re_attention: bool = False, reatten_scale: float = 1.0) -> None:
        super().__init__()
        norm_layer = get_norm_layer(norm)
        self.window_size = window_size
        self.window_pad = window_pad
        self.norm1 = norm_layer(dim)
        self.attn = ViTAttention(dim, num_heads, qkv_bias, attn_drop, drop, rel_pos_size, fused_attn, talking_heads,
                                 re_attention=re_attention, reatten_scale=reatten_scale)
        self.ls1 = LayerScale(dim, layer_scale) if layer_scale else nn.Identity()
        self.drop_path1 = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=get_act_layer(act), drop=drop)
        self.ls2 = LayerScale(dim, layer_scale) if layer_scale else nn.Identity()
        self.drop_path2 = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def attention(self, x: Tensor, hw: tuple[int, int]) -> Tensor:
        """The attention branch on normalised tokens (B, P + h * w, C), windowed when ``window_size > 0``."""
        if not self.window_size:
            return self.attn(x, hw)
        B, _, C = x.shape
        H, W = hw
        ws = self.window_size
        nh, nw = window_grid(H, ws), window_grid(W, ws)

        def windows(t: Tensor) -> Tensor:
            """(B, N, C) grid tokens -> (B * nW, ws * ws, C) zero-padded windows."""
            # (B, N, C) -> (B, H, W, C) -> padded -> (B, nW, ws*ws, C) -> (B*nW, ws*ws, C)
            return window_partition(pad_to_windows(t.reshape(B, H, W, C), ws), ws).flatten(0, 1)

        if self.window_pad == 'qkv':
            # (B, h, N, d) -> (B, N, h, d) -> (B, N, C) -> windows -> (B*nW, ws*ws, C) -> (B*nW, h, ws*ws, d)
            q, k, v = (self.attn._heads(windows(t.transpose(1, 2).reshape(B, H * W, C))) for t in self.attn.project(x))
            out = self.attn.attend_grid(q, k, v, (ws, ws))  # (B*nW, ws*ws, C)
        else:
            out = self.attn(windows(x), (ws, ws))  # (B*nW, ws*ws, C)
        out = window_reverse(out.reshape(B, nh * nw, ws * ws, C), ws, nh, nw)  # -> (B, nh*ws, nw*ws, C)
        return out[:, :H, :W].reshape(B, H * W, C)  # crop the padding: (B, H, W, C) -> (B, N, C)

    def forward_tokens(self, x: Tensor, hw: tuple[int, int]) -> Tensor:
        """The block on (B, P + h * w, C) tokens whose last h * w lie on the grid ``hw``."""
        x = x + self.drop_path1(self.ls1(self.attention(self.norm1(x), hw)))
        return x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))

    def forward(self, x: Tensor, hw: tuple[int, int]) -> Tensor:
        """:meth:`forward_tokens`, under activation checkpointing when ``with_cp`` is set."""
        return self.run_block(self.forward_tokens, x, hw)


@MODELS.register_module()
class VisionTransformer(BaseBackbone):
    """Plain ViT / DeiT / ViTDet backbone: one stride-``patch_size`` NCHW map per block in ``out_indices``.

    Args:
        arch: ``'tiny'``, ``'small'``, ``'base'``, ``'large'``, ``'huge'`` (DeiT tiny/small/base are the same archs)
            or a dict with ``embed_dim``, ``depth``, ``num_heads`` and optionally ``mlp_ratio`` (4.0).
        patch_size: Patch side (16; 14 and 32 where checkpoints exist).
        in_channels: Input image channels.
        pretrain_img_size: Image size (int or (H, W)) the position embedding is learned for; its grid is
            ``pretrain_img_size // patch_size``.
        distilled: Add DeiT's distillation token after the cls token.
        with_cls_token: Use prefix tokens; False is the token-free ViTDet / SAM form.
        use_abs_pos: Learn an absolute position embedding (resized to every input).
        qkv_bias: Bias in the qkv projections.
        patch_bias: Bias in the patch embedding (timm: True; mmseg's default: False).
        layer_scale_init_value: Initial LayerScale value (e.g. 1e-5); 0 disables LayerScale.
        drop_rate: Dropout after the position embedding, the attention projections and in the MLPs.
        attn_drop_rate: Dropout on attention weights.
        drop_path_rate: Stochastic depth, rising linearly from 0 over the blocks.
        window_size: Window side of the blocks in ``window_block_indexes`` (needs ``with_cls_token=False``).
        window_block_indexes: Blocks that attend within windows; the others attend globally.
        window_pad: Padding of grids the windows do not tile: ``'tokens'`` zero-pads the normalised tokens before
            the qkv projection (detectron2 / SAM / timm), ``'qkv'`` zero-pads q, k, v after it (official ViT-Adapter).
        use_rel_pos: Decomposed relative-position bias in every block (needs ``with_cls_token=False``).
        final_norm: LayerNorm on the last block's output (timm's ``norm``).
        output_cls_token: Return the last output's prefix tokens after the maps, each (B, C).
        interpolate_mode: Interpolation of the position embedding to other grids.
        interpolate_antialias: Antialias when the embedding shrinks (timm: True; mmseg / detectron2: False).
        norm: Norm name (``'ln_eps6'``: LayerNorm eps 1e-6, timm's).
        act: MLP activation name.
        out_indices: Blocks to output (negative counts from the end); later blocks are not built.
        frozen_stages: -1 nothing, 0 the patch embedding, tokens and position embedding, k those and blocks
            0..k-1 (and ``norm`` when k covers the last block).
        norm_eval: Keep BatchNorm layers in eval mode (a ViT has none; kept for the contract).
        with_cp: Non-reentrant activation checkpointing of every block.
        fused_attn: ``F.scaled_dot_product_attention`` (True), the math path (False) or the package default (None).
        init_cfg: mmengine init config, e.g. ``dict(type='Pretrained', checkpoint=PATH)`` with a timm (ViT, DeiT,
            MAE, SAM), mmseg or our checkpoint.
        cls_output: ``'avg_featmap'``, or ``'cls_token'``: the final-normed cls token (B, C), with ``distilled``
            the pair (cls, distillation) that mmpretrain's ``DeiTClsHead`` reads (see
            :class:`~vit_backbones.backbones.base.BaseBackbone`).
    """

    checkpoint_family = 'vit'
    stages_attr = 'blocks'
    cls_outputs = ('avg_featmap', 'cls_token')

    def __init__(self, arch: Union[str, dict] = 'base', patch_size: int = 16, in_channels: int = 3,
                 pretrain_img_size: Union[int, Sequence[int]] = 224, distilled: bool = False,
                 with_cls_token: bool = True, use_abs_pos: bool = True, qkv_bias: bool = True, patch_bias: bool = True,
                 layer_scale_init_value: float = 0.0, drop_rate: float = 0.0, attn_drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0, window_size: int = 0, window_block_indexes: Sequence[int] = (),
                 window_pad: str = 'tokens', use_rel_pos: bool = False, final_norm: bool = True,
                 output_cls_token: bool = False, interpolate_mode: str = 'bicubic',
                 interpolate_antialias: bool = True, norm: str = 'ln_eps6', act: str = 'gelu',
                 out_indices: Union[int, Sequence[int]] = -1, frozen_stages: int = -1,
                 norm_eval: bool = False, with_cp: bool = False, fused_attn: Optional[bool] = None,
                 init_cfg: Union[dict, list, None] = None,
                 cls_output: Optional[str] = None) -> None:
        cfg = resolve_arch(arch, ARCHS, ARCH_KEYS, optional=ARCH_OPTIONAL)
        dim, depth, heads = (check_int(f"arch['{k}']", cfg[k]) for k in ARCH_KEYS)
        mlp_ratio = cfg.get('mlp_ratio', 4.0)
        if isinstance(mlp_ratio, bool) or not isinstance(mlp_ratio, (int, float)) or mlp_ratio <= 0:
            raise ValueError(f"arch['mlp_ratio'] must be a positive number, got {mlp_ratio!r}")
        check_heads_divide((dim,), (heads,), "arch['embed_dim']")
        check_int('patch_size', patch_size)
        grid = tuple(side // patch_size for side in to_2tuple(pretrain_img_size, 'pretrain_img_size'))
        if min(grid) < 1:
            raise ValueError(f'pretrain_img_size {pretrain_img_size!r} is smaller than patch_size {patch_size}')
        check_rates(drop_rate=drop_rate, attn_drop_rate=attn_drop_rate, drop_path_rate=drop_path_rate)
        if isinstance(layer_scale_init_value, bool) or not isinstance(layer_scale_init_value, (int, float)) \
                or layer_scale_init_value < 0:
            raise ValueError(f'layer_scale_init_value must be a number >= 0 (0: no LayerScale), '
                             f'got {layer_scale_init_value!r}')
        check_int('window_size', window_size, minimum=0)
        window_blocks = tuple(window_block_indexes)
        if any(isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < depth for i in window_blocks):
            raise ValueError(f'window_block_indexes must be block indices in [0, {depth - 1}], got {window_blocks!r}')
        if window_blocks and not window_size:
            raise ValueError(f'window_block_indexes {window_blocks} need window_size >= 1, got {window_size}')
        if window_pad not in WINDOW_PADS:
            raise ValueError(f'window_pad must be one of {WINDOW_PADS}, got {window_pad!r}')
        if distilled and not with_cls_token:
            raise ValueError('distilled=True adds a distillation token beside the cls token; it needs '
                             'with_cls_token=True')
        if with_cls_token and (window_blocks or use_rel_pos):
            raise ValueError('windowed attention and relative positions act on the token grid only; set '
                             'with_cls_token=False (the ViTDet / SAM form) to use window_block_indexes or use_rel_pos')
        if output_cls_token and not with_cls_token:
            raise ValueError('output_cls_token=True needs with_cls_token=True')
        if cls_output == 'cls_token' and 'cls_token' in self.cls_outputs and not with_cls_token:
            raise ValueError("cls_output='cls_token' needs with_cls_token=True (use 'avg_featmap' without one)")
        super().__init__(in_channels, depth, out_indices, frozen_stages, norm_eval, with_cp, init_cfg, cls_output)
        self.embed_dim = dim
        self.patch_size = patch_size
        self.pos_grid: tuple[int, int] = grid  # type: ignore[assignment]
        self.num_prefix_tokens = (1 + int(distilled)) if with_cls_token else 0
        self.output_cls_token = bool(output_cls_token)
        self.interpolate_mode = interpolate_mode
        self.interpolate_antialias = interpolate_antialias

        self.patch_embed = self.build_patch_embed(in_channels, dim, patch_size, patch_bias)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if with_cls_token else None
        self.dist_token = nn.Parameter(torch.zeros(1, 1, dim)) if distilled else None
        self.pos_embed = nn.Parameter(torch.zeros(1, self.num_prefix_tokens + grid[0] * grid[1], dim)) \
            if use_abs_pos else None
        self.pos_drop = nn.Dropout(drop_rate)
        num_built = self.num_built_blocks(depth)
        rates = drop_path_rates(drop_path_rate, [depth])[0]
        self.blocks = nn.ModuleList([
            self.build_block(i, dim=dim, num_heads=heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, drop=drop_rate,
                             attn_drop=attn_drop_rate, drop_path=rates[i], layer_scale=layer_scale_init_value,
                             window_size=window_size if i in window_blocks else 0,
                             rel_pos_size=((window_size, window_size) if i in window_blocks else grid)
                             if use_rel_pos else None,
                             norm=norm, act=act, fused_attn=fused_attn, window_pad=window_pad)
            for i in range(num_built)])
        self.norm = get_norm_layer(norm)(dim) if final_norm and num_built == depth else nn.Identity()
        self.out_channels = tuple(dim for _ in self.out_indices)
        self.out_strides = tuple(patch_size for _ in self.out_indices)

    # ---- what a variant builds in place of the plain ViT's parts (DeepViT, CeiT, hybrid) ----------------
    def build_patch_embed(self, in_channels: int, dim: int, patch_size: int, bias: bool) -> nn.Module:
        """The stem: images (B, C, H, W) -> tokens (B, h, w, dim) at stride ``patch_size`` (a conv of kernel =
        stride = patch, inputs padded to whole patches)."""
        return PatchEmbed(in_channels, dim, patch_size, pad_input=True, bias=bias)

    def build_block(self, index: int, **kwargs: Any) -> nn.Module:
        """Block ``index`` from :class:`ViTBlock`'s keyword arguments (``dim``, ``num_heads``, ``drop_path`` ...)."""
        return ViTBlock(**kwargs)

    def num_built_blocks(self, depth: int) -> int:
        """How many of the ``depth`` blocks to build: up to the last one in ``out_indices``."""
        return max(self.out_indices) + 1

    # ---- structure ------------------------------------------------------------------------------------
    def block_prefixes(self) -> list[tuple[str, list[str]]]:
        """Each block is a stage: ``('blocks.{i}.', ['blocks.{i}.'])``."""
        return [(f'blocks.{i}.', [f'blocks.{i}.']) for i in range(len(self.blocks))]

    def stem_parts(self) -> list[Freezable]:
        """Patch embedding, prefix tokens and position embedding (BEiT's depth 0)."""
        parts: list[Freezable] = [self.patch_embed]
        parts += [p for p in (self.cls_token, self.dist_token, self.pos_embed) if p is not None]
        return parts

    def stage_parts(self, index: int) -> list[Freezable]:
        """Block ``index``, and the final norm with the last block."""
        if index >= len(self.blocks):
            return []
        return [self.blocks[index]] + ([self.norm] if index == len(self.blocks) - 1 else [])

    def random_init(self) -> None:
        """timm's init: linear weights trunc-normal std 0.02, position embedding and distillation token std 0.02,
        cls token normal std 1e-6, relative tables zero, LayerScale at its initial value."""
        super().random_init()
        if self.pos_embed is not None:
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
        if self.cls_token is not None:
            nn.init.normal_(self.cls_token, std=1e-6)
        if self.dist_token is not None:
            nn.init.trunc_normal_(self.dist_token, std=0.02)
        for module in self.modules():
            if isinstance(module, LayerScale):
                module.reset_parameters()
            elif isinstance(module, ViTAttention) and module.use_rel_pos:
                nn.init.zeros_(module.rel_pos_h)
                nn.init.zeros_(module.rel_pos_w)

    # ---- loading --------------------------------------------------------------------------------------
    def adapt_state_dict(self, state_dict: dict[str, Any], own: dict[str, Tensor]) -> dict[str, Any]:
        """Resize a checkpoint's position embedding to this model's grid, dropping prefix rows it does not use."""
        pos = state_dict.get('pos_embed')
        if not isinstance(pos, Tensor) or 'pos_embed' not in own or pos.shape == own['pos_embed'].shape:
            return state_dict
        if pos.ndim != 3 or pos.shape[0] != 1 or pos.shape[2] != own['pos_embed'].shape[2]:
            raise CheckpointMismatchError(f'checkpoint pos_embed has shape {tuple(pos.shape)}; expected '
                                          f'(1, prefix + h*w, {own["pos_embed"].shape[2]})')
        prefix = _prefix_rows(pos.shape[1])
        if prefix is None:
            raise CheckpointMismatchError(
                f'checkpoint pos_embed of shape {tuple(pos.shape)} is not 0-2 prefix rows plus a square grid, so its '
                f'grid is unknown; this model expects {tuple(own["pos_embed"].shape)}')
        if prefix < self.num_prefix_tokens:
            raise CheckpointMismatchError(
                f'checkpoint pos_embed has {prefix} prefix rows and this model {self.num_prefix_tokens} prefix tokens '
                f'(cls{" + distillation" if self.dist_token is not None else ""})')
        side = math.isqrt(pos.shape[1] - prefix)
        pos = torch.cat([pos[:, :self.num_prefix_tokens], pos[:, prefix:]], dim=1)  # keep the rows we use
        state_dict = dict(state_dict)
        state_dict['pos_embed'] = resample_abs_pos_embed(pos, self.pos_grid, (side, side), self.num_prefix_tokens,
                                                         self.interpolate_mode, self.interpolate_antialias)
        return state_dict

    # ---- forward --------------------------------------------------------------------------------------
    def forward_stem(self, x: Tensor) -> Tensor:
        """Patch embedding: (B, C, H, W) -> (B, h, w, C')."""
        return self.patch_embed(x)

    def embed(self, x: Tensor) -> tuple[Tensor, tuple[int, int]]:
        """Images (B, C, H, W) -> tokens (B, P + h * w, C') with prefix tokens and position embedding, and (h, w)."""
        return self.embed_grid(self.forward_stem(x))

    def embed_grid(self, x: Tensor) -> tuple[Tensor, tuple[int, int]]:
        """Stem tokens (B, h, w, C') -> (B, P + h * w, C') with prefix tokens and position embedding, and (h, w)."""
        B, h, w, C = x.shape
        x = x.reshape(B, h * w, C)  # (B, h, w, C) -> (B, N, C)
        prefix = [t.expand(B, -1, -1) for t in (self.cls_token, self.dist_token) if t is not None]
        if prefix:
            x = torch.cat([*prefix, x], dim=1)
        if self.pos_embed is not None:
            if self.interpolate_antialias and torch.onnx.is_in_onnx_export() and torch.jit.is_tracing():
                raise RuntimeError('the TorchScript ONNX exporter (dynamo=False) has no antialiased bicubic resize: '
                                   'export with torch.onnx.export(..., dynamo=True), or build the backbone with '
                                   'interpolate_antialias=False (mmseg / detectron2 resizing)')
            x = x + resample_abs_pos_embed(self.pos_embed, (h, w), self.pos_grid, self.num_prefix_tokens,
                                           self.interpolate_mode, self.interpolate_antialias)
        return self.pos_drop(x), (h, w)

    def forward_tokens(self, x: Tensor) -> tuple[dict[int, Tensor], Optional[Tensor]]:
        """Every built block in turn; the (B, h, w, C) maps of ``out_indices`` (the last one normalised) and the
        prefix tokens (B, P, C) of the last output (None without prefix tokens)."""
        return self.run_blocks(*self.embed(x))

    def run_blocks(self, x: Tensor, hw: tuple[int, int]) -> tuple[dict[int, Tensor], Optional[Tensor]]:
        """:meth:`forward_tokens` from embedded tokens (B, P + h * w, C) over the grid ``hw = (h, w)``."""
        h, w = hw
        P = self.num_prefix_tokens
        feats, prefix = {}, None
        for index, block in enumerate(self.blocks):
            x = block(x, (h, w))
            if index == len(self.blocks) - 1:
                x = self.norm(x)
            if index in self.out_indices:
                feats[index] = x[:, P:].reshape(x.shape[0], h, w, x.shape[-1])  # (B, N, C) -> (B, h, w, C)
                prefix = x[:, :P] if P else None
        return feats, prefix

    def forward_features(self, x: Tensor) -> dict[int, Tensor]:
        """The NHWC map of each block in ``out_indices``."""
        return self.forward_tokens(x)[0]

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        """One (B, C, h, w) map per ``out_indices`` entry, then (``output_cls_token``) each prefix token (B, C),
        then the ``cls_output`` feature."""
        self.check_input(x)
        feats, prefix = self.forward_tokens(x)
        outs = self.format_outputs(feats)
        if self.output_cls_token and prefix is not None:
            outs = (*outs, *prefix.unbind(1))  # (B, P, C) -> P x (B, C)
        return self.append_cls_output(outs, self.cls_feature(prefix))

    def cls_feature(self, prefix: Optional[Tensor]) -> Any:
        """The ``'cls_token'`` feature from the last output's prefix tokens (B, P, C): the cls token (B, C), or
        with a distillation token the pair (cls, distillation) (None without prefix tokens)."""
        if prefix is None:
            return None
        return prefix[:, 0] if prefix.shape[1] == 1 else tuple(prefix.unbind(1))  # (B, P, C) -> P x (B, C)


def _prefix_rows(length: int) -> Optional[int]:
    """How many of ``length`` position rows are prefix rows (0, 1 or 2) before a square grid, or None."""
    for prefix in (0, 1, 2):
        side = math.isqrt(max(length - prefix, 0))
        if side > 0 and side * side == length - prefix:
            return prefix
    return None
