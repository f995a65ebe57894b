"""Shared ImageNet-1k recipe of the DeiT family of training setups (DeiT, Swin, PVTv2, Shuffle, CvT): what the
per-model configs inherit and adjust (backbone, head width, drop path, lr, warm-up).

Data (mmpretrain ``imagenet_bs64_swin_224``, DeiT's timm pipeline): RandomResizedCrop 224 bicubic, flip,
RandAugment rand-m9-mstd0.5-inc1 (2 ops, magnitude 9, std 0.5, increasing), random erasing 0.25; Mixup 0.8 and
CutMix 1.0 (one of them per batch), label smoothing 0.1; test: resize 256 + centre crop 224.
Optimizer (mmpretrain ``imagenet_bs1024_adamw_swin``): AdamW lr 1e-3 at total batch 1024 (5e-4 per 512),
betas (0.9, 0.999), eps 1e-8, weight decay 0.05 except norms, biases, 1-D parameters and position tables;
300 epochs, linear warm-up from lr * 1e-3 (20 epochs here; DeiT-style recipes override 5), cosine to 1e-5.
``auto_scale_lr`` rescales the lr linearly when run with another total batch (``--auto-scale-lr``).
"""
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py',
    'mmpretrain::_base_/schedules/imagenet_bs1024_adamw_swin.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(imports=['vit_backbones', 'vit_backbones.engine.safe_checkpoint_io'],
                      allow_failed_imports=False)

# The backbone's classification feature (``cls_output``) is the last element of its outputs, read by the head.
model = dict(
    type='ImageClassifier',
    backbone=dict(type='vit_backbones.SwinTransformer', arch='tiny', out_indices=(3,), cls_output='avg_featmap'),
    neck=None,
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=768,
        init_cfg=dict(type='TruncNormal', layer='Linear', std=0.02, bias=0.0),
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        cal_acc=False),
    train_cfg=dict(augments=[dict(type='Mixup', alpha=0.8), dict(type='CutMix', alpha=1.0)]),
)

# 8 GPUs x 128 images = total batch 1024, the batch the lr is given for.
train_dataloader = dict(batch_size=128)
auto_scale_lr = dict(base_batch_size=1024)
