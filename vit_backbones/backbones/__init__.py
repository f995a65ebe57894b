"""Registered backbones; importing this package registers them in ``vit_backbones.registry.MODELS``."""
from .base import BaseBackbone, parse_out_indices
from .pvt import PyramidVisionTransformer, PyramidVisionTransformerV2
from .swin import SwinTransformer

__all__ = ['BaseBackbone', 'parse_out_indices', 'PyramidVisionTransformer', 'PyramidVisionTransformerV2',
           'SwinTransformer']
