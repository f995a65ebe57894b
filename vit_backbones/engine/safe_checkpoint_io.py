"""Importing this module switches on safe checkpoint loading and atomic saving for mmengine.

It exists for runs started by a tool that is not ours, such as mmseg's or mmdet's own ``tools/train.py``: one
config line enables it before the Runner is built (configs are read, and their ``custom_imports`` imported, first)::

    custom_imports = dict(imports=['vit_backbones', 'vit_backbones.engine.safe_checkpoint_io'],
                          allow_failed_imports=False)

Our ``tools/train.py`` and ``tools/test.py`` call :func:`~vit_backbones.engine.checkpoint_io.register_checkpoint_io`
themselves. Importing :mod:`vit_backbones` alone changes nothing in mmengine.
"""
from .checkpoint_io import register_checkpoint_io

register_checkpoint_io()
