"""vit_backbones: vision-transformer backbones for mmdet 3.x / mmseg 1.x, registered in scope ``vit_backbones``.

Importing the package registers every backbone in :data:`vit_backbones.registry.MODELS` and routes mmengine's
local checkpoint I/O through :mod:`vit_backbones.engine.checkpoint_io` (weights-only loads that accept mmengine
training checkpoints, errors that name the file, atomic saves).
"""
from . import backbones  # noqa: F401  (registers the backbones)
from .engine.checkpoint_io import register_checkpoint_io
from .registry import MODELS

register_checkpoint_io()

__version__ = '0.1.0'
__all__ = ['MODELS', '__version__']
