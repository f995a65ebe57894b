"""PVTv2-b0 on ImageNet-1k, 300 epochs, 8 GPUs x 128 images: the official PVT v2 recipe (Wang et al., "PVT v2",
CVMJ 2022, arXiv:2106.13797; whai362/PVT ``classification/main.py`` (DeiT's trainer) and
``classification/configs/pvt_v2/pvt_v2_b0.py``).

AdamW lr 5e-4 per 512 images (1e-3 at total batch 1024), weight decay 0.05 (none on norms, biases and other 1-D
parameters), cosine to 1e-5 after 5 linear warm-up epochs from 1e-6, drop path 0.1, no gradient clipping (b3-b5:
drop path 0.3, clipping at norm 1); DeiT augmentations (RandAugment m9/n2, Mixup 0.8, CutMix 1.0, random erasing
0.25, label smoothing 0.1). Expected top-1: 70.5 (paper).

    bash tools/dist_train.sh configs/classification/pvt/pvtv2-b0_8xb128_in1k.py 8
"""
_base_ = ['../_base_/deit-recipe_adamw-300e_in1k.py']
model = dict(
    backbone=dict(_delete_=True, type='vit_backbones.PyramidVisionTransformerV2', arch='b0', drop_path_rate=0.1,
                  out_indices=(3,), cls_output='avg_featmap'),
    head=dict(in_channels=256))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, end=5, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=5),
]
