"""ViT-Adapter-S (DeiT-S) backbone settings shared by the ViT-Adapter recipes and demos (czczup/ViT-Adapter).

A variable, not a model: the recipes inherit it beside their task base and build their backbone from it, e.g.
``backbone=dict(_base_.vit_adapter_s, _delete_=True, vit_feature='interactions')``.

DeiT-S (384 channels, 12 blocks, 6 heads) with LayerScale (the official ViT's ``layer_scale=True``, gammas start at
1), initialised from the ImageNet-1k DeiT-S (cls token and cls position row dropped, the 14x14 grid resized at every
forward); adapter: 4 interactions over blocks [0-2], [3-5], [6-8], [9-11], deformable attention with 6 heads and 4
points, value ratio 1.0, ConvFFN ratio 0.25, two extra extractors; drop-path 0.2 (blocks linear from 0, every
extractor 0.2); SyncBN in the spatial prior and the output norms as the official model (which hard-codes it). Four
maps at strides 4, 8, 16, 32, 384 channels each.
"""
deit_s_checkpoint = 'https://dl.fbaipublicfiles.com/deit/deit_small_patch16_224-cd65a155.pth'
vit_adapter_s = dict(
    type='vit_backbones.ViTAdapter',
    arch='small',
    pretrain_img_size=224,
    layer_scale_init_value=1.0,
    drop_path_rate=0.2,
    conv_inplane=64,
    n_points=4,
    deform_num_heads=6,
    cffn_ratio=0.25,
    deform_ratio=1.0,
    interaction_indexes=[[0, 2], [3, 5], [6, 8], [9, 11]],
    norm_cfg=dict(type='SyncBN', requires_grad=True),
    out_indices=(0, 1, 2, 3),
    with_cp=False,
    init_cfg=dict(type='Pretrained', checkpoint=deit_s_checkpoint))
