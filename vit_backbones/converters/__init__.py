"""Pure state-dict converters between checkpoint layouts (timm, official, mmdet/mmseg) and ours.

Importing this package imports every family's converter file, which registers its layouts in
:mod:`.registry`; a new family adds one file here and changes nothing else.
"""
import importlib
import pkgutil

from .common import CheckpointMismatchError, Converted, adapt_input_conv, backbone_state_dict, unwrap_state_dict
from .registry import (
    FAMILIES,
    OURS,
    CheckpointFamily,
    ConversionReport,
    Layout,
    UnknownLayoutError,
    convert_to_ours,
    export_from_ours,
    get_family,
    identify,
    register_family,
)

__all__ = [
    'CheckpointMismatchError', 'Converted', 'adapt_input_conv', 'backbone_state_dict', 'unwrap_state_dict',
    'FAMILIES', 'OURS', 'CheckpointFamily', 'ConversionReport', 'Layout', 'UnknownLayoutError', 'convert_to_ours',
    'export_from_ours', 'get_family', 'identify', 'register_family',
]
for _info in pkgutil.iter_modules(__path__):
    if _info.name not in ('common', 'registry', 'files'):
        importlib.import_module(f'{__name__}.{_info.name}')
