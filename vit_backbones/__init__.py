"""vit_backbones: vision-transformer backbones for mmdet 3.x / mmseg 1.x, registered in scope ``vit_backbones``.

Importing the package only registers every backbone and neck in :data:`vit_backbones.registry.MODELS` (and the
layer-decay optimizer constructor in ``OPTIM_WRAPPER_CONSTRUCTORS``); it leaves mmengine's
checkpoint loaders and storage backends alone. Weights-only checkpoint loads and atomic saves
(:mod:`vit_backbones.engine.checkpoint_io`) are switched on explicitly: our ``tools/train.py`` and ``tools/test.py``
call :func:`vit_backbones.engine.register_checkpoint_io`; a config run by mmseg's or mmdet's own tools adds
``'vit_backbones.engine.safe_checkpoint_io'`` to its ``custom_imports``.
"""
from . import backbones, necks  # noqa: F401  (registers the backbones and necks)
from .engine import layer_decay  # noqa: F401  (registers LayerDecayOptimWrapperConstructor)
from .registry import MODELS

__version__ = '0.1.0'
__all__ = ['MODELS', '__version__']
