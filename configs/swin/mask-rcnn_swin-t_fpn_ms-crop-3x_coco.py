"""Mask R-CNN with our Swin-T on COCO 2017, 3x schedule (36 epochs) with multi-scale + crop training, 8x2 images.

Train (8 GPUs) and test:
    bash tools/dist_train.sh configs/swin/mask-rcnn_swin-t_fpn_ms-crop-3x_coco.py 8
    python tools/test.py configs/swin/mask-rcnn_swin-t_fpn_ms-crop-3x_coco.py work_dirs/.../epoch_36.pth

Expected with an ImageNet-1k Swin-T: 46.0 box AP / 41.6 mask AP (mmdet's result for this recipe). Everything is
``mask-rcnn_swin-t_fpn_1x_coco.py`` except the schedule (36 epochs, LR x0.1 after epochs 27 and 33) and the
DETR-style augmentation: random flip, then either a random short side in 480..800 (step 32), or a short side in
{400, 500, 600}, a random 384..600 crop and again a short side in 480..800 (long side at most 1333).
"""
_base_ = ['./mask-rcnn_swin-t_fpn_1x_coco.py']

multi_scales = [(short, 1333) for short in range(480, 801, 32)]
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='RandomChoice',
        transforms=[
            [dict(type='RandomChoiceResize', scales=multi_scales, keep_ratio=True)],
            [
                dict(type='RandomChoiceResize', scales=[(400, 1333), (500, 1333), (600, 1333)], keep_ratio=True),
                dict(type='RandomCrop', crop_type='absolute_range', crop_size=(384, 600), allow_negative_crop=True),
                dict(type='RandomChoiceResize', scales=multi_scales, keep_ratio=True),
            ],
        ]),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

max_epochs = 36
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[27, 33], gamma=0.1),
]
