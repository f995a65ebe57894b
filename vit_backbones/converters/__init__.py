"""Pure state-dict converters between checkpoint layouts (timm, official) and ours."""
from .common import CheckpointMismatchError, Converted, unwrap_state_dict
from .swin import (convert_swin_to_ours, detect_swin_layout, swin_official_to_ours, swin_ours_to_timm,
                   swin_timm_to_ours)

__all__ = [
    'CheckpointMismatchError', 'Converted', 'unwrap_state_dict', 'convert_swin_to_ours', 'detect_swin_layout',
    'swin_official_to_ours', 'swin_ours_to_timm', 'swin_timm_to_ours',
]
