"""Mask R-CNN with our Swin-T on COCO 2017, 1x schedule (12 epochs), 8 GPUs x 2 images: mmdet's Swin recipe.

Train (8 GPUs) and test:
    bash tools/dist_train.sh configs/swin/mask-rcnn_swin-t_fpn_1x_coco.py 8
    python tools/test.py configs/swin/mask-rcnn_swin-t_fpn_1x_coco.py work_dirs/.../epoch_12.pth

Expected with the ImageNet-1k Swin-T loaded below (official checkpoint, converted while loading; timm's
``swin_tiny_patch4_window7_224`` works too): 42.7 box AP / 39.3 mask AP (mmdet's result for this recipe).
Offline, download the checkpoint and point ``model.backbone.init_cfg.checkpoint`` at the file.

Recipe: AdamW lr 1e-4, weight decay 0.05 (none on position tables, position embeddings and norms), 1000 linear
warmup iterations, LR x0.1 after epochs 8 and 11, drop-path 0.2, 1333x800 single-scale training.
Data: COCO 2017 under data/coco/ (train2017/, val2017/, annotations/instances_{train,val}2017.json).
"""
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['vit_backbones', 'vit_backbones.engine.safe_checkpoint_io'], allow_failed_imports=False)

pretrained = 'https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_tiny_patch4_window7_224.pth'

model = dict(
    backbone=dict(
        _delete_=True,
        type='vit_backbones.SwinTransformer',
        arch='tiny',
        window_size=7,
        drop_path_rate=0.2,
        use_abs_pos_embed=False,
        pretrain_img_size=224,
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
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(_delete_=True, type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(
        custom_keys={
            'absolute_pos_embed': dict(decay_mult=0.0),
            'relative_position_bias_table': dict(decay_mult=0.0),
            'norm': dict(decay_mult=0.0),
        }))
# 8 GPUs x 2 images per GPU = total batch 16.
train_dataloader = dict(batch_size=2)
auto_scale_lr = dict(enable=False, base_batch_size=16)
