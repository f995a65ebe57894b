"""CPU demo: the ViTDet Mask R-CNN recipe with a ViT-Tiny, trained from scratch on the synthetic Demo Shapes COCO set.

    bash tools/demo_det.sh configs/demo/mask-rcnn_vit-t-vitdet_demo.py   # -> work_dirs/mask-rcnn_vit-t-vitdet_demo

which runs
    python tools/make_demo_data.py data/demo_coco --kind det --exist-ok
    python tools/train.py configs/demo/mask-rcnn_vit-t-vitdet_demo.py --work-dir work_dirs/mask-rcnn_vit-t-vitdet_demo
    python tools/test.py configs/demo/mask-rcnn_vit-t-vitdet_demo.py work_dirs/mask-rcnn_vit-t-vitdet_demo/epoch_6.pth

Measured on a 2-core AMD EPYC (no GPU; the PVTv2 demo took 11 min there): 1.3-1.7 s per iteration, 16 min 52 s in
all; box mAP 0.027 (AP50 0.093), mask mAP 0.018 on the 50 validation images. From scratch in 600 iterations a
plain ViT learns little (ViTDet's results rest on MAE pre-training); the demo shows that the recipe runs end to end.

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
_base_ = ['./mask-rcnn_pvtv2-b0_demo.py', '../_base_/models/vitdet.py']

img_scale = (128, 128)
channels = 128  # neck and head width (256 in the recipe)
norm_cfg = _base_.vitdet_norm_cfg

model = dict(
    backbone=dict(
        _base_.vitdet_backbone, _delete_=True, arch='tiny', pretrain_img_size=img_scale, window_size=4, init_cfg=None),
    neck=dict(_base_.vitdet_neck, _delete_=True, in_channels=192, out_channels=channels),
    rpn_head=dict(num_convs=2),
    roi_head=dict(
        bbox_head=dict(type='Shared4Conv1FCBBoxHead', conv_out_channels=channels, norm_cfg=norm_cfg),
        mask_head=dict(norm_cfg=norm_cfg)))


def at_demo_size(pipeline: list) -> list:
    """The recipe's LSJ pipeline with every size argument set to the demo's ``img_scale``."""
    return [dict(t, **{k: img_scale for k in _base_.lsj_size_keys if k in t}) for t in pipeline]


train_pipeline = at_demo_size(_base_.vitdet_lsj_train_pipeline)
test_pipeline = at_demo_size(_base_.vitdet_lsj_test_pipeline)
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(
    constructor='vit_backbones.LayerDecayOptimWrapperConstructor',
    optimizer=dict(_delete_=True, type='AdamW', lr=4e-4, betas=(0.9, 0.999), weight_decay=0.1),
    paramwise_cfg=dict(layer_decay_rate=0.7))
