"""Torch-only building blocks shared by the backbone families."""
from .drop_path import DropPath, drop_path
from .format import nchw_to_nhwc, nhwc_to_nchw
from .mlp import Mlp
from .norm import get_act_layer, get_norm_layer
from .patch_embed import PatchEmbed
from .patch_merging import PatchMerging
from .pos_embed import resize_abs_pos_embed, resize_rel_pos_bias_table
from .window import (relative_position_index, shifted_window_mask, window_partition,
                     window_reverse)

__all__ = [
    'DropPath', 'drop_path', 'nchw_to_nhwc', 'nhwc_to_nchw', 'Mlp', 'get_act_layer', 'get_norm_layer',
    'PatchEmbed', 'PatchMerging', 'resize_abs_pos_embed', 'resize_rel_pos_bias_table',
    'relative_position_index', 'shifted_window_mask', 'window_partition', 'window_reverse',
]
