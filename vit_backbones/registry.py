"""Registries of vit_backbones: children of mmengine's root registries, scope ``vit_backbones``.

Every backbone and neck is registered here exactly once. Because the registry is a child of mmengine's root
``MODELS``, mmdet and mmseg configs reach our classes with the scoped type (``vit_backbones.SwinTransformer``),
which never clashes with their own classes of the same name.
"""
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import Registry

MODELS = Registry(
    'model', parent=MMENGINE_MODELS, scope='vit_backbones',
    locations=['vit_backbones.backbones'])

__all__ = ['MODELS']
