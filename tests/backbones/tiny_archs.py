"""Tiny constructor arguments for every registered backbone, and the exact output sizes they must give.

A new backbone family adds one entry here; ``test_contract.py`` fails for any registered backbone that has none.
A backbone whose options change its structure adds variants named ``'Name@variant'``: every suite runs them too.
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
    'ShuffleTransformer': (
        dict(arch=dict(embed_dim=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 3, 4), dims=(16, 32, 48, 64),
                       token_dim=8), window_size=7, drop_path_rate=0.1),
        {  # the stem and patch merging round up; blocks pad to whole windows and mask the padding
            (224, 224): [(56, 56), (28, 28), (14, 14), (7, 7)],
            (230, 197): [(58, 50), (29, 25), (15, 13), (8, 7)],
            (112, 137): [(28, 35), (14, 18), (7, 9), (4, 5)],
            (31, 31): [(8, 8), (4, 4), (2, 2), (1, 1)],
        }),
    'CvT': (
        dict(arch=dict(embed_dims=(16, 32, 32), depths=(1, 1, 2), num_heads=(1, 2, 2)), drop_path_rate=0.1),
        {  # token embeddings pad their input to a multiple of the stride, so stages round up
            (224, 224): [(56, 56), (28, 28), (14, 14)],
            (230, 197): [(58, 50), (29, 25), (15, 13)],
            (112, 137): [(28, 35), (14, 18), (7, 9)],
            (31, 31): [(8, 8), (4, 4), (2, 2)],
        }),
    'VisionTransformer': (  # DeiT form: cls + distillation tokens, LayerScale, final norm
        dict(arch=dict(embed_dim=32, depth=4, num_heads=2, mlp_ratio=2.0), pretrain_img_size=64, distilled=True,
             layer_scale_init_value=0.1, drop_path_rate=0.1, out_indices=(0, 1, 2, 3)),
        {  # the patch embedding pads to whole patches: every block is ceil(H / 16) x ceil(W / 16)
            (224, 224): [(14, 14)] * 4,
            (230, 197): [(15, 13)] * 4,
            (112, 137): [(7, 9)] * 4,
            (31, 31): [(2, 2)] * 4,
        }),
    'VisionTransformer@vitdet': (  # ViTDet / SAM form: no tokens, windows (padded) + global blocks, rel pos
        dict(arch=dict(embed_dim=32, depth=4, num_heads=2, mlp_ratio=2.0), pretrain_img_size=64,
             with_cls_token=False, window_size=7, window_block_indexes=(0, 2), use_rel_pos=True, final_norm=False,
             drop_path_rate=0.1, out_indices=(0, 1, 2, 3)),
        {  # the patch embedding pads to whole patches: every block is ceil(H / 16) x ceil(W / 16)
            (224, 224): [(14, 14)] * 4,
            (230, 197): [(15, 13)] * 4,
            (112, 137): [(7, 9)] * 4,
            (31, 31): [(2, 2)] * 4,
        }),
    'HybridVisionTransformer': (  # R50+ViT form: three ResNet stages (stride 16), 1x1 patch projection
        dict(arch=dict(embed_dim=32, depth=4, num_heads=2, mlp_ratio=2.0, cnn_depths=(1, 2, 1), stem_width=64,
                       cnn_widths=(256, 256, 256)),
             pretrain_img_size=64, drop_path_rate=0.1, out_indices=(0, 1, 2, 3)),
        {  # every stride-2 step pads 'SAME' and rounds up: the tokens are ceil(H / 16) x ceil(W / 16)
            (224, 224): [(14, 14)] * 4,
            (230, 197): [(15, 13)] * 4,
            (112, 137): [(7, 9)] * 4,
            (31, 31): [(2, 2)] * 4,
        }),
    'HybridVisionTransformer@p8': (  # R+ViT-Ti form: the ResNet stem alone (stride 4), 8x8 patches of its map
        dict(arch=dict(embed_dim=32, depth=4, num_heads=2, mlp_ratio=2.0, cnn_depths=(), stem_width=64,
                       patch_size=8),
             pretrain_img_size=64, drop_path_rate=0.1, out_indices=(0, 1, 2, 3)),
        {  # the stem rounds up, the patches pad its map: ceil(ceil(H / 4) / 8) = ceil(H / 32)
            (224, 224): [(7, 7)] * 4,
            (230, 197): [(8, 7)] * 4,
            (112, 137): [(4, 5)] * 4,
            (31, 31): [(1, 1)] * 4,
        }),
    'CaiT': (  # talking-heads self-attention blocks with LayerScale; the class-attention head is not built
        dict(arch=dict(embed_dim=32, depth=4, num_heads=2, mlp_ratio=2.0, init_values=0.1), pretrain_img_size=64,
             drop_path_rate=0.1, out_indices=(0, 1, 2, 3)),
        {  # the patch embedding pads to whole patches: every block is ceil(H / 16) x ceil(W / 16)
            (224, 224): [(14, 14)] * 4,
            (230, 197): [(15, 13)] * 4,
            (112, 137): [(7, 9)] * 4,
            (31, 31): [(2, 2)] * 4,
        }),
    'CeiT': (  # I2T stem (conv 7x7/2 + BatchNorm + max pool 3x3/2, then 4x4 patches), LeFF blocks; no LCA
        dict(arch=dict(embed_dim=32, depth=4, num_heads=2, mlp_ratio=2.0), pretrain_img_size=64, stem_channels=8,
             drop_path_rate=0.1, out_indices=(0, 1, 2, 3)),
        {  # conv and pool round up, the 4x4 patches pad the pooled map: every block is ceil(H / 16) x ceil(W / 16)
            (224, 224): [(14, 14)] * 4,
            (230, 197): [(15, 13)] * 4,
            (112, 137): [(7, 9)] * 4,
            (31, 31): [(2, 2)] * 4,
        }),
    'ViTAdapter': (  # the official mmdet form: four interactions, extra extractors, deform_ratio 0.5
        dict(arch=dict(embed_dim=32, depth=4, num_heads=2, mlp_ratio=2.0), pretrain_img_size=64, conv_inplane=8,
             deform_num_heads=2, deform_ratio=0.5, init_values=1e-6, drop_path_rate=0.1),
        {  # the image is zero-padded to a multiple of 32 and level i cropped to ceil(H / 2**(i + 2))
            (224, 224): [(56, 56), (28, 28), (14, 14), (7, 7)],
            (230, 197): [(58, 50), (29, 25), (15, 13), (8, 7)],
            (112, 137): [(28, 35), (14, 18), (7, 9), (4, 5)],
            (31, 31): [(8, 8), (4, 4), (2, 2), (1, 1)],
        }),
    'LeViT': (  # bias tables laid out for 64x64 images (4x4, 2x2, 1x1 grids), resized at every other size
        dict(arch=dict(embed_dims=(16, 24, 32), key_dim=8, num_heads=(2, 3, 2), depths=(1, 2, 1)),
             pretrain_img_size=64, drop_path_rate=0.1),
        {  # the stem's four stride-2 convs and each shrink attention's stride-2 queries round up
            (224, 224): [(14, 14), (7, 7), (4, 4)],
            (230, 197): [(15, 13), (8, 7), (4, 4)],
            (112, 137): [(7, 9), (4, 5), (2, 3)],
            (31, 31): [(2, 2), (1, 1), (1, 1)],
        }),
    'CPVT': (  # plain CPVT: cls token, PEGs after blocks 0 and 2, final norm; no position table
        dict(arch=dict(embed_dim=32, depth=4, num_heads=2, mlp_ratio=2.0), peg_blocks=(0, 2), drop_path_rate=0.1,
             out_indices=(0, 1, 2, 3)),
        {  # the patch embedding pads to whole patches: every block is ceil(H / 16) x ceil(W / 16)
            (224, 224): [(14, 14)] * 4,
            (230, 197): [(15, 13)] * 4,
            (112, 137): [(7, 9)] * 4,
            (31, 31): [(2, 2)] * 4,
        }),
    'CPVT@pcpvt': (  # Twins-PCPVT: PVT-v1 stages with a PEG after each stage's first block
        dict(arch=dict(embed_dims=(16, 16, 32, 32), depths=(1, 2, 1, 2), num_heads=(1, 1, 2, 2),
                       mlp_ratios=(2, 2, 2, 2), sr_ratios=(8, 4, 2, 1)),
             drop_path_rate=0.1),
        {  # every patch embedding pads its input to a multiple of its stride: stages round up
            (224, 224): [(56, 56), (28, 28), (14, 14), (7, 7)],
            (230, 197): [(58, 50), (29, 25), (15, 13), (8, 7)],
            (112, 137): [(28, 35), (14, 18), (7, 9), (4, 5)],
            (31, 31): [(8, 8), (4, 4), (2, 2), (1, 1)],
        }),
    'DeepViT': (  # DeepViT-S form: conv stem, plain blocks 0-1, re-attention (scaled) in 2-3, residual factor 0.5
        dict(arch=dict(embed_dim=32, depth=4, num_heads=2, mlp_ratio=2.0, re_attention_start=2, transform_scale=True,
                       scale_adjustment=0.5, conv_stem=True),
             pretrain_img_size=64, drop_path_rate=0.1, out_indices=(0, 1, 2, 3)),
        {  # the stride-2 conv rounds up, the patches pad its map: ceil(ceil(H / 2) / 8) = ceil(H / 16)
            (224, 224): [(14, 14)] * 4,
            (230, 197): [(15, 13)] * 4,
            (112, 137): [(7, 9)] * 4,
            (31, 31): [(2, 2)] * 4,
        }),
    'DeepViT@16b': (  # DeepViT-16B form: patch conv, re-attention in every block
        dict(arch=dict(embed_dim=32, depth=4, num_heads=2, mlp_ratio=2.0), pretrain_img_size=64,
             drop_path_rate=0.1, out_indices=(0, 1, 2, 3)),
        {  # the patch embedding pads to whole patches: every block is ceil(H / 16) x ceil(W / 16)
            (224, 224): [(14, 14)] * 4,
            (230, 197): [(15, 13)] * 4,
            (112, 137): [(7, 9)] * 4,
            (31, 31): [(2, 2)] * 4,
        }),
}

# name -> (how stage sizes round, smallest input side): stage i of an (H, W) input is
# ceil or floor of (H / (4 * 2**i), W / (4 * 2**i)); smaller inputs get a ValueError saying so.
SIZE_RULES: dict[str, tuple[str, int]] = {
    'DeepViT': ('ceil', 1),
    'DeepViT@16b': ('ceil', 1),
    'SwinTransformer': ('ceil', 1),
    'PyramidVisionTransformer': ('floor', 32),
    'PyramidVisionTransformerV2': ('ceil', 1),
    'ShuffleTransformer': ('ceil', 1),
    'CvT': ('ceil', 1),
    'CaiT': ('ceil', 1),
    'CeiT': ('ceil', 1),
    'VisionTransformer': ('ceil', 1),
    'VisionTransformer@vitdet': ('ceil', 1),
    'ViTAdapter': ('ceil', 1),
    'HybridVisionTransformer': ('ceil', 1),
    'HybridVisionTransformer@p8': ('ceil', 1),
    'LeViT': ('ceil', 1),
    'CPVT': ('ceil', 1),
    'CPVT@pcpvt': ('ceil', 1),
}


def tiny_arch_with(name: str, **changes: Any) -> dict[str, Any]:
    """The tiny arch dict of ``name`` with some entries replaced."""
    return dict(TINY[name][0]['arch'], **changes)


# Constructor arguments out of range, each with the argument its ValueError must name. Every backbone also gets
# COMMON_BAD_ARGS.
COMMON_BAD_ARGS: list[tuple[dict[str, Any], str]] = [
    (dict(in_channels=0), 'in_channels'),
    (dict(drop_path_rate=-0.1), 'drop_path_rate'),
    (dict(drop_path_rate=1.5), 'drop_path_rate'),
    (dict(drop_rate=1.0), 'drop_rate'),
    (dict(attn_drop_rate=-1), 'attn_drop_rate'),
    (dict(frozen_stages=-2), 'frozen_stages'),
]
_PVT_BAD = [
    (dict(arch=dict(sr_ratios=(8, 0, 2, 1))), 'sr_ratios'),
    (dict(arch=dict(depths=(1, 0, 1, 2))), 'depths'),
    (dict(arch=dict(embed_dims=(16, 0, 32, 32))), 'embed_dims'),
    (dict(arch=dict(num_heads=(1, 3, 2, 2))), 'num_heads'),
    (dict(arch=dict(mlp_ratios=(2, -1, 2, 2))), 'mlp_ratios'),
]
_VIT_BAD = [
    (dict(patch_size=0), 'patch_size'),
    (dict(pretrain_img_size=8), 'pretrain_img_size'),
    (dict(layer_scale_init_value=-1.0), 'layer_scale_init_value'),
    (dict(arch=dict(embed_dim=0)), 'embed_dim'),
    (dict(arch=dict(depth=0)), 'depth'),
    (dict(arch=dict(num_heads=3)), 'num_heads'),
    (dict(arch=dict(mlp_ratio=0)), 'mlp_ratio'),
    (dict(window_block_indexes=(0, 7)), 'window_block_indexes'),
]
_HYBRID_BAD = [
    (dict(pretrain_img_size=0), 'pretrain_img_size'),
    (dict(layer_scale_init_value=-1.0), 'layer_scale_init_value'),
    (dict(arch=dict(embed_dim=0)), 'embed_dim'),
    (dict(arch=dict(depth=0)), 'depth'),
    (dict(arch=dict(num_heads=3)), 'num_heads'),
    (dict(arch=dict(mlp_ratio=0)), 'mlp_ratio'),
    (dict(arch=dict(patch_size=0)), 'patch_size'),
    (dict(arch=dict(stem_width=48)), 'stem_width'),
    (dict(arch=dict(cnn_depths=(1, 0, 1))), 'cnn_depths'),
    (dict(arch=dict(cnn_widths=(128, 192, 256))), 'cnn_widths'),
    (dict(cnn_out_indices=(3,)), 'cnn_out_indices'),
]
_DEEPVIT_BAD = [
    (dict(pretrain_img_size=8), 'pretrain_img_size'),
    (dict(arch=dict(embed_dim=0)), 'embed_dim'),
    (dict(arch=dict(depth=0)), 'depth'),
    (dict(arch=dict(num_heads=3)), 'num_heads'),
    (dict(arch=dict(mlp_ratio=0)), 'mlp_ratio'),
    (dict(arch=dict(re_attention_start=5)), 're_attention_start'),
    (dict(arch=dict(re_attention_start=-1)), 're_attention_start'),
    (dict(arch=dict(scale_adjustment=0)), 'scale_adjustment'),
    (dict(arch=dict(transform_scale=1)), 'transform_scale'),
    (dict(arch=dict(conv_stem='yes')), 'conv_stem'),
]
BAD_ARGS: dict[str, list[tuple[dict[str, Any], str]]] = {
    'DeepViT': _DEEPVIT_BAD + [(dict(patch_size=15), 'patch_size'), (dict(patch_size=0), 'patch_size')],
    'DeepViT@16b': _DEEPVIT_BAD + [(dict(patch_size=0), 'patch_size')],
    'HybridVisionTransformer': _HYBRID_BAD + [(dict(cnn_out_indices=(0, -3)), 'cnn_out_indices')],
    'HybridVisionTransformer@p8': _HYBRID_BAD + [(dict(pretrain_img_size=16), 'pretrain_img_size'),
                                                 (dict(cnn_out_indices=(0,)), 'cnn_out_indices')],
    'SwinTransformer': [
        (dict(window_size=0), 'window_size'),
        (dict(patch_size=0), 'patch_size'),
        (dict(mlp_ratio=0), 'mlp_ratio'),
        (dict(pretrain_img_size=2), 'pretrain_img_size'),
        (dict(arch=dict(depths=(2, 0, 2, 2))), 'depths'),
        (dict(arch=dict(embed_dim=0)), 'embed_dim'),
        (dict(arch=dict(num_heads=(1, 3, 2, 4))), 'num_heads'),
    ],
    'PyramidVisionTransformer': _PVT_BAD + [(dict(pretrain_img_size=16), 'pretrain_img_size')],
    'PyramidVisionTransformerV2': _PVT_BAD,
    'ShuffleTransformer': [
        (dict(window_size=0), 'window_size'),
        (dict(window_size=4), 'window_size'),
        (dict(mlp_ratio=0), 'mlp_ratio'),
        (dict(arch=dict(depths=(2, 1, 2, 2))), 'depths'),
        (dict(arch=dict(depths=(2, 0, 2, 2))), 'depths'),
        (dict(arch=dict(embed_dim=0)), 'embed_dim'),
        (dict(arch=dict(dims=(16, 0, 48, 64))), 'dims'),
        (dict(arch=dict(token_dim=0)), 'token_dim'),
        (dict(arch=dict(num_heads=(1, 3, 3, 4))), 'num_heads'),
        (dict(act='gelu6'), 'activation'),
    ],
    'CvT': [
        (dict(kernel_qkv=0), 'kernel_qkv'),
        (dict(kernel_qkv=2), 'kernel_qkv'),
        (dict(stride_kv=0), 'stride_kv'),
        (dict(stride_q=2), 'stride_q'),
        (dict(output_cls_token=True, out_indices=(0, 1)), 'output_cls_token'),
        (dict(arch=dict(embed_dims=(16, 0, 32))), 'embed_dims'),
        (dict(arch=dict(depths=(1, 0, 2))), 'depths'),
        (dict(arch=dict(num_heads=(1, 3, 2))), 'num_heads'),
        (dict(arch=dict(patch_strides=(4, 0, 2))), 'patch_strides'),
        (dict(arch=dict(patch_paddings=(2, -1, 1))), 'patch_paddings'),
        (dict(arch=dict(mlp_ratios=(4, 0, 4))), 'mlp_ratios'),
    ],
    'VisionTransformer': _VIT_BAD + [
        (dict(distilled=True, with_cls_token=False), 'with_cls_token'),
        (dict(use_rel_pos=True), 'with_cls_token'),
        (dict(window_size=3, window_block_indexes=(0,)), 'with_cls_token'),
    ],
    'VisionTransformer@vitdet': _VIT_BAD + [
        (dict(window_size=0), 'window_size'),
        (dict(window_pad='kv'), 'window_pad'),
        (dict(output_cls_token=True), 'output_cls_token'),
    ],
    'CaiT': [
        (dict(patch_size=0), 'patch_size'),
        (dict(pretrain_img_size=8), 'pretrain_img_size'),
        (dict(arch=dict(embed_dim=0)), 'embed_dim'),
        (dict(arch=dict(depth=0)), 'depth'),
        (dict(arch=dict(num_heads=3)), 'num_heads'),
        (dict(arch=dict(mlp_ratio=0)), 'mlp_ratio'),
        (dict(arch=dict(init_values=0.0)), 'init_values'),
        (dict(arch=dict(depth_token_only=0)), 'depth_token_only'),
        (dict(arch=dict(mlp_ratio_token_only=-1)), 'mlp_ratio_token_only'),
        (dict(norm='bn'), 'norm'),
        (dict(act='gelu6'), 'activation'),
    ],
    'CeiT': [
        (dict(pretrain_img_size=8), 'pretrain_img_size'),
        (dict(stem_channels=0), 'stem_channels'),
        (dict(leff_kernel_size=2), 'leff_kernel_size'),
        (dict(arch=dict(embed_dim=0)), 'embed_dim'),
        (dict(arch=dict(depth=0)), 'depth'),
        (dict(arch=dict(num_heads=3)), 'num_heads'),
        (dict(arch=dict(mlp_ratio=0)), 'mlp_ratio'),
        (dict(norm='bn'), 'norm'),
        (dict(act='gelu6'), 'activation'),
    ],
    'ViTAdapter': [
        (dict(interaction_indexes=[[0, 1], [3, 3]]), 'interaction_indexes'),
        (dict(interaction_indexes=[[0, 1], [2, 2]]), 'interaction_indexes'),
        (dict(interaction_indexes=[[0], [1, 3]]), 'interaction_indexes'),
        (dict(arch=dict(depth=6)), 'interaction_indexes'),
        (dict(deform_num_heads=3), 'deform_num_heads'),
        (dict(deform_num_heads=0), 'deform_num_heads'),
        (dict(deform_ratio=0), 'deform_ratio'),
        (dict(cffn_ratio=-1), 'cffn_ratio'),
        (dict(n_points=0), 'n_points'),
        (dict(conv_inplane=0), 'conv_inplane'),
        (dict(init_values=-1.0), 'init_values'),
        (dict(vit_feature='first'), 'vit_feature'),
        (dict(vit_feature='interactions', interaction_indexes=[[0, 1], [2, 3]]), 'vit_feature'),
    ],
    'LeViT': [
        (dict(pretrain_img_size=8), 'pretrain_img_size'),
        (dict(pretrain_img_size=(64, 0)), 'pretrain_img_size'),
        (dict(act='gelu6'), 'act'),
        (dict(arch=dict(key_dim=0)), 'key_dim'),
        (dict(arch=dict(key_dim=20)), 'key_dim'),
        (dict(arch=dict(embed_dims=(16, 0, 32))), 'embed_dims'),
        (dict(arch=dict(embed_dims=(4, 24, 32))), 'embed_dims'),
        (dict(arch=dict(depths=(1, 0, 1))), 'depths'),
        (dict(arch=dict(num_heads=(2, 0, 2))), 'num_heads'),
        (dict(arch=dict(mlp_ratio=0)), 'mlp_ratio'),
        (dict(arch=dict(attn_ratio=(2, 2))), 'attn_ratio'),
        (dict(arch=dict(attn_ratio=0.1)), 'attn_ratio'),
    ],
    'CPVT': [
        (dict(patch_size=0), 'patch_size'),
        (dict(arch=dict(embed_dim=0)), 'embed_dim'),
        (dict(arch=dict(depth=0)), 'depth'),
        (dict(arch=dict(num_heads=3)), 'num_heads'),
        (dict(arch=dict(mlp_ratio=0)), 'mlp_ratio'),
        (dict(peg_blocks=()), 'peg_blocks'),
        (dict(peg_blocks=(0, 4)), 'peg_blocks'),
        (dict(peg_blocks=(0, 0)), 'peg_blocks'),
        (dict(with_cls_token=False, output_cls_token=True), 'output_cls_token'),
    ],
    'CPVT@pcpvt': _PVT_BAD + [
        (dict(patch_size=0), 'patch_size'),
        (dict(with_cls_token=True), 'with_cls_token'),
        (dict(output_cls_token=True), 'output_cls_token'),
        (dict(final_norm=True), 'final_norm'),
        (dict(peg_blocks=(1,)), 'peg_blocks'),
    ],
}


def backbone_type(name: str) -> str:
    """The registered class of a TINY entry (``'Name@variant'`` -> ``'Name'``)."""
    return name.split('@')[0]
