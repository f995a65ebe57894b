"""ViTDet's simple feature pyramid: a multi-scale neck built from the last map of a plain (single-scale) backbone.

Each output level resamples the backbone's last map by one scale factor (4: two stride-2 transposed convolutions
with a norm and GELU between them; 2: one transposed convolution; 1: identity; 0.5: 2x2 max pooling), then
projects it to ``out_channels`` with a 1x1 and a 3x3 convolution, each followed by the norm. The levels are
independent: no top-down pathway and no sums across levels. An optional extra level (``add_p6``) subsamples the
coarsest output with a stride-2 1x1 max pool, as detectron2's ``LastLevelMaxPool``.

Sizes for an ``h x w`` input map: scales 4, 2 and 1 give exactly ``h * scale x w * scale``, 0.5 floors
(``h // 2``) and the extra level rounds up (``ceil(h / 2)``).

References:
    Li et al., "Exploring Plain Vision Transformer Backbones for Object Detection", ECCV 2022, arXiv:2203.16527.
    detectron2 ``modeling/backbone/vit.py`` (``SimpleFeaturePyramid``) and ``layers/batch_norm.py``
    (``LayerNorm``, the channel LayerNorm registered here as ``LN2d``); mmdet ``projects/ViTDet/vitdet``.
"""
from collections import OrderedDict
from typing import Any, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from mmengine.registry import MODELS as MMENGINE_MODELS
from torch import Tensor, nn

from ..backbones.base import check_int
from ..registry import MODELS

__all__ = ['LayerNorm2d', 'SimpleFeaturePyramid']

SCALE_FACTORS = (4.0, 2.0, 1.0, 0.5)


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels at each position of an NCHW map (detectron2's ``LayerNorm``).

    Args:
        num_channels: Channels of the input map.
        eps: Added to the variance.
    """

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps

    def reset_parameters(self) -> None:
        """Unit scale, zero shift."""
        nn.init.ones_(self.weight)
        nn.init.zeros_(self.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = x.permute(0, 2, 3, 1)  # (B, C, H, W) -> (B, H, W, C)
        x = F.layer_norm(x, self.weight.shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)  # (B, H, W, C) -> (B, C, H, W)

    def extra_repr(self) -> str:
        return f'{self.weight.numel()}, eps={self.eps}'


if 'LN2d' not in MMENGINE_MODELS.module_dict:  # mmcv has no LN2d; never replace one someone else registered
    MMENGINE_MODELS.register_module('LN2d', module=LayerNorm2d)


def build_norm(norm_cfg: Optional[dict], channels: int) -> nn.Module:
    """An mmcv norm layer for ``channels`` (``LN2d`` gets detectron2's eps 1e-6 unless given); ``None``: identity."""
    if norm_cfg is None:
        return nn.Identity()
    cfg = dict(norm_cfg)
    if cfg['type'] in ('LN2d', LayerNorm2d):
        cfg.setdefault('eps', 1e-6)  # mmcv's build_norm_layer would default to 1e-5
    try:
        return build_norm_layer(cfg, channels)[1]
    except KeyError:
        raise ValueError(f"norm_cfg type {cfg['type']!r} is not a registered norm layer; expected e.g. 'LN2d', "
                         "'BN', 'SyncBN', 'GN' (with num_groups) or norm_cfg=None") from None


def build_resample(scale: float, channels: int, norm_cfg: Optional[dict]) -> tuple[nn.Module, int]:
    """The layers that resample a ``channels``-wide map by ``scale``, and the width they output."""
    if scale == 4.0:
        return nn.Sequential(OrderedDict(
            deconv1=nn.ConvTranspose2d(channels, channels // 2, kernel_size=2, stride=2),
            norm=build_norm(norm_cfg, channels // 2),
            act=nn.GELU(),
            deconv2=nn.ConvTranspose2d(channels // 2, channels // 4, kernel_size=2, stride=2),
        )), channels // 4
    if scale == 2.0:
        return nn.ConvTranspose2d(channels, channels // 2, kernel_size=2, stride=2), channels // 2
    if scale == 1.0:
        return nn.Identity(), channels
    return nn.MaxPool2d(kernel_size=2, stride=2), channels


class PyramidLevel(nn.Module):
    """One output level: resample by ``scale``, then a 1x1 and a 3x3 convolution, each followed by the norm.

    Args:
        scale: One of :data:`SCALE_FACTORS`.
        in_channels: Channels of the input map.
        out_channels: Channels of the output map.
        norm_cfg: mmcv norm config, or ``None`` for no norm (the convolutions then have a bias).
    """

    def __init__(self, scale: float, in_channels: int, out_channels: int, norm_cfg: Optional[dict]) -> None:
        super().__init__()
        self.resample, width = build_resample(scale, in_channels, norm_cfg)
        bias = norm_cfg is None
        self.lateral_conv = nn.Conv2d(width, out_channels, kernel_size=1, bias=bias)
        self.lateral_norm = build_norm(norm_cfg, out_channels)
        self.output_conv = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=bias)
        self.output_norm = build_norm(norm_cfg, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        x = self.lateral_norm(self.lateral_conv(self.resample(x)))
        return self.output_norm(self.output_conv(x))


def parse_scale_factors(scale_factors: Any) -> tuple[float, ...]:
    """Check ``scale_factors`` (a non-empty subset of 4, 2, 1, 0.5) and return them finest first."""
    expected = f'a non-empty sequence of distinct values from {SCALE_FACTORS}'
    if isinstance(scale_factors, (str, bytes)) or not isinstance(scale_factors, Sequence) or not scale_factors:
        raise ValueError(f'scale_factors must be {expected}, got {scale_factors!r}')
    bad = [s for s in scale_factors if isinstance(s, bool) or not isinstance(s, (int, float)) or s not in SCALE_FACTORS]
    if bad or len(set(scale_factors)) != len(scale_factors):
        raise ValueError(f'scale_factors must be {expected}, got {tuple(scale_factors)!r}')
    return tuple(sorted((float(s) for s in scale_factors), reverse=True))


@MODELS.register_module()
class SimpleFeaturePyramid(BaseModule):
    """ViTDet's simple feature pyramid over a backbone's last map; returns NCHW maps finest first.

    Args:
        in_channels: Channels of the backbone's last map (:meth:`for_backbone` reads them from the backbone).
        out_channels: Channels of every output map.
        scale_factors: Output scales relative to the input map, any of 4, 2, 1, 0.5 in any order.
        in_stride: Stride of the input map relative to the image; ``in_stride / scale`` must be an integer >= 1.
        add_p6: Append an extra level: the coarsest output subsampled by a stride-2 1x1 max pool.
        norm_cfg: mmcv norm config used after every convolution and between the two transposed convolutions of
            scale 4: ``LN2d`` (channel LayerNorm, eps 1e-6 unless given), ``BN``, ``SyncBN``, ``GN``...; ``None``
            for no norm, the convolutions then have a bias.
        init_cfg: mmengine init config, applied after the random init.
    """

    def __init__(self, in_channels: int, out_channels: int = 256,
                 scale_factors: Sequence[float] = SCALE_FACTORS, in_stride: int = 16, add_p6: bool = True,
                 norm_cfg: Optional[dict] = dict(type='LN2d'),
                 init_cfg: Union[dict, list, None] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.in_channels = check_int('in_channels', in_channels)
        self.out_channels = check_int('out_channels', out_channels)
        self.in_stride = check_int('in_stride', in_stride)
        self.scale_factors = parse_scale_factors(scale_factors)
        if norm_cfg is not None and not (isinstance(norm_cfg, dict) and 'type' in norm_cfg):
            raise ValueError(f"norm_cfg must be None or an mmcv norm config dict with a 'type', got {norm_cfg!r}")
        self.norm_cfg = None if norm_cfg is None else dict(norm_cfg)
        self.add_p6 = bool(add_p6)
        if self.scale_factors[0] > in_channels:
            raise ValueError(f'scale {self.scale_factors[0]:g} divides the channels by {self.scale_factors[0]:g}; '
                             f'expected in_channels >= {self.scale_factors[0]:g}, got {in_channels}')

        strides = []
        for scale in self.scale_factors:
            stride = self.in_stride / scale
            if stride < 1 or stride != int(stride):
                raise ValueError(f'in_stride={in_stride} at scale {scale:g} gives output stride {stride:g}; expected '
                                 f'an integer >= 1 (an in_stride divisible by {max(scale, 1):g})')
            strides.append(int(stride))
        self.out_strides = tuple(strides) + ((strides[-1] * 2,) if self.add_p6 else ())
        self.levels = nn.ModuleDict({
            f'stride{stride}': PyramidLevel(scale, self.in_channels, self.out_channels, self.norm_cfg)
            for scale, stride in zip(self.scale_factors, strides)})
        self.random_init()

    @classmethod
    def for_backbone(cls, backbone: nn.Module, **kwargs: Any) -> 'SimpleFeaturePyramid':
        """A pyramid over ``backbone``'s last output, with its ``out_channels[-1]`` and ``out_strides[-1]``.

        Args:
            backbone: A module exposing the tuples ``out_channels`` and ``out_strides`` (every vit_backbones
                backbone does).
            **kwargs: The other constructor arguments.
        """
        given = sorted({'in_channels', 'in_stride'} & kwargs.keys())
        if given:
            raise ValueError(f'for_backbone reads in_channels and in_stride from the backbone; got {given} too')
        channels, strides = getattr(backbone, 'out_channels', None), getattr(backbone, 'out_strides', None)
        if not (isinstance(channels, Sequence) and isinstance(strides, Sequence) and channels and strides):
            raise ValueError(f'for_backbone expects a backbone exposing non-empty out_channels and out_strides '
                             f'tuples; {type(backbone).__name__} has out_channels={channels!r}, '
                             f'out_strides={strides!r}')
        return cls(in_channels=channels[-1], in_stride=strides[-1], **kwargs)

    def random_init(self) -> None:
        """detectron2's ``c2_msra_fill`` for the 1x1 and 3x3 convolutions (Kaiming normal, fan-out, ReLU gain,
        zero bias); PyTorch's defaults for the transposed convolutions and the norms."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode='fan_out', nonlinearity='relu')
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif hasattr(module, 'reset_parameters'):
                module.reset_parameters()

    def init_weights(self) -> None:
        """Random init (:meth:`random_init`), then mmengine's ``init_cfg`` if one is given."""
        self.random_init()
        super().init_weights()

    def check_input(self, inputs: Sequence[Tensor]) -> Tensor:
        """Return the last map of ``inputs``, raising a ``ValueError`` unless it is what a backbone returns."""
        name = type(self).__name__
        if not isinstance(inputs, (tuple, list)) or not inputs:
            raise ValueError(f'{name} expects the non-empty tuple (or list) of NCHW maps a backbone returns, got '
                             f'{type(inputs).__name__}')
        if not all(isinstance(x, Tensor) and x.dim() == 4 for x in inputs):
            shapes = [tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__ for x in inputs]
            raise ValueError(f'{name} expects 4-D (B, C, H, W) tensors, got {shapes}')
        if inputs[-1].shape[1] != self.in_channels:
            raise ValueError(f'{name} expects its last input map to have in_channels={self.in_channels} channels, '
                             f'got shape {tuple(inputs[-1].shape)}')
        return inputs[-1]

    def forward(self, inputs: Sequence[Tensor]) -> tuple[Tensor, ...]:
        """Map the backbone's outputs (only the last is used) to ``len(out_strides)`` maps, finest first."""
        x = self.check_input(inputs)
        outs = [level(x) for level in self.levels.values()]
        if self.add_p6:
            outs.append(F.max_pool2d(outs[-1], kernel_size=1, stride=2))
        return tuple(outs)
