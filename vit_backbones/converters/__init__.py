"""Pure state-dict converters between checkpoint layouts (timm, official, mmdet/mmseg) and ours."""
from .common import CheckpointMismatchError, Converted, unwrap_state_dict
from .pvt import (convert_pvt_to_ours, detect_pvt_layout, pvt_mm_to_ours, pvt_official_to_ours,
                  pvt_ours_to_timm, pvt_timm_to_ours)
from .swin import (convert_swin_to_ours, detect_swin_layout, swin_mm_to_ours, swin_official_to_ours,
                   swin_ours_to_mm, swin_ours_to_timm, swin_timm_to_ours)

__all__ = [
    'CheckpointMismatchError', 'Converted', 'unwrap_state_dict', 'convert_swin_to_ours', 'detect_swin_layout',
    'convert_pvt_to_ours', 'detect_pvt_layout', 'pvt_mm_to_ours', 'pvt_official_to_ours', 'pvt_ours_to_timm',
    'pvt_timm_to_ours', 'swin_mm_to_ours', 'swin_official_to_ours', 'swin_ours_to_mm', 'swin_ours_to_timm',
    'swin_timm_to_ours',
]
