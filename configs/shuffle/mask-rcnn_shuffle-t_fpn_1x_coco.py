"""Mask R-CNN with our Shuffle-T on COCO 2017, 1x schedule (12 epochs), 8 GPUs x 2 images: mmdet's Swin recipe.

Train (8 GPUs) and test:
    bash tools/dist_train.sh configs/shuffle/mask-rcnn_shuffle-t_fpn_1x_coco.py 8
    python tools/test.py configs/shuffle/mask-rcnn_shuffle-t_fpn_1x_coco.py work_dirs/.../epoch_12.pth

Expected: no published number for this recipe: the Shuffle repository releases no detection configs or weights,
and the paper's COCO results come from its own setup, which this recipe does not claim to reproduce; not measured
here either. For reference, Swin-T gets 42.7 box AP / 39.3 mask AP with the same recipe
(``swin/mask-rcnn_swin-t_fpn_1x_coco.py``).

Checkpoint: the official ImageNet-1k Shuffle-T is only on Google Drive, so mmengine cannot download it. Download it
from https://drive.google.com/drive/folders/1goDJtcnxgBAcHhZnNwrgOlG_WBftpmOS (the file holds
``{'model': state_dict, ...}``; the backbone unwraps and converts it while loading) and save it as
``checkpoints/shuffle_vit_tiny_patch4_window7_224.pth``, or point ``model.backbone.init_cfg.checkpoint`` at it.

Recipe (the Swin-T one): AdamW lr 1e-4, weight decay 0.05 (none on relative position tables and norms), 1000
linear warmup iterations, LR x0.1 after epochs 8 and 11, drop-path 0.2, 1333x800 single-scale training.
BatchNorm: all norms of the Shuffle backbone are BatchNorm2d. With 2 images per GPU their batch statistics would
be noisy, so ``norm_eval=True`` keeps the ImageNet running statistics (mmdet's practice for ResNet's BatchNorms);
their affine weights still train.
Data: COCO 2017 under data/coco/ (train2017/, val2017/, annotations/instances_{train,val}2017.json).
"""
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['vit_backbones', 'vit_backbones.engine.safe_checkpoint_io'], allow_failed_imports=False)

pretrained = 'checkpoints/shuffle_vit_tiny_patch4_window7_224.pth'  # from Google Drive, see above

model = dict(
    backbone=dict(
        _delete_=True,
        type='vit_backbones.ShuffleTransformer',
        arch='tiny',
        window_size=7,
        drop_path_rate=0.2,
        norm_eval=True,  # BatchNorms with 2 images per GPU: keep the pretrained statistics
        out_indices=(0, 1, 2, 3),
        with_cp=False,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[96, 192, 384, 768]))

max_epochs = 12
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[8, 11], gamma=0.1),
]
# 'norm' catches the blocks' norm1/2/3 and downsample.norm, 'patch_embed.bn' the stem's bn1/bn2.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(_delete_=True, type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(
        custom_keys={
            'relative_position_bias_table': dict(decay_mult=0.0),
            'norm': dict(decay_mult=0.0),
            'patch_embed.bn': dict(decay_mult=0.0),
        }))
# 8 GPUs x 2 images per GPU = total batch 16.
train_dataloader = dict(batch_size=2)
auto_scale_lr = dict(enable=False, base_batch_size=16)
