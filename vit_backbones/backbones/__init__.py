"""Registered backbones: importing this package imports every family file here, which registers its classes.

A new family is one new file in this folder that lists its public classes in ``__all__``; nothing here changes.
"""
import importlib
import pkgutil

from .base import BaseBackbone, parse_out_indices

__all__ = ['BaseBackbone', 'parse_out_indices']
for _info in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name):
    if _info.name != 'base':
        _module = importlib.import_module(f'{__name__}.{_info.name}')
        for _name in _module.__all__:
            globals()[_name] = getattr(_module, _name)
            __all__.append(_name)
