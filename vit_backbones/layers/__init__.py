"""Torch-only building blocks shared by the backbone families."""
from .attention import Attention, capture_attention, fused_attn_enabled, set_fused_attn
from .drop_path import DropPath, drop_path
from .format import (
    channels_last_weights,
    nchw_to_nhwc,
    nchw_to_nlc,
    nhwc_to_nchw,
    nhwc_to_nlc,
    nlc_to_nchw,
    nlc_to_nhwc,
    split_prefix,
)
from .inference import activate, residual_add
from .layer_scale import LayerScale
from .mlp import Mlp
from .norm import QuickGELU, get_act_layer, get_norm_layer
from .patch_embed import PatchEmbed
from .patch_merging import PatchMerging
from .pos_embed import resample_abs_pos_embed, resize_abs_pos_embed, resize_rel_pos_bias_table
from .rel_pos import decomposed_rel_pos_bias, rel_pos_table
from .stage import BackboneStage
from .window import (
    LayoutCache,
    WindowIndex,
    cyclic_shift,
    pad_to_windows,
    padded_key_mask,
    relative_position_index,
    shifted_window_mask,
    shuffle_partition,
    shuffle_reverse,
    window_grid,
    window_index,
    window_partition,
    window_reverse,
    window_shift,
    window_slots,
)
from .window_attention import WindowAttention

__all__ = [
    'Attention', 'capture_attention', 'fused_attn_enabled', 'set_fused_attn', 'DropPath', 'drop_path',
    'channels_last_weights', 'nchw_to_nhwc', 'nchw_to_nlc', 'nhwc_to_nchw', 'nhwc_to_nlc', 'nlc_to_nchw', 'nlc_to_nhwc',
    'split_prefix',
    'LayerScale', 'decomposed_rel_pos_bias', 'rel_pos_table',
    'Mlp', 'QuickGELU', 'get_act_layer', 'get_norm_layer', 'PatchEmbed', 'PatchMerging', 'resample_abs_pos_embed',
    'resize_abs_pos_embed', 'resize_rel_pos_bias_table', 'BackboneStage', 'cyclic_shift',
    'pad_to_windows', 'padded_key_mask', 'relative_position_index', 'shifted_window_mask', 'shuffle_partition',
    'shuffle_reverse', 'window_grid', 'window_partition', 'window_reverse', 'window_shift', 'WindowAttention',
    'LayoutCache', 'WindowIndex', 'window_index', 'window_slots', 'activate', 'residual_add',
]
