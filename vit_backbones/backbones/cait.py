"""CaiT (Class-Attention in Image Transformers) for dense prediction.

Paper: Touvron et al., "Going deeper with Image Transformers", ICCV 2021, arXiv:2103.17239. Reference code: the
official facebookresearch/deit ``cait_models.py`` and timm ``cait.py`` (the same modules and state-dict keys; timm
hosts the official weights).

What the references compute, and this code with it:

* Patch embedding: a conv of kernel = stride = ``patch_size`` (with bias). Inputs whose sides are not multiples of
  the patch are zero-padded at the bottom/right first (the references accept only their ``img_size``), so the grid
  is ``ceil(H / patch)``.
* Absolute position embedding ``pos_embed`` of shape (1, h * w, C): patch tokens only (the cls token gets none), a
  grid learned at ``pretrain_img_size``. The references add it as it is, so they run at their ``img_size`` only
  (timm's ``Cait`` has no ``dynamic_img_size``); here it is resized in 2-D to the input's grid at every forward
  (bicubic, antialiased when shrinking, in float32: timm's ``resample_abs_pos_embed``), which is the identity at
  the pre-training grid, and at load time to the model's ``pretrain_img_size`` grid.
* Self-attention blocks over the patch tokens only (no cls token):
  ``x + g1 * TH-Attn(LN(x))``, then ``x + g2 * MLP(LN(x))``, with LayerScale vectors ``g1, g2`` initialised to the
  preset's ``init_values`` (1e-5 for depth 24, 1e-6 beyond), LayerNorm eps 1e-6, MLP ``fc1 -> GELU (exact) -> fc2``
  of ratio 4, qkv with bias. Talking-heads attention (Shazeer et al., arXiv:2003.02436) mixes the heads with learned
  (h x h) linears before and after the softmax: ``A = proj_w(softmax(proj_l(q k^T / sqrt(d)))) v`` (the scale is
  applied to q, before ``proj_l``). Stochastic depth is the same ``drop_path_rate`` in every block (CaiT's rule,
  not a linear ramp).
* Class-attention blocks (two): the cls token ``c`` alone is updated, attending to ``z = [c, x]`` of the last
  self-attention block's tokens: ``c + g1 * CA(LN(z))`` with ``CA = softmax(q(LN(z)_0) k(LN(z))^T / sqrt(d))
  v(LN(z))`` (separate ``q``, ``k``, ``v`` linears), then ``c + g2 * MLP(LN(c))``; no dropout or stochastic depth.
  A final LayerNorm ``norm`` on ``[c, x]`` gives the classifier's cls token.

Dense outputs: each self-attention block is a stage, so ``out_indices`` name blocks and every output is the
stride-``patch`` NCHW map of that block's patch tokens; with ``final_norm`` the last block's map goes through
``norm`` (timm's ``forward_features(x)[:, 1:]``). The cls token and the class-attention blocks serve classification
only: they are built and run only with ``output_cls_token=True``, which returns the final-normed cls token (timm's
``forward_features(x)[:, 0]``) after the maps. Parts a configuration does not build (the class-attention head,
blocks after the last output) are left out of a loaded checkpoint with a reason in the load report.
"""
import math
import re
from typing import Any, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from ..converters import cait as _cait_layouts  # noqa: F401  (registers the 'cait' checkpoint layouts)
from ..converters.common import CheckpointMismatchError
from ..layers import Attention, LayerScale, Mlp, PatchEmbed, get_act_layer, get_norm_layer, resample_abs_pos_embed
from ..registry import MODELS
from .base import BaseBackbone, Freezable, check_heads_divide, check_int, check_positive, check_rates, resolve_arch
from .vit import ViTBlock, to_2tuple

__all__ = ['CaiT']

# timm's cait_* model arguments (checkpoints: xxs24 at 224 and 384, xxs36 at 224 and 384, xs24 at 384, s24 at 224
# and 384, s36 at 384, m36 at 384, m48 at 448).
ARCHS: dict[str, dict[str, Any]] = {
    'xxs24': dict(embed_dim=192, depth=24, num_heads=4, init_values=1e-5),
    'xxs36': dict(embed_dim=192, depth=36, num_heads=4, init_values=1e-5),
    'xs24': dict(embed_dim=288, depth=24, num_heads=6, init_values=1e-5),
    's24': dict(embed_dim=384, depth=24, num_heads=8, init_values=1e-5),
    's36': dict(embed_dim=384, depth=36, num_heads=8, init_values=1e-6),
    'm36': dict(embed_dim=768, depth=36, num_heads=16, init_values=1e-6),
    'm48': dict(embed_dim=768, depth=48, num_heads=16, init_values=1e-6),
}
ARCH_KEYS = ('embed_dim', 'depth', 'num_heads')
ARCH_OPTIONAL = ('mlp_ratio', 'init_values', 'depth_token_only', 'mlp_ratio_token_only')
ARCH_DEFAULTS = dict(mlp_ratio=4.0, init_values=1e-5, depth_token_only=2, mlp_ratio_token_only=4.0)


class ClassAttentionBlock(nn.Module):
    """CaiT's class-attention block: the cls token attends to itself and the patch tokens; only it is updated.

    Args:
        dim: Token channels.
        num_heads: Attention heads.
        mlp_ratio: MLP hidden width over ``dim``.
        qkv_bias: Bias in the q, k, v projections.
        init_values: Initial LayerScale value.
        norm: Norm name for :func:`~vit_backbones.layers.get_norm_layer`.
        act: MLP activation name.
        fused_attn: Per-module fused/math override.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, qkv_bias: bool, init_values: float,
                 norm: str = 'ln_eps6', act: str = 'gelu', fused_attn: Optional[bool] = None) -> None:
        super().__init__()
        norm_layer = get_norm_layer(norm)
        self.norm1 = norm_layer(dim)
        self.attn = Attention(dim, num_heads, qkv_bias, qkv_layout='q_k_v', fused_attn=fused_attn)
        self.ls1 = LayerScale(dim, init_values)
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=get_act_layer(act))
        self.ls2 = LayerScale(dim, init_values)

    def forward(self, x: Tensor, cls: Tensor) -> Tensor:
        """Patch tokens ``x`` (B, N, C) and cls token ``cls`` (B, 1, C) -> the updated cls token (B, 1, C)."""
        z = self.norm1(torch.cat([cls, x], dim=1))  # (B, 1 + N, C)
        q, k, v = self.attn.project(z[:, :1], kv_input=z)  # q (B, h, 1, d); k, v (B, h, 1 + N, d)
        cls = cls + self.ls1(self.attn.out(self.attn.attend(q, k, v)))
        return cls + self.ls2(self.mlp(self.norm2(cls)))


@MODELS.register_module()
class CaiT(BaseBackbone):
    """CaiT backbone: one stride-``patch_size`` NCHW map per self-attention block in ``out_indices``.

    Args:
        arch: ``'xxs24'``, ``'xxs36'``, ``'xs24'``, ``'s24'``, ``'s36'``, ``'m36'``, ``'m48'`` (timm's ``cait_*``
            without the resolution) or a dict with ``embed_dim``, ``depth``, ``num_heads`` and optionally
            ``mlp_ratio`` (4.0), ``init_values`` (LayerScale init, 1e-5), ``depth_token_only`` (class-attention
            blocks, 2) and ``mlp_ratio_token_only`` (4.0).
        patch_size: Patch side.
        in_channels: Input image channels.
        pretrain_img_size: Image size (int or (H, W)) the position embedding is learned for; its grid is
            ``pretrain_img_size // patch_size`` (the checkpoints: 224, 384 or 448).
        qkv_bias: Bias in the q/k/v projections.
        drop_rate: Dropout after the position embedding, the attention projections and in the MLPs of the
            self-attention blocks.
        attn_drop_rate: Dropout on the self-attention weights.
        drop_path_rate: Stochastic depth of every self-attention block (the same rate in all, as CaiT).
        final_norm: LayerNorm ``norm`` on the last block's map (when that block is built).
        output_cls_token: Build the cls token, the class-attention blocks and ``norm``, run them after the last
            self-attention block, and return the final-normed cls token (B, C) after the maps; builds every block.
        interpolate_mode: Interpolation of the position embedding to other grids.
        interpolate_antialias: Antialias when the embedding shrinks (timm's ``resample_abs_pos_embed``: True).
        norm: Norm name (``'ln_eps6'``: LayerNorm eps 1e-6, the references').
        act: MLP activation name.
        out_indices: Self-attention blocks to output (negative counts from the end); later blocks are not built
            (unless ``output_cls_token``).
        frozen_stages: -1 nothing, 0 the patch and position embeddings, k those and blocks 0..k-1 (and, with the
            last block, ``norm`` and the class-attention head).
        norm_eval: Keep BatchNorm layers in eval mode (CaiT has none; kept for the contract).
        with_cp: Non-reentrant activation checkpointing of every self-attention block.
        fused_attn: ``F.scaled_dot_product_attention`` (True), the math path (False) or the package default
            (None). Talking-heads attention always takes the math path; the switch acts on class attention.
        init_cfg: mmengine init config, e.g. ``dict(type='Pretrained', checkpoint=PATH)`` with a timm, official
            (facebookresearch/deit) or our checkpoint.
        cls_output: ``'avg_featmap'``, or ``'cls_token'``: build the class-attention head as ``output_cls_token``
            does and return its final-normed cls token (see :class:`~vit_backbones.backbones.base.BaseBackbone`).
    """

    checkpoint_family = 'cait'
    stages_attr = 'blocks'
    cls_outputs = ('avg_featmap', 'cls_token')

    def __init__(self, arch: Union[str, dict] = 's24', patch_size: int = 16, in_channels: int = 3,
                 pretrain_img_size: Union[int, Sequence[int]] = 224, qkv_bias: bool = True, drop_rate: float = 0.0,
                 attn_drop_rate: float = 0.0, drop_path_rate: float = 0.0, final_norm: bool = True,
                 output_cls_token: bool = False, interpolate_mode: str = 'bicubic',
                 interpolate_antialias: bool = True, norm: str = 'ln_eps6', act: str = 'gelu',
                 out_indices: Union[int, Sequence[int]] = -1, frozen_stages: int = -1, norm_eval: bool = False,
                 with_cp: bool = False, fused_attn: Optional[bool] = None,
                 init_cfg: Union[dict, list, None] = None,
                 cls_output: Optional[str] = None) -> None:
        cfg = dict(ARCH_DEFAULTS, **resolve_arch(arch, ARCHS, ARCH_KEYS, optional=ARCH_OPTIONAL))
        dim, depth, heads = (check_int(f"arch['{k}']", cfg[k]) for k in ARCH_KEYS)
        depth_token_only = check_int("arch['depth_token_only']", cfg['depth_token_only'])
        for key in ('mlp_ratio', 'init_values', 'mlp_ratio_token_only'):
            check_positive(f"arch['{key}']", cfg[key])
        check_heads_divide((dim,), (heads,), "arch['embed_dim']")
        check_int('patch_size', patch_size)
        grid = tuple(side // patch_size for side in to_2tuple(pretrain_img_size, 'pretrain_img_size'))
        if min(grid) < 1:
            raise ValueError(f'pretrain_img_size {pretrain_img_size!r} is smaller than patch_size {patch_size}')
        check_rates(drop_rate=drop_rate, attn_drop_rate=attn_drop_rate, drop_path_rate=drop_path_rate)
        get_norm_layer(norm)  # unknown names raise here, naming what is expected
        get_act_layer(act)
        super().__init__(in_channels, depth, out_indices, frozen_stages, norm_eval, with_cp, init_cfg, cls_output)
        self.embed_dim = dim
        self.patch_size = patch_size
        self.pos_grid: tuple[int, int] = grid  # type: ignore[assignment]
        self.output_cls_token = bool(output_cls_token)
        with_head = self.output_cls_token or cls_output == 'cls_token'  # the class-attention head
        self.interpolate_mode = interpolate_mode
        self.interpolate_antialias = interpolate_antialias

        self.patch_embed = PatchEmbed(in_channels, dim, patch_size, pad_input=True)
        self.pos_embed = nn.Parameter(torch.zeros(1, grid[0] * grid[1], dim))
        self.pos_drop = nn.Dropout(drop_rate)
        num_built = depth if with_head else max(self.out_indices) + 1
        self.blocks = nn.ModuleList([
            ViTBlock(dim, heads, cfg['mlp_ratio'], qkv_bias, drop_rate, attn_drop_rate, drop_path_rate,
                     cfg['init_values'], norm=norm, act=act, fused_attn=fused_attn, talking_heads=True)
            for _ in range(num_built)])
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if with_head else None
        self.blocks_token_only = nn.ModuleList([
            ClassAttentionBlock(dim, heads, cfg['mlp_ratio_token_only'], qkv_bias, cfg['init_values'], norm, act,
                                fused_attn)
            for _ in range(depth_token_only)]) if with_head else None
        self.final_norm = bool(final_norm) and num_built == depth
        self.norm = get_norm_layer(norm)(dim) if self.final_norm or with_head else nn.Identity()
        self.out_channels = tuple(dim for _ in self.out_indices)
        self.out_strides = tuple(patch_size for _ in self.out_indices)

    # ---- structure ------------------------------------------------------------------------------------
    def block_prefixes(self) -> list[tuple[str, list[str]]]:
        """Each self-attention block is a stage: ``('blocks.{i}.', ['blocks.{i}.'])``."""
        return [(f'blocks.{i}.', [f'blocks.{i}.']) for i in range(len(self.blocks))]

    def stem_parts(self) -> list[Freezable]:
        """Patch and position embeddings (BEiT's depth 0)."""
        return [self.patch_embed, self.pos_embed]

    def stage_parts(self, index: int) -> list[Freezable]:
        """Block ``index``; with the last block, the final norm and the class-attention head."""
        if index >= len(self.blocks):
            return []
        parts: list[Freezable] = [self.blocks[index]]
        if index == len(self.blocks) - 1:
            parts += [p for p in (self.norm, self.cls_token, self.blocks_token_only) if p is not None]
        return parts

    def random_init(self) -> None:
        """The references' init: linear weights (talking-heads mixings included) trunc-normal std 0.02 with zero
        bias, LayerNorms 1/0, the patch conv PyTorch's default, position embedding and cls token trunc-normal std
        0.02, LayerScale at ``init_values``."""
        super().random_init()
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        if self.cls_token is not None:
            nn.init.trunc_normal_(self.cls_token, std=0.02)
        for module in self.modules():
            if isinstance(module, LayerScale):
                module.reset_parameters()

    # ---- loading --------------------------------------------------------------------------------------
    def unbuilt_reason(self, key: str) -> Optional[str]:
        """Why the checkpoint key ``key`` (absent from this model) belongs to a part not built here, or None."""
        if key == 'cls_token' or key.startswith('blocks_token_only.'):
            return 'class-attention head (built with output_cls_token=True)' if self.cls_token is None else None
        if key.startswith('norm.'):
            return 'final norm (built with the last block and final_norm, or with output_cls_token)' \
                if isinstance(self.norm, nn.Identity) else None
        match = re.match(r'blocks\.(\d+)\.', key)
        if match and int(match.group(1)) >= len(self.blocks):
            return 'a block after the last one in out_indices (not built)'
        return None

    def adapt_state_dict(self, state_dict: dict[str, Any], own: dict[str, Tensor]) -> dict[str, Any]:
        """Resize a checkpoint's square position grid to this model's ``pretrain_img_size`` grid (bicubic)."""
        pos = state_dict.get('pos_embed')
        target = own['pos_embed']
        if not isinstance(pos, Tensor) or pos.shape == target.shape:
            return state_dict
        side = math.isqrt(pos.shape[1]) if pos.ndim == 3 else 0
        if pos.ndim != 3 or pos.shape[0] != 1 or pos.shape[2] != target.shape[2] or side * side != pos.shape[1]:
            raise CheckpointMismatchError(
                f'checkpoint pos_embed has shape {tuple(pos.shape)}; expected (1, h*w, {target.shape[2]}) with a '
                f'square grid to resize to this model\'s {self.pos_grid} grid (shape {tuple(target.shape)})')
        state_dict = dict(state_dict)
        state_dict['pos_embed'] = resample_abs_pos_embed(pos, self.pos_grid, (side, side), 0, self.interpolate_mode,
                                                         self.interpolate_antialias)
        return state_dict

    # ---- forward --------------------------------------------------------------------------------------
    def forward_stem(self, x: Tensor) -> Tensor:
        """Patch embedding: (B, C, H, W) -> (B, h, w, C')."""
        return self.patch_embed(x)

    def embed(self, x: Tensor) -> tuple[Tensor, tuple[int, int]]:
        """Images (B, C, H, W) -> patch tokens (B, h * w, C') with the position embedding, and (h, w)."""
        x = self.forward_stem(x)
        B, h, w, C = x.shape
        x = x.reshape(B, h * w, C)  # (B, h, w, C) -> (B, N, C)
        if self.interpolate_antialias and torch.onnx.is_in_onnx_export() and torch.jit.is_tracing():
            raise RuntimeError('the TorchScript ONNX exporter (dynamo=False) has no antialiased bicubic resize: '
                               'export with torch.onnx.export(..., dynamo=True), or build the backbone with '
                               'interpolate_antialias=False')
        x = x + resample_abs_pos_embed(self.pos_embed, (h, w), self.pos_grid, 0, self.interpolate_mode,
                                       self.interpolate_antialias)
        return self.pos_drop(x), (h, w)

    def forward_tokens(self, x: Tensor) -> tuple[dict[int, Tensor], Tensor]:
        """Every built self-attention block in turn; the (B, h, w, C) maps of ``out_indices`` (the last block's
        through ``norm`` with ``final_norm``) and the last block's tokens (B, N, C) before ``norm``."""
        x, (h, w) = self.embed(x)
        last = len(self.blocks) - 1
        feats = {}
        for index, block in enumerate(self.blocks):
            x = block(x, (h, w))
            if index in self.out_indices:
                y = self.norm(x) if index == last and self.final_norm else x
                feats[index] = y.reshape(x.shape[0], h, w, x.shape[-1])  # (B, N, C) -> (B, h, w, C)
        return feats, x

    def forward_cls(self, x: Tensor) -> Tensor:
        """Class attention over the last block's tokens (B, N, C) -> the final-normed cls token (B, C)."""
        cls = self.cls_token.expand(x.shape[0], -1, -1)  # (1, 1, C) -> (B, 1, C)
        for block in self.blocks_token_only:
            cls = block(x, cls)
        return self.norm(cls)[:, 0]  # (B, 1, C) -> (B, C)

    def forward_features(self, x: Tensor) -> dict[int, Tensor]:
        """The NHWC map of each block in ``out_indices``."""
        return self.forward_tokens(x)[0]

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        """One (B, C, h, w) map per ``out_indices`` entry, then (``output_cls_token``) the cls token (B, C), then
        the ``cls_output`` feature."""
        self.check_input(x)
        feats, tokens = self.forward_tokens(x)
        outs = self.format_outputs(feats)
        wanted = self.output_cls_token or self.cls_output == 'cls_token'
        cls = self.forward_cls(tokens) if wanted and self.cls_token is not None else None
        if self.output_cls_token:
            outs = (*outs, cls)
        return self.append_cls_output(outs, cls)
