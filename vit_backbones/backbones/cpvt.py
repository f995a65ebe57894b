"""CPVT: vision transformers whose positions come from a Position Encoding Generator (PEG), plain and pyramid.

Papers: Chu et al., "Conditional Positional Encodings for Vision Transformers", ICLR 2023, arXiv:2102.10882 (CPVT,
the PEG); Chu et al., "Twins: Revisiting the Design of Spatial Attention in Vision Transformers", NeurIPS 2021,
arXiv:2104.13840 (Twins-PCPVT, the pyramid form). Reference code: Meituan-AutoML/CPVT (README; the paper's
Algorithm 1), Meituan-AutoML/Twins ``gvt.py`` (``PosCNN``, ``CPVTV2`` / ``pcpvt_*_v0``, whose dense form in
``segmentation/gvt.py`` returns the four stage maps without norm), timm ``twins.py`` (``twins_pcpvt_*``).

The PEG. On the (h, w) grid of the tokens X (prefix tokens excluded), ``PEG(X) = X + DWConv3x3(X)``: a depth-wise
3x3 convolution with bias, stride 1 and zero padding 1, plus its input. It replaces the absolute position table,
so no table is learned for a resolution and any input size runs as is (the zero padding at the border is what
lets the convolution encode absolute position).

Plain form (``arch='tiny' | 'small' | 'base'``: CPVT-Ti/S/B, DeiT-Ti/S/B widths, 12 blocks, 16x16 patches):

* patch embedding: conv of kernel = stride = ``patch_size`` with bias; inputs whose sides are not multiples of the
  patch are zero-padded at the bottom/right (the grid is ``ceil(H / patch)``), as our ViT;
* an optional cls token (``with_cls_token=True``: CPVT; False: CPVT-GAP, which pools the tokens in the classifier),
  and no position embedding;
* DeiT's pre-norm blocks (LayerNorm eps 1e-6, qkv with bias, GELU MLP of ratio 4, stochastic depth rising linearly
  from 0 to ``drop_path_rate``); the PEG follows block 0 (the paper's best position; ``peg_blocks`` moves it or
  adds more) and acts on the grid tokens only: the cls token passes through it unchanged;
* a final LayerNorm (eps 1e-6) on the last block (``final_norm``).

Each block is a stage, as in our ``VisionTransformer``: ``out_indices`` name blocks, every output is the
stride-``patch_size`` map of that block's grid tokens (the PEG's output for a PEG block), so the plain-ViT necks
(mmseg's ``MultiLevelNeck``, the simple feature pyramid) work unchanged.

Pyramid form (``arch='pcpvt_small' | 'pcpvt_base' | 'pcpvt_large'``: Twins-PCPVT-S/B/L). Four stages at strides
4, 8, 16, 32; stage i embeds its input with a conv of kernel = stride (4, then 2) and a LayerNorm (eps 1e-5), runs
PVT-v1 blocks (LayerNorm eps 1e-6; spatial-reduction attention whose keys/values come from a ``sr_ratio``-strided
conv + LayerNorm eps 1e-5; q and kv with bias; GELU MLP) and applies the PEG after its first block. No position
embedding, no cls token; the stage maps are returned without norm (as the official dense model; the
classification checkpoint's final ``norm`` and ``head`` are dropped on load). timm and the official code floor a
size that the embedding stride does not divide; here each embedding zero-pads its input at the bottom/right to a
multiple of its stride first (stage i is ``ceil(H / (4 * 2**i))``), which changes nothing where the stride divides
the input, so any size runs. A map smaller than the reduction kernel is padded up to one kernel (our PVT's rule).
"""
from typing import Any, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from ..converters import cpvt as _cpvt_layouts  # noqa: F401  (registers the 'cpvt' checkpoint layouts)
from ..layers import BackboneStage, PatchEmbed, get_norm_layer, nchw_to_nhwc, nchw_to_nlc, nlc_to_nchw
from ..registry import MODELS
from .base import (
    BaseBackbone,
    Freezable,
    check_heads_divide,
    check_int,
    check_rates,
    drop_path_rates,
    resolve_arch,
)
from .pvt import PvtBlock, check_pyramid_arch
from .vit import ViTBlock

__all__ = ['CPVT']

_PCPVT = dict(embed_dims=(64, 128, 320, 512), num_heads=(1, 2, 5, 8), mlp_ratios=(8, 8, 4, 4), sr_ratios=(8, 4, 2, 1))
ARCHS: dict[str, dict[str, Any]] = {
    'tiny': dict(embed_dim=192, depth=12, num_heads=3, mlp_ratio=4.0),
    'small': dict(embed_dim=384, depth=12, num_heads=6, mlp_ratio=4.0),
    'base': dict(embed_dim=768, depth=12, num_heads=12, mlp_ratio=4.0),
    'pcpvt_small': dict(_PCPVT, depths=(3, 4, 6, 3)),
    'pcpvt_base': dict(_PCPVT, depths=(3, 4, 18, 3)),
    'pcpvt_large': dict(_PCPVT, depths=(3, 8, 27, 3)),
}
PLAIN_KEYS = ('embed_dim', 'depth', 'num_heads')
PLAIN_OPTIONAL = ('mlp_ratio',)
PYRAMID_KEYS = ('embed_dims', 'depths', 'num_heads', 'mlp_ratios', 'sr_ratios')


def is_pyramid_arch(arch: Union[str, dict]) -> bool:
    """Whether ``arch`` names the pyramid form: a ``'pcpvt_*'`` preset or a dict with per-stage ``depths``."""
    return arch.startswith('pcpvt') if isinstance(arch, str) else isinstance(arch, dict) and 'depths' in arch


class PEG(nn.Module):
    """Position Encoding Generator: ``x + proj(x)`` on the token grid, ``proj`` a depth-wise conv with bias.

    Args:
        dim: Token channels.
        kernel_size: Odd kernel side (3 in the paper); zero padding keeps the grid.
    """

    def __init__(self, dim: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.proj = nn.Conv2d(dim, dim, kernel_size, 1, kernel_size // 2, groups=dim)

    def forward(self, x: Tensor, hw: tuple[int, int], num_prefix: int = 0) -> Tensor:
        """(B, P + h * w, C) tokens -> the same, the P prefix tokens unchanged."""
        prefix, grid = x[:, :num_prefix], x[:, num_prefix:]
        feat = nlc_to_nchw(grid, hw)  # (B, N, C) -> (B, C, h, w)
        grid = nchw_to_nlc(self.proj(feat) + feat)  # (B, C, h, w) -> (B, N, C)
        return torch.cat([prefix, grid], dim=1) if num_prefix else grid


class CPVTBlock(ViTBlock):
    """DeiT's block, followed by a PEG when ``peg`` is set (each block is a stage of the plain form).

    Args:
        peg: Apply a PEG to the block's output.
        num_prefix_tokens: Leading tokens that are not on the grid (the cls token).
        **kwargs: :class:`~vit_backbones.backbones.vit.ViTBlock`'s arguments.
    """

    def __init__(self, dim: int, num_heads: int, peg: bool, num_prefix_tokens: int, **kwargs: Any) -> None:
        super().__init__(dim, num_heads, **kwargs)
        self.num_prefix_tokens = num_prefix_tokens
        self.pos_block = PEG(dim) if peg else None

    def forward_tokens(self, x: Tensor, hw: tuple[int, int]) -> Tensor:
        """The block on (B, P + h * w, C) tokens, then the PEG on the grid tokens."""
        x = super().forward_tokens(x, hw)
        return x if self.pos_block is None else self.pos_block(x, hw, self.num_prefix_tokens)


class PcpvtStage(BackboneStage):
    """One Twins-PCPVT level on NHWC maps: patch embedding (conv + LayerNorm), blocks, a PEG after the first."""

    def __init__(self, in_dim: int, dim: int, patch_size: int, blocks: Sequence[PvtBlock], drop: float) -> None:
        super().__init__()
        self.patch_embed = PatchEmbed(in_dim, dim, patch_size, pad_input=True, norm_layer=get_norm_layer('ln'))
        self.pos_drop = nn.Dropout(drop)
        self.blocks = nn.ModuleList(blocks)
        self.pos_block = PEG(dim)

    def forward(self, x: Tensor) -> Tensor:
        """(B, H, W, C) -> (B, ceil(H / s), ceil(W / s), C') for the embedding stride s."""
        x = self.pos_drop(self.patch_embed(x.permute(0, 3, 1, 2)))  # (B, H, W, C) -> (B, C, H, W) -> (B, h, w, C')
        B, H, W, C = x.shape
        x = x.reshape(B, H * W, C)  # (B, h, w, C) -> (B, N, C)
        for index, block in enumerate(self.blocks):
            x = self.run_block(block, x, (H, W))
            if index == 0:
                x = self.pos_block(x, (H, W))
        return x.reshape(B, H, W, C)  # (B, N, C) -> (B, h, w, C)


@MODELS.register_module()
class CPVT(BaseBackbone):
    """CPVT backbone: the plain form (one stride-16 map per block in ``out_indices``) or Twins-PCPVT (four maps at
    strides 4, 8, 16, 32). See the module docstring for the math of each.

    Args:
        arch: Plain ``'tiny'``, ``'small'``, ``'base'`` or a dict with ``embed_dim``, ``depth``, ``num_heads`` and
            optionally ``mlp_ratio`` (4.0); pyramid ``'pcpvt_small'``, ``'pcpvt_base'``, ``'pcpvt_large'`` or a dict
            with ``embed_dims``, ``depths``, ``num_heads``, ``mlp_ratios``, ``sr_ratios`` (one entry per stage).
        patch_size: Plain: the patch side (default 16). Pyramid: the first embedding's stride (default 4; the
            later ones are 2).
        in_channels: Input image channels.
        with_cls_token: Plain form only: CPVT with a cls token (default) or CPVT-GAP without one (False). The
            pyramid form has none.
        peg_blocks: Plain form only: blocks followed by a PEG (default ``(0,)``, the paper's choice).
        final_norm: Plain form only: LayerNorm on the last block's output (default True). The pyramid's stage maps
            have no norm.
        output_cls_token: Plain form with cls token: return the last output's cls token (B, C) after the maps.
        qkv_bias: Bias in the query/key/value projections.
        drop_rate: Dropout after the embedding, the attention projections and in the MLPs.
        attn_drop_rate: Dropout on attention weights.
        drop_path_rate: Stochastic depth, rising linearly from 0 over all blocks.
        out_indices: Plain: blocks to output (default: the last); pyramid: stages (default: all four). Negative
            indices count from the end; later blocks or stages are not built.
        frozen_stages: -1 nothing; 0 the stem (plain: patch embedding and cls token; pyramid: the first patch
            embedding); k also blocks (plain, the final norm with the last) or stages 0..k-1.
        norm_eval: Keep BatchNorm layers in eval mode (CPVT has none; kept for the contract).
        with_cp: Non-reentrant activation checkpointing of every block.
        fused_attn: ``F.scaled_dot_product_attention`` (True), the math path (False) or the package default (None).
        init_cfg: mmengine init config, e.g. ``dict(type='Pretrained', checkpoint=PATH)`` with a timm / official
            Twins-PCPVT checkpoint (pyramid), a timm / official DeiT one (plain: every weight but the position
            embedding, which CPVT does not have; the PEG keeps its random init), or ours.
        cls_output: ``'avg_featmap'``, or (plain form with cls token) ``'cls_token'``: the final-normed cls token
            (see :class:`~vit_backbones.backbones.base.BaseBackbone`).
    """

    checkpoint_family = 'cpvt'
    cls_outputs = ('avg_featmap', 'cls_token')

    def __init__(self, arch: Union[str, dict] = 'small', patch_size: Optional[int] = None, in_channels: int = 3,
                 with_cls_token: Optional[bool] = None, peg_blocks: Union[int, Sequence[int]] = (0,),
                 final_norm: Optional[bool] = None, output_cls_token: bool = False, qkv_bias: bool = True,
                 drop_rate: float = 0.0, attn_drop_rate: float = 0.0, drop_path_rate: float = 0.0,
                 out_indices: Union[int, Sequence[int], None] = None, frozen_stages: int = -1, norm_eval: bool = False,
                 with_cp: bool = False, fused_attn: Optional[bool] = None,
                 init_cfg: Union[dict, list, None] = None,
                 cls_output: Optional[str] = None) -> None:
        pyramid = is_pyramid_arch(arch)
        cfg = resolve_arch(arch, ARCHS, PYRAMID_KEYS if pyramid else PLAIN_KEYS,
                           optional=() if pyramid else PLAIN_OPTIONAL)
        check_rates(drop_rate=drop_rate, attn_drop_rate=attn_drop_rate, drop_path_rate=drop_path_rate)
        patch_size = check_int('patch_size', 4 if pyramid else 16) if patch_size is None \
            else check_int('patch_size', patch_size)
        pegs = (peg_blocks,) if isinstance(peg_blocks, int) else tuple(peg_blocks)
        self.pyramid = pyramid
        # the two forms lay their stages and image convolution out differently
        self.stages_attr = 'stages' if pyramid else 'blocks'  # type: ignore[misc]
        self.stem_conv_keys = ('stages.0.patch_embed.proj.weight' if pyramid  # type: ignore[misc]
                               else 'patch_embed.proj.weight',)
        if pyramid:
            self._check_pyramid_options(with_cls_token, pegs, final_norm, output_cls_token or
                                        cls_output == 'cls_token')
            dims, depths, heads, mlp_ratios, sr_ratios = check_pyramid_arch(cfg)
            num_stages = len(depths)
            out_indices = tuple(range(num_stages)) if out_indices is None else out_indices
            super().__init__(in_channels, num_stages, out_indices, frozen_stages, norm_eval, with_cp, init_cfg,
                             cls_output)
            self.num_prefix_tokens = 0
            self.output_cls_token = False
            rates = drop_path_rates(drop_path_rate, depths)
            stages = []
            for i in range(max(self.out_indices) + 1):
                blocks = [PvtBlock(dims[i], heads[i], mlp_ratios[i], sr_ratios[i], linear=False, dw_mlp=False,
                                   qkv_bias=qkv_bias, drop=drop_rate, attn_drop=attn_drop_rate,
                                   drop_path=rates[i][j], act='gelu', fused_attn=fused_attn)
                          for j in range(depths[i])]
                stages.append(PcpvtStage(dims[i - 1] if i else in_channels, dims[i], 2 if i else patch_size, blocks,
                                         drop_rate))
            self.stages = nn.ModuleList(stages)
            self.out_channels = tuple(dims[i] for i in self.out_indices)
            self.out_strides = tuple(patch_size * 2 ** i for i in self.out_indices)
            return
        dim, depth, heads = (check_int(f"arch['{k}']", cfg[k]) for k in PLAIN_KEYS)
        mlp_ratio = cfg.get('mlp_ratio', 4.0)
        if isinstance(mlp_ratio, bool) or not isinstance(mlp_ratio, (int, float)) or mlp_ratio <= 0:
            raise ValueError(f"arch['mlp_ratio'] must be a positive number, got {mlp_ratio!r}")
        check_heads_divide((dim,), (heads,), "arch['embed_dim']")
        if not pegs or len(set(pegs)) != len(pegs) or \
                any(isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < depth for i in pegs):
            raise ValueError(f'peg_blocks must be distinct block indices in [0, {depth - 1}] (at least one: the PEG '
                             f'is the only position encoding), got {peg_blocks!r}')
        with_cls_token = True if with_cls_token is None else bool(with_cls_token)
        if (output_cls_token or cls_output == 'cls_token') and not with_cls_token:
            raise ValueError("output_cls_token=True and cls_output='cls_token' need with_cls_token=True "
                             "(CPVT-GAP has no cls token)")
        out_indices = -1 if out_indices is None else out_indices
        super().__init__(in_channels, depth, out_indices, frozen_stages, norm_eval, with_cp, init_cfg, cls_output)
        self.embed_dim = dim
        self.patch_size = patch_size
        self.num_prefix_tokens = int(with_cls_token)
        self.output_cls_token = bool(output_cls_token)
        self.patch_embed = PatchEmbed(in_channels, dim, patch_size, pad_input=True)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if with_cls_token else None
        self.pos_drop = nn.Dropout(drop_rate)
        num_built = max(self.out_indices) + 1
        rates = drop_path_rates(drop_path_rate, [depth])[0]
        self.blocks = nn.ModuleList([
            CPVTBlock(dim, heads, peg=i in pegs, num_prefix_tokens=self.num_prefix_tokens, mlp_ratio=mlp_ratio,
                      qkv_bias=qkv_bias, drop=drop_rate, attn_drop=attn_drop_rate, drop_path=rates[i],
                      fused_attn=fused_attn)
            for i in range(num_built)])
        final_norm = True if final_norm is None else final_norm
        self.norm = get_norm_layer('ln_eps6')(dim) if final_norm and num_built == depth else nn.Identity()
        self.out_channels = tuple(dim for _ in self.out_indices)
        self.out_strides = tuple(patch_size for _ in self.out_indices)

    @staticmethod
    def _check_pyramid_options(with_cls_token: Optional[bool], peg_blocks: tuple, final_norm: Optional[bool],
                               output_cls_token: bool) -> None:
        """Reject the plain-form options the pyramid form does not have."""
        if with_cls_token:
            raise ValueError('with_cls_token: the pyramid form (PCPVT) has no cls token')
        if output_cls_token:
            raise ValueError("output_cls_token / cls_output='cls_token': the pyramid form (PCPVT) has no cls token")
        if final_norm:
            raise ValueError('final_norm: the pyramid form (PCPVT) returns its stage maps without norm')
        if peg_blocks != (0,):
            raise ValueError(f'peg_blocks: the pyramid form (PCPVT) has one PEG after the first block of every '
                             f'stage, got {peg_blocks!r}')

    # ---- structure ------------------------------------------------------------------------------------
    def block_prefixes(self) -> list[tuple[str, list[str]]]:
        """Pyramid: ``stages.{i}.blocks.{j}``; plain: each block is a stage, ``('blocks.{i}.', ['blocks.{i}.'])``."""
        if self.pyramid:
            return super().block_prefixes()
        return [(f'blocks.{i}.', [f'blocks.{i}.']) for i in range(len(self.blocks))]

    def stem_parts(self) -> list[Freezable]:
        """Pyramid: the first patch embedding; plain: the patch embedding and the cls token."""
        if self.pyramid:
            return [self.stages[0].patch_embed]
        return [self.patch_embed] + ([self.cls_token] if self.cls_token is not None else [])

    def stage_parts(self, index: int) -> list[Freezable]:
        """Pyramid: stage ``index``; plain: block ``index`` (and the final norm with the last block)."""
        if self.pyramid or index >= len(self.blocks):
            return super().stage_parts(index)
        return [self.blocks[index]] + ([self.norm] if index == len(self.blocks) - 1 else [])

    def random_init(self) -> None:
        """The references' init: linear weights trunc-normal std 0.02 with zero bias, LayerNorms 1/0, PEG (and, in
        the pyramid, every) convolution normal with std sqrt(2 / fan_out) and zero bias (Twins), the plain patch
        embedding PyTorch's default, the cls token normal std 1e-6 (timm's DeiT)."""
        super().random_init()
        convs = [m for m in self.modules() if isinstance(m, nn.Conv2d)] if self.pyramid else \
            [m.proj for m in self.modules() if isinstance(m, PEG)]
        for conv in convs:
            fan_out = conv.kernel_size[0] * conv.kernel_size[1] * conv.out_channels // conv.groups
            nn.init.normal_(conv.weight, std=(2.0 / fan_out) ** 0.5)
            nn.init.zeros_(conv.bias)
        if getattr(self, 'cls_token', None) is not None:
            nn.init.normal_(self.cls_token, std=1e-6)

    # ---- forward --------------------------------------------------------------------------------------
    def forward_stem(self, x: Tensor) -> Tensor:
        """Pyramid: the image as channel-last pixels for stage 0's embedding, (B, C, H, W) -> (B, H, W, C); plain:
        the patch embedding, (B, C, H, W) -> (B, h, w, C')."""
        return nchw_to_nhwc(x) if self.pyramid else self.patch_embed(x)

    def forward_tokens(self, x: Tensor) -> tuple[dict[int, Tensor], Optional[Tensor]]:
        """Plain form: every built block in turn; the (B, h, w, C) maps of ``out_indices`` (the last one
        normalised) and the cls token (B, 1, C) of the last output (None without one)."""
        x = self.forward_stem(x)
        B, h, w, C = x.shape
        x = x.reshape(B, h * w, C)  # (B, h, w, C) -> (B, N, C)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(B, -1, -1), x], dim=1)
        x = self.pos_drop(x)
        P = self.num_prefix_tokens
        feats, prefix = {}, None
        for index, block in enumerate(self.blocks):
            x = block(x, (h, w))
            if index == len(self.blocks) - 1:
                x = self.norm(x)
            if index in self.out_indices:
                feats[index] = x[:, P:].reshape(B, h, w, C)  # (B, N, C) -> (B, h, w, C)
                prefix = x[:, :P] if P else None
        return feats, prefix

    def forward_features(self, x: Tensor) -> dict[int, Tensor]:
        """The NHWC map of each stage (pyramid) or block (plain) in ``out_indices``."""
        return super().forward_features(x) if self.pyramid else self.forward_tokens(x)[0]

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        """One (B, C, h, w) map per ``out_indices`` entry, then (``output_cls_token``) the cls token (B, C), then
        the ``cls_output`` feature."""
        self.check_input(x)
        if self.pyramid:
            return super().forward(x)
        feats, prefix = self.forward_tokens(x)
        outs = self.format_outputs(feats)
        if self.output_cls_token:
            outs = (*outs, *prefix.unbind(1))  # (B, 1, C) -> (B, C)
        return self.append_cls_output(outs, prefix[:, 0] if prefix is not None else None)  # (B, 1, C) -> (B, C)
