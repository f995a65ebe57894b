"""Swin-T on ImageNet-1k, 300 epochs, 8 GPUs x 128 images: the Swin paper's recipe (Liu et al., ICCV 2021,
arXiv:2103.14030; official microsoft/Swin-Transformer ``configs/swin/swin_tiny_patch4_window7_224.yaml`` and
mmpretrain ``swin-tiny_16xb64_in1k``).

AdamW lr 1e-3 at total batch 1024, weight decay 0.05 (none on norms, biases, relative position tables), cosine to
1e-5 after 20 linear warm-up epochs, gradient clipping at norm 5, drop path 0.2; DeiT augmentations (RandAugment
m9/n2, Mixup 0.8, CutMix 1.0, random erasing 0.25, label smoothing 0.1). Expected top-1: 81.2 (paper).

    bash tools/dist_train.sh configs/classification/swin/swin-t_8xb128_in1k.py 8
"""
_base_ = ['../_base_/deit-recipe_adamw-300e_in1k.py']
model = dict(
    backbone=dict(type='vit_backbones.SwinTransformer', arch='tiny', window_size=7, drop_path_rate=0.2,
                  out_indices=(3,), cls_output='avg_featmap'),
    head=dict(in_channels=768))
optim_wrapper = dict(clip_grad=dict(max_norm=5.0))
