"""Registered necks: importing this package imports every neck file here, which registers its classes.

A new neck is one new file in this folder that lists its public classes in ``__all__``; nothing here changes.
"""
import importlib
import pkgutil

__all__: list[str] = []
for _info in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name):
    _module = importlib.import_module(f'{__name__}.{_info.name}')
    for _name in _module.__all__:
        globals()[_name] = getattr(_module, _name)
        __all__.append(_name)
