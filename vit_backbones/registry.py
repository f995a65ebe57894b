"""Registries of vit_backbones: children of mmengine's root registries, scope ``vit_backbones``.

Every backbone and neck is registered here exactly once, and our optimizer-wrapper constructors (layer-wise lr
decay) beside them. The classification pieces (DeiT distillation, built on mmpretrain) are imported only when a
config asks the registry for them (mmengine imports a registry's ``locations`` on first lookup), so
``import vit_backbones`` does not import mmpretrain. Because the registry is a child of mmengine's root
``MODELS``, mmdet and mmseg configs reach our classes with the scoped type (``vit_backbones.SwinTransformer``),
which never clashes with their own classes of the same name.
"""
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import Registry

MODELS = Registry(
    'model', parent=MMENGINE_MODELS, scope='vit_backbones',
    locations=['vit_backbones.backbones', 'vit_backbones.necks', 'vit_backbones.classification'])
OPTIM_WRAPPER_CONSTRUCTORS = Registry(
    'optimizer wrapper constructor', parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS, scope='vit_backbones',
    locations=['vit_backbones.engine.layer_decay'])

__all__ = ['MODELS', 'OPTIM_WRAPPER_CONSTRUCTORS']
