"""Hybrid Vision Transformer: a ResNet stem whose map is embedded as tokens by a plain ViT (R50+ViT-B/16 and kin).

Papers: Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021, arXiv:2010.11929 (Section 3.1, "Hybrid
Architecture": R50+ViT-B/16); Steiner et al., "How to train your ViT?", TMLR 2022, arXiv:2106.10270 (the AugReg
R+Ti/16, R26+S/32, R50+L/32 checkpoints). The CNN is BiT's ResNet v2 backbone without pre-activation: Kolesnikov et
al., "Big Transfer (BiT)", arXiv:1912.11370, with weight standardisation (Qiao et al., arXiv:1903.10520) and group
normalisation (Wu & He, arXiv:1803.08494). Reference code: timm ``vision_transformer_hybrid.py`` (``_resnetv2`` with
``padding_same=True``), ``resnetv2.py`` (``Bottleneck``, ``create_resnetv2_stem(stem_type='same')``),
``layers/std_conv.py`` (``StdConv2dSame``), ``layers/padding.py``; google-research/vision_transformer
(``vit_jax/models_resnet.py``).

What timm computes for every hybrid preset, and this code with it:

* Every CNN convolution (``StdConv2dSame``, eps 1e-8, no bias) standardises its weight per output channel over
  (in, kh, kw): ``w_hat = (w - mean) / sqrt(var + 1e-8)`` with the biased variance, and pads TensorFlow's 'SAME'
  way, which depends on the input size: a side ``x`` with kernel ``k`` and stride ``s`` gives ``ceil(x / s)``
  outputs after ``(ceil(x / s) - 1) * s + k - x`` zeros (at least 0), ``floor(total / 2)`` before and the rest
  after (7x7/2 pads 2 | 3 on even sides, 3 | 3 on odd ones; 3x3/2 pads 0 | 1 and 1 | 1; 1x1 never pads).
* Norms: GroupNorm, 32 groups, eps 1e-5, affine; ReLU after it unless noted.
* Stem: conv 7x7/2 (``stem_width``, 64) -> GroupNorm -> ReLU -> max pool 3x3/2 with 'SAME' padding by -inf:
  stride 4.
* Stages (non-pre-activation bottlenecks, the stride on the 3x3): stage ``i`` holds ``cnn_depths[i]`` blocks of
  output width ``cnn_widths[i]`` (256, 512, 1024, 2048) and bottleneck width a quarter of it, stride 1 in stage
  0 and 2 after. A block is ``ReLU(GN(conv1x1(ReLU(GN(conv3x3/s(ReLU(GN(conv1x1(x))))))) + shortcut)``, the
  last GroupNorm without ReLU; the shortcut is ``GN(conv1x1/s(x))`` (no ReLU) in a stage's first block and ``x``
  after.
* Projection: a conv of kernel = stride = ``patch_size`` with bias (1 for the R26/R50 hybrids, 8 for the stem-only
  R+Ti) from the CNN's last map to ``embed_dim`` channels; the map is zero-padded at the bottom/right to whole
  patches first (timm's ``dynamic_img_pad``).
* Then the ViT of :mod:`.vit` unchanged: cls token, learned position embedding resized to the token grid (bicubic,
  antialiased when shrinking), pre-norm blocks (LayerNorm eps 1e-6, GELU MLP ratio 4, qkv bias), final LayerNorm.

Sizes: every stride-2 step rounds up, so a map of stride ``s`` is ``ceil(H / s) x ceil(W / s)`` at any input
size (1x1 included), and the token grid is ``ceil(H / stride)`` with ``stride = 4 * 2**(stages - 1) *
patch_size`` (``4 * patch_size`` for the stem alone). GroupNorm needs more than one value per group: the presets
(64 channels or more in every norm) meet that at every size; a custom arch with 32-channel norms (``stem_width=32``
or a 128-wide stage) does not on a map of a single pixel, and PyTorch raises there. The position grid learned at
``pretrain_img_size`` is timm's, ``floor(ceil(side / CNN stride) / patch_size)``.

Presets (timm's names without ``vit_`` and the resolution): ``'tiny_r_s16_p8'`` (stem only, patch 8, token stride
32 despite the name; ViT-Ti), ``'small_r26_s32'`` and ``'base_r26_s32'`` (ResNet-26 stages 2-2-2-2, stride 32;
ViT-S / ViT-B), ``'base_r50_s16'`` (ResNet-50's first three stages 3-4-9, stride 16; ViT-B: the paper's
R50+ViT-B/16), ``'large_r50_s32'`` (ResNet-50 3-4-6-3, stride 32; ViT-L).

Dense outputs: the ViT maps of the blocks in ``out_indices`` (as :class:`.VisionTransformer`: the last one after the
final norm), preceded by the raw NCHW maps of the ResNet stages in ``cnn_out_indices`` (stage ``i`` at stride
``4 * 2**i``, ``cnn_widths[i]`` channels). ``out_channels`` / ``out_strides`` list every output in that order.
"""
from typing import Any, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..converters import vit_hybrid as _vit_hybrid_layouts  # noqa: F401  (registers the 'vit_hybrid' layouts)
from ..layers import BackboneStage, PatchEmbed
from ..registry import MODELS
from .base import BaseBackbone, check_int, resolve_arch
from .vit import VisionTransformer, to_2tuple

__all__ = ['HybridVisionTransformer']

ARCHS: dict[str, dict[str, Any]] = {
    'tiny_r_s16_p8': dict(embed_dim=192, depth=12, num_heads=3, cnn_depths=(), patch_size=8),
    'small_r26_s32': dict(embed_dim=384, depth=12, num_heads=6, cnn_depths=(2, 2, 2, 2)),
    'base_r26_s32': dict(embed_dim=768, depth=12, num_heads=12, cnn_depths=(2, 2, 2, 2)),
    'base_r50_s16': dict(embed_dim=768, depth=12, num_heads=12, cnn_depths=(3, 4, 9)),
    'large_r50_s32': dict(embed_dim=1024, depth=24, num_heads=16, cnn_depths=(3, 4, 6, 3)),
}
ARCH_KEYS = ('embed_dim', 'depth', 'num_heads', 'cnn_depths')
ARCH_OPTIONAL = ('mlp_ratio', 'patch_size', 'stem_width', 'cnn_widths')
CNN_WIDTHS = (256, 512, 1024, 2048)  # ResNet stage widths; bottlenecks are a quarter of them
GROUPS = 32  # GroupNorm groups of every CNN norm
GN_EPS = 1e-5
WS_EPS = 1e-8  # weight standardisation of the hybrids' convolutions (timm's _resnetv2)


# ---- 'SAME' padding and the weight-standardised convolution ----------------------------------------------------
def same_padding(size: Union[int, Tensor], kernel: int, stride: int) -> tuple[Any, Any]:
    """TensorFlow 'SAME' padding (before, after) of one side of ``size`` for a kernel >= its stride.

    Integer arithmetic only, so that traced and compiled graphs keep the size dependence.
    """
    total = ((size + stride - 1) // stride - 1) * stride + kernel - size  # >= 0 since kernel >= stride
    return total // 2, total - total // 2


def pad_same(x: Tensor, kernel: int, stride: int, value: float = 0.0) -> Tensor:
    """Pad a (B, C, H, W) map the 'SAME' way so that a ``kernel``/``stride`` window gives ceil(H / stride) rows."""
    top, bottom = same_padding(x.shape[2], kernel, stride)
    left, right = same_padding(x.shape[3], kernel, stride)
    return F.pad(x, (left, right, top, bottom), value=value)


class StdConv2d(nn.Conv2d):
    """Convolution without bias whose weight is standardised per output channel, with TensorFlow 'SAME' padding.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        kernel_size: Square kernel side (odd, or 1).
        stride: Stride; a strided kernel > 1 pads the input by its size ('SAME'), a 1x1 never pads.
        eps: Added to the weight variance.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 eps: float = WS_EPS) -> None:
        if kernel_size % 2 == 0 or (kernel_size > 1 and kernel_size < stride):
            raise ValueError(f'StdConv2d supports odd kernels not smaller than the stride, got {kernel_size}/{stride}')
        # a stride-1 odd kernel pads (k - 1) / 2 on each side at every size: 'SAME' without the input dependence
        super().__init__(in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2 if stride == 1 else 0,
                         bias=False)
        self.eps = eps
        self.pad_dynamic = stride > 1 and kernel_size > 1

    def standardized_weight(self) -> Tensor:
        """``(w - mean) / sqrt(var + eps)`` over each output channel's (in, kh, kw) weights, biased variance."""
        w = self.weight
        var, mean = torch.var_mean(w, dim=(1, 2, 3), correction=0, keepdim=True)
        return (w - mean) / torch.sqrt(var + self.eps)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C_in, H, W) -> (B, C_out, ceil(H / stride), ceil(W / stride))."""
        if self.pad_dynamic:
            x = pad_same(x, self.kernel_size[0], self.stride[0])
        return F.conv2d(x, self.standardized_weight(), None, self.stride, self.padding)


def group_norm(channels: int) -> nn.GroupNorm:
    """The CNN's norm: GroupNorm with 32 groups, eps 1e-5."""
    return nn.GroupNorm(GROUPS, channels, eps=GN_EPS)


# ---- the ResNet ---------------------------------------------------------------------------------------------
class ResNetStem(nn.Module):
    """conv 7x7/2 -> GroupNorm -> ReLU -> max pool 3x3/2 ('SAME' padding by -inf): (B, C, H, W) -> stride 4."""

    def __init__(self, in_channels: int, width: int) -> None:
        super().__init__()
        self.conv = StdConv2d(in_channels, width, 7, stride=2)
        self.norm = group_norm(width)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, width, ceil(H / 4), ceil(W / 4))."""
        x = F.relu(self.norm(self.conv(x)))
        return F.max_pool2d(pad_same(x, 3, 2, value=float('-inf')), 3, 2)


class Downsample(nn.Module):
    """The projection shortcut of a stage's first block: strided 1x1 conv -> GroupNorm (no ReLU)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv = StdConv2d(in_channels, out_channels, 1, stride=stride)
        self.norm = group_norm(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(self.conv(x))


class Bottleneck(nn.Module):
    """Non-pre-activation bottleneck (1x1, 3x3/stride, 1x1; GroupNorm after each), ReLU after the residual sum.

    Args:
        in_channels: Input channels.
        out_channels: Output channels; the bottleneck is a quarter of them.
        stride: Stride of the 3x3 conv (and of the shortcut).
        project: Use a projection shortcut (a stage's first block) instead of the identity.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, project: bool = False) -> None:
        super().__init__()
        mid = out_channels // 4
        self.downsample = Downsample(in_channels, out_channels, stride) if project else None
        self.conv1 = StdConv2d(in_channels, mid, 1)
        self.norm1 = group_norm(mid)
        self.conv2 = StdConv2d(mid, mid, 3, stride=stride)
        self.norm2 = group_norm(mid)
        self.conv3 = StdConv2d(mid, out_channels, 1)
        self.norm3 = group_norm(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C_in, H, W) -> (B, C_out, ceil(H / stride), ceil(W / stride))."""
        shortcut = x if self.downsample is None else self.downsample(x)
        x = F.relu(self.norm1(self.conv1(x)))
        x = F.relu(self.norm2(self.conv2(x)))
        return F.relu(self.norm3(self.conv3(x)) + shortcut)


class ResNetStage(BackboneStage):
    """``depth`` bottlenecks, the first with the stride and the projection shortcut; NCHW in and out."""

    def __init__(self, in_channels: int, out_channels: int, depth: int, stride: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([
            Bottleneck(in_channels if i == 0 else out_channels, out_channels, stride if i == 0 else 1, i == 0)
            for i in range(depth)])

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = self.run_block(block, x)
        return x


class ResNetV2(nn.Module):
    """timm's ``ResNetV2`` as the hybrids build it: 'SAME' stem and non-pre-activation stages, no head.

    Args:
        in_channels: Image channels.
        stem_width: Stem channels.
        depths: Blocks per stage (may be empty: the stem alone).
        widths: Output channels per stage.
    """

    def __init__(self, in_channels: int, stem_width: int, depths: Sequence[int], widths: Sequence[int]) -> None:
        super().__init__()
        self.stem = ResNetStem(in_channels, stem_width)
        ins = (stem_width, *widths[:-1])
        self.stages = nn.ModuleList([ResNetStage(c_in, c_out, d, 1 if i == 0 else 2)
                                     for i, (c_in, c_out, d) in enumerate(zip(ins, widths, depths))])
        self.num_features = widths[-1] if depths else stem_width

    def forward(self, x: Tensor) -> list[Tensor]:
        """Images (B, C, H, W) -> the stem's map then each stage's, NCHW (stage i at stride 4 * 2**i).

        The CNN always runs on a contiguous NCHW image: a channels-last or strided input would otherwise pick other
        convolution kernels, whose rounding the 'SAME'-padded, weight-standardised stages amplify (a copy only for
        such inputs; the output does not depend on the input's memory layout).
        """
        maps = [self.stem(x.contiguous())]
        for stage in self.stages:
            maps.append(stage(maps[-1]))
        return maps


class HybridEmbed(PatchEmbed):
    """The hybrid patch embedding: the ResNet (``backbone``), then a ``patch_size`` patch projection (``proj``) of
    its last map, zero-padded at the bottom/right to whole patches.

    Args:
        in_channels: Image channels.
        embed_dim: Token channels.
        patch_size: Projection kernel = stride on the CNN map.
        stem_width: Stem channels.
        depths: ResNet blocks per stage.
        widths: ResNet stage widths.
        bias: Bias in the projection.
    """

    def __init__(self, in_channels: int, embed_dim: int, patch_size: int, stem_width: int, depths: Sequence[int],
                 widths: Sequence[int], bias: bool = True) -> None:
        backbone = ResNetV2(in_channels, stem_width, depths, widths)
        super().__init__(backbone.num_features, embed_dim, patch_size, pad_input=True, bias=bias)
        self.backbone = backbone

    def forward_maps(self, x: Tensor) -> tuple[list[Tensor], Tensor]:
        """Images (B, C, H, W) -> (the ResNet stages' NCHW maps, tokens (B, h, w, embed_dim))."""
        maps = self.backbone(x)
        return maps[1:], super().forward(maps[-1])

    def forward(self, x: Tensor) -> Tensor:
        """Images (B, C, H, W) -> tokens (B, h, w, embed_dim)."""
        return self.forward_maps(x)[1]


# ---- the backbone ------------------------------------------------------------------------------------------
def _check_arch(cfg: dict[str, Any]) -> tuple[tuple[int, ...], tuple[int, ...], int, int]:
    """Validate the CNN entries of an arch; returns (cnn_depths, cnn_widths, stem_width, patch_size)."""
    depths = cfg['cnn_depths']
    depths = tuple(depths) if isinstance(depths, (list, tuple)) else depths
    if not isinstance(depths, tuple) or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in depths):
        raise ValueError(f"arch['cnn_depths'] must be a (possibly empty) sequence of integers >= 1, got {depths!r}")
    widths = tuple(cfg.get('cnn_widths', CNN_WIDTHS[:len(depths)]))
    if len(widths) != len(depths) or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 or c % (4 * GROUPS)
                                         for c in widths):
        raise ValueError(f"arch['cnn_widths'] must give one width per ResNet stage ({len(depths)}), each a multiple "
                         f'of {4 * GROUPS} (its bottleneck quarter is group-normed in {GROUPS} groups), got {widths!r}')
    stem = cfg.get('stem_width', 64)
    if isinstance(stem, bool) or not isinstance(stem, int) or stem < 1 or stem % GROUPS:
        raise ValueError(f"arch['stem_width'] must be a positive multiple of {GROUPS} (GroupNorm groups), got {stem!r}")
    patch = check_int("arch['patch_size']", cfg.get('patch_size', 1))
    return depths, widths, stem, patch


@MODELS.register_module()
class HybridVisionTransformer(VisionTransformer):
    """Hybrid ViT (R50+ViT-B/16, R26+ViT-S/32, R+ViT-Ti, R50+ViT-L/32): a ResNet v2 stem (weight-standardised convs,
    GroupNorm, TensorFlow 'SAME' padding) embeds the image, a plain ViT runs on its tokens.

    Args:
        arch: ``'tiny_r_s16_p8'``, ``'small_r26_s32'``, ``'base_r26_s32'``, ``'base_r50_s16'``,
            ``'large_r50_s32'`` (timm's presets), or a dict with ``embed_dim``, ``depth``, ``num_heads``,
            ``cnn_depths`` (ResNet blocks per stage; empty: the stem alone) and optionally ``mlp_ratio`` (4.0),
            ``patch_size`` (projection patch on the CNN map, 1), ``stem_width`` (64, a multiple of 32) and
            ``cnn_widths`` (256, 512, 1024, 2048; multiples of 128).
        in_channels: Input image channels.
        pretrain_img_size: Image size (int or (H, W)) the position embedding is learned for.
        qkv_bias: Bias in the qkv projections.
        patch_bias: Bias in the patch projection.
        layer_scale_init_value: Initial LayerScale value; 0 (the hybrids') disables it.
        drop_rate: Dropout after the position embedding, the attention projections and in the MLPs.
        attn_drop_rate: Dropout on attention weights.
        drop_path_rate: Stochastic depth of the ViT blocks, rising linearly from 0 (the ResNet has none, as timm).
        final_norm: LayerNorm on the last block's output.
        output_cls_token: Return the cls token of the last output, (B, C), after the maps.
        interpolate_mode: Interpolation of the position embedding to other grids.
        interpolate_antialias: Antialias when the embedding shrinks (timm: True).
        out_indices: ViT blocks to output (negative counts from the end); later blocks are not built.
        cnn_out_indices: ResNet stages whose maps go first in the outputs (stage i at stride ``4 * 2**i``).
        frozen_stages: -1 nothing; 0 the whole hybrid patch embedding (ResNet stem, stages and projection), cls
            token and position embedding; k those and ViT blocks 0..k-1 (and ``norm`` with the last block).
        norm_eval: Kept for the contract: the GroupNorms and LayerNorms have no running statistics.
        with_cp: Non-reentrant activation checkpointing of every ViT block and every ResNet bottleneck.
        fused_attn: ``F.scaled_dot_product_attention`` (True), the math path (False) or the package default (None).
        init_cfg: e.g. ``dict(type='Pretrained', checkpoint=PATH)`` with a timm hybrid checkpoint or one of ours.
        cls_output: ``'avg_featmap'`` or ``'cls_token'``, as :class:`VisionTransformer`.
    """

    checkpoint_family = 'vit_hybrid'
    stem_conv_keys = ('patch_embed.backbone.stem.conv.weight',)

    def __init__(self, arch: Union[str, dict] = 'base_r50_s16', in_channels: int = 3,
                 pretrain_img_size: Union[int, Sequence[int]] = 224, qkv_bias: bool = True, patch_bias: bool = True,
                 layer_scale_init_value: float = 0.0, drop_rate: float = 0.0, attn_drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0, final_norm: bool = True, output_cls_token: bool = False,
                 interpolate_mode: str = 'bicubic', interpolate_antialias: bool = True,
                 out_indices: Union[int, Sequence[int]] = -1, cnn_out_indices: Sequence[int] = (),
                 frozen_stages: int = -1, norm_eval: bool = False, with_cp: bool = False,
                 fused_attn: Optional[bool] = None, init_cfg: Union[dict, list, None] = None,
                 cls_output: Optional[str] = None) -> None:
        cfg = resolve_arch(arch, ARCHS, ARCH_KEYS, optional=ARCH_OPTIONAL)
        depths, widths, stem_width, patch = _check_arch(cfg)
        cnn_stride = 4 * 2 ** max(len(depths) - 1, 0)
        stride = cnn_stride * patch
        # timm's grid: the CNN rounds up ('SAME'), the projection floors
        grid = tuple(-(-side // cnn_stride) // patch for side in to_2tuple(pretrain_img_size, 'pretrain_img_size'))
        if min(grid) < 1:
            raise ValueError(f'pretrain_img_size {pretrain_img_size!r} gives no token: this hybrid needs sides of '
                             f'at least {cnn_stride * (patch - 1) + 1} (a patch of {patch} on its stride-{cnn_stride} '
                             'map)')
        cnn = self._check_cnn_out_indices(cnn_out_indices, len(depths))
        vit_arch = {k: cfg[k] for k in ('embed_dim', 'depth', 'num_heads', 'mlp_ratio') if k in cfg}
        self._cnn_arch = (patch, stem_width, depths, widths)  # read by build_patch_embed
        super().__init__(vit_arch, stride, in_channels, tuple(g * stride for g in grid), qkv_bias=qkv_bias,
                         patch_bias=patch_bias, layer_scale_init_value=layer_scale_init_value, drop_rate=drop_rate,
                         attn_drop_rate=attn_drop_rate, drop_path_rate=drop_path_rate, final_norm=final_norm,
                         output_cls_token=output_cls_token, interpolate_mode=interpolate_mode,
                         interpolate_antialias=interpolate_antialias, out_indices=out_indices,
                         frozen_stages=frozen_stages, norm_eval=norm_eval, with_cp=with_cp, fused_attn=fused_attn,
                         init_cfg=init_cfg, cls_output=cls_output)
        self.cnn_out_indices = cnn
        self.cnn_stride = cnn_stride
        self._cnn_channels = tuple(widths[i] for i in cnn)
        self._cnn_strides = tuple(4 * 2 ** i for i in cnn)

    def build_patch_embed(self, in_channels: int, dim: int, patch_size: int, bias: bool) -> nn.Module:
        """The ResNet, then patches of its last map (``patch_size`` here is the total token stride)."""
        patch, stem_width, depths, widths = self._cnn_arch
        return HybridEmbed(in_channels, dim, patch, stem_width, depths, widths, bias)

    @staticmethod
    def _check_cnn_out_indices(indices: Sequence[int], num_stages: int) -> tuple[int, ...]:
        """``cnn_out_indices`` as non-negative ResNet stage indices, in the order given (may be empty)."""
        indices = (indices,) if isinstance(indices, int) else tuple(indices)
        parsed = []
        for index in indices:
            if isinstance(index, bool) or not isinstance(index, int) or not -num_stages <= index < num_stages:
                raise ValueError(f'cnn_out_indices entry {index!r} is invalid: this arch has {num_stages} ResNet '
                                 f'stages, so entries must be integers in [{-num_stages}, {num_stages - 1}]')
            parsed.append(index % num_stages)
        if len(set(parsed)) != len(parsed):
            raise ValueError(f'cnn_out_indices {indices} name the same stage twice')
        return tuple(parsed)

    def _finish_build(self) -> None:
        """Every backbone's build checks, init and freezing (over the ViT outputs); then the ResNet maps go in front
        of the ViT maps in ``out_channels`` / ``out_strides``."""
        super()._finish_build()
        self.out_channels = (*self._cnn_channels, *self.out_channels)
        self.out_strides = (*self._cnn_strides, *self.out_strides)

    # ---- structure ------------------------------------------------------------------------------------
    @BaseBackbone.with_cp.setter  # type: ignore[attr-defined]
    def with_cp(self, value: bool) -> None:
        """Checkpoint the ViT blocks (as every backbone) and the ResNet bottlenecks."""
        BaseBackbone.with_cp.fset(self, value)  # type: ignore[attr-defined]
        embed = self._modules.get('patch_embed')
        for stage in embed.backbone.stages if isinstance(embed, HybridEmbed) else ():
            stage.with_cp = bool(value)

    def random_init(self) -> None:
        """The ViT as :class:`VisionTransformer`; the ResNet as timm's: convolutions Kaiming-normal (fan-out, ReLU),
        GroupNorms 1/0; the projection PyTorch's default."""
        super().random_init()
        for module in self.patch_embed.backbone.modules():
            if isinstance(module, StdConv2d):
                nn.init.kaiming_normal_(module.weight, mode='fan_out', nonlinearity='relu')
            elif isinstance(module, nn.GroupNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    # ---- forward --------------------------------------------------------------------------------------
    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        """The (B, C_i, ceil(H / s_i), ceil(W / s_i)) maps of ``cnn_out_indices`` then ``out_indices``, then
        (``output_cls_token``) the cls token (B, C), then the ``cls_output`` feature."""
        self.check_input(x)
        maps, tokens = self.patch_embed.forward_maps(x)
        feats, prefix = self.run_blocks(*self.embed_grid(tokens))
        vit_maps = self.format_outputs(feats)
        outs = (*(maps[i].contiguous() for i in self.cnn_out_indices), *vit_maps)
        if self.output_cls_token and prefix is not None:
            outs = (*outs, *prefix.unbind(1))  # (B, P, C) -> P x (B, C)
        return self.append_cls_output(outs, self.cls_feature(prefix), vit_maps)
