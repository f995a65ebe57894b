"""DeiT-S on ImageNet-1k, 300 epochs, 8 GPUs x 128 images: the DeiT paper's recipe (Touvron et al., ICML 2021,
arXiv:2012.12877; facebookresearch/deit ``main.py`` defaults; mmpretrain ``deit-small_4xb256_in1k``).

AdamW lr 5e-4 * total batch / 512 (1e-3 at 1024), weight decay 0.05 (none on norms, biases, cls token, position
embedding), cosine to 1e-5 after 5 linear warm-up epochs from 1e-6, drop path 0.1, no gradient clipping, no EMA,
repeated augmentation (3 repeats; ``train_dataloader.sampler=dict(type='DefaultSampler', shuffle=True)`` turns it
off); DeiT augmentations (RandAugment m9/n2, Mixup 0.8, CutMix 1.0, random erasing 0.25, label smoothing 0.1).
The head reads the final-normed cls token. Expected top-1: 79.8 (paper).

    bash tools/dist_train.sh configs/classification/deit/deit-s_8xb128_in1k.py 8
"""
_base_ = ['../_base_/deit-recipe_adamw-300e_in1k.py']
model = dict(
    backbone=dict(_delete_=True, type='vit_backbones.VisionTransformer', arch='small', patch_size=16,
                  pretrain_img_size=224, drop_path_rate=0.1, out_indices=-1, cls_output='cls_token'),
    head=dict(in_channels=384))
train_dataloader = dict(sampler=dict(type='RepeatAugSampler', num_repeats=3, shuffle=True))
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'.cls_token': dict(decay_mult=0.0), '.pos_embed': dict(decay_mult=0.0)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, end=5, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=5),
]
