"""Tiny constructor arguments for every registered backbone, and the exact output sizes they must give.

A new backbone family adds one entry here; ``test_contract.py`` fails for any registered backbone that has none.
"""
from typing import Any, Optional

# name -> (constructor kwargs, {(H, W) input: [(h, w) per stage], or None: too small, ValueError})
TINY: dict[str, tuple[dict[str, Any], dict[tuple[int, int], Optional[list[tuple[int, int]]]]]] = {
    'SwinTransformer': (
        dict(arch=dict(embed_dim=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4)), window_size=7,
             drop_path_rate=0.1, use_abs_pos_embed=True, pretrain_img_size=64),
        {  # patch embed and patch merging round up (bottom/right padding)
            (224, 224): [(56, 56), (28, 28), (14, 14), (7, 7)],
            (230, 197): [(58, 50), (29, 25), (15, 13), (8, 7)],
            (112, 137): [(28, 35), (14, 18), (7, 9), (4, 5)],
            (31, 31): [(8, 8), (4, 4), (2, 2), (1, 1)],
        }),
    'PyramidVisionTransformer': (
        dict(arch=dict(embed_dims=(16, 16, 32, 32), depths=(1, 2, 1, 2), num_heads=(1, 1, 2, 2),
                       mlp_ratios=(2, 2, 2, 2), sr_ratios=(8, 4, 2, 1)),
             drop_path_rate=0.1, pretrain_img_size=64),
        {  # non-overlapping patch embeddings floor
            (224, 224): [(56, 56), (28, 28), (14, 14), (7, 7)],
            (230, 197): [(57, 49), (28, 24), (14, 12), (7, 6)],
            (112, 137): [(28, 34), (14, 17), (7, 8), (3, 4)],
            (31, 31): None,
        }),
    'PyramidVisionTransformerV2': (
        dict(arch=dict(embed_dims=(16, 16, 32, 32), depths=(1, 2, 1, 2), num_heads=(1, 1, 2, 2),
                       mlp_ratios=(2, 2, 2, 2), sr_ratios=(8, 4, 2, 1)),
             drop_path_rate=0.1),
        {  # overlapping patch embeddings round up
            (224, 224): [(56, 56), (28, 28), (14, 14), (7, 7)],
            (230, 197): [(58, 50), (29, 25), (15, 13), (8, 7)],
            (112, 137): [(28, 35), (14, 18), (7, 9), (4, 5)],
            (31, 31): [(8, 8), (4, 4), (2, 2), (1, 1)],
        }),
}
