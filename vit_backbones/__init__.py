"""vit_backbones: vision-transformer backbones for mmdet 3.x / mmseg 1.x, registered in scope ``vit_backbones``."""
from .registry import MODELS
from . import backbones  # noqa: F401  (registers the backbones)

__version__ = '0.1.0'
__all__ = ['MODELS', '__version__']
