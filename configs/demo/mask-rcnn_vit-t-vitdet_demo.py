"""CPU demo: the ViTDet Mask R-CNN recipe with a ViT-Tiny, trained from scratch on the synthetic Demo Shapes COCO set.

    bash tools/demo_det.sh configs/demo/mask-rcnn_vit-t-vitdet_demo.py   # -> work_dirs/mask-rcnn_vit-t-vitdet_demo

which runs
    python tools/make_demo_data.py data/demo_coco --kind det --exist-ok
    python tools/train.py configs/demo/mask-rcnn_vit-t-vitdet_demo.py --work-dir work_dirs/mask-rcnn_vit-t-vitdet_demo
    python tools/test.py configs/demo/mask-rcnn_vit-t-vitdet_demo.py work_dirs/mask-rcnn_vit-t-vitdet_demo/epoch_6.pth

This is the PVTv2 detection demo (``mask-rcnn_pvtv2-b0_demo.py``: the same data, 128x128 images, batch 4 in one
process, 6 epochs of 100 iterations, lr 4e-4 with 100 warmup iterations and steps after epochs 4 and 5, 128-channel
neck and heads, fewer proposals and RoIs, gloo) with the model, optimizer and augmentation of
``configs/vit/mask-rcnn_vit-b-vitdet_simple-fpn_16xb4-lsj-100e_coco.py`` swapped in:
* Backbone: ViT-Tiny (192 channels, 12 blocks, 3 heads) without pretrained weights, in the ViTDet form (no cls
  token, no final norm, relative positions, global attention in blocks 2, 5, 8, 11); the windows are 4x4 tokens
  (the recipe's 14 on a 64x64 grid, here a 8x8 grid: 2x2 windows) and the position grid is learned for 128x128.
* Neck and heads: the simple feature pyramid (strides 4 to 64, LayerNorm), RPN with two convolutions, the 4conv1fc box
  head and the mask head with LayerNorm, 128 channels.
* Optimizer: AdamW (betas 0.9/0.999, weight decay 0.1) with the recipe's layer-wise lr decay 0.7.
* Data: large-scale jitter at 128x128 (resize by 0.1-2.0, 128x128 crop, pad to 128x128).
"""
_base_ = ['./mask-rcnn_pvtv2-b0_demo.py']

img_scale = (128, 128)
channels = 128  # neck and head width (256 in the recipe)
norm_cfg = dict(type='LN2d', eps=1e-6, requires_grad=True)

model = dict(
    backbone=dict(
        _delete_=True,
        type='vit_backbones.VisionTransformer',
        arch='tiny',
        patch_size=16,
        pretrain_img_size=img_scale,
        with_cls_token=False,
        use_abs_pos=True,
        use_rel_pos=True,
        window_size=4,
        window_block_indexes=[0, 1, 3, 4, 6, 7, 9, 10],
        final_norm=False,
        interpolate_antialias=False,
        drop_path_rate=0.1,
        out_indices=(11, ),
        init_cfg=None),
    neck=dict(
        _delete_=True,
        type='vit_backbones.SimpleFeaturePyramid',
        in_channels=192,
        out_channels=channels,
        scale_factors=(4.0, 2.0, 1.0, 0.5),
        in_stride=16,
        add_p6=True,
        norm_cfg=norm_cfg),
    rpn_head=dict(num_convs=2),
    roi_head=dict(
        bbox_head=dict(type='Shared4Conv1FCBBoxHead', conv_out_channels=channels, norm_cfg=norm_cfg),
        mask_head=dict(norm_cfg=norm_cfg)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomResize', scale=img_scale, ratio_range=(0.1, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_type='absolute_range', crop_size=img_scale, recompute_bbox=True,
         allow_negative_crop=True),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-2, 1e-2)),
    dict(type='Pad', size=img_scale, pad_val=dict(img=(114, 114, 114))),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='Pad', size=img_scale, pad_val=dict(img=(114, 114, 114))),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(
    constructor='vit_backbones.LayerDecayOptimWrapperConstructor',
    optimizer=dict(_delete_=True, type='AdamW', lr=4e-4, betas=(0.9, 0.999), weight_decay=0.1),
    paramwise_cfg=dict(layer_decay_rate=0.7))
