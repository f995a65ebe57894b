"""Analysis of trained backbones: the ViT paper's figures (filters, position embeddings, attention distance,
attention maps) for every family, from the shared attention's capture hook."""
from .figures import SUBCOMMANDS, run_attention_distance, run_attention_maps, run_filters, run_pos_embed
from .geometry import GeometryRecorder, Placement, calibrate_strides, grid_centres, locate
from .inputs import build_backbone, load_images
from .stats import (
    MeanAttentionDistance,
    QueryMaps,
    Rollout,
    attention_rollout,
    cosine_similarity_grid,
    filter_components,
    paint_keys,
)

__all__ = [
    'SUBCOMMANDS', 'run_attention_distance', 'run_attention_maps', 'run_filters', 'run_pos_embed',
    'GeometryRecorder', 'Placement', 'calibrate_strides', 'grid_centres', 'locate', 'build_backbone', 'load_images',
    'MeanAttentionDistance', 'QueryMaps', 'Rollout', 'attention_rollout', 'cosine_similarity_grid',
    'filter_components', 'paint_keys',
]
