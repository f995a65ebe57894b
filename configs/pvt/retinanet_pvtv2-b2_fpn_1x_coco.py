"""RetinaNet with our PVTv2-b2 on COCO 2017, 1x schedule (12 epochs), 8 GPUs x 2 images: the PVTv2 paper recipe.

Train (8 GPUs) and test:
    bash tools/dist_train.sh configs/pvt/retinanet_pvtv2-b2_fpn_1x_coco.py 8
    python tools/test.py configs/pvt/retinanet_pvtv2-b2_fpn_1x_coco.py work_dirs/.../epoch_12.pth

Expected box AP with the ImageNet-1k PVTv2 backbone loaded below (official checkpoint; timm's ``pvt_v2_b2``
weights work too, converted while loading): 44.6 (paper and mmdet). Other sizes with the same recipe, paper
numbers: b0 37.2, b1 41.2, b5 46.2 (set ``arch`` and the FPN ``in_channels``: b0 has (32, 64, 160, 256)).
Offline, download the checkpoint and point ``model.backbone.init_cfg.checkpoint`` at the file.

Recipe: AdamW lr 1e-4, weight decay 1e-4, 500 linear warmup iterations, LR x0.1 after epochs 8 and 11, drop-path
0.1, 1333x800 single-scale training. FPN on stages 1-3 (strides 8-32) plus two extra levels computed from the
last backbone map (``start_level=1``, ``add_extra_convs='on_input'``), as mmdet's RetinaNet.
Data: COCO 2017 under data/coco/ (train2017/, val2017/, annotations/instances_{train,val}2017.json).
"""
_base_ = [
    'mmdet::_base_/models/retinanet_r50_fpn.py',
    'mmdet::_base_/datasets/coco_detection.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['vit_backbones', 'vit_backbones.engine.safe_checkpoint_io'], allow_failed_imports=False)

pretrained = 'https://github.com/whai362/PVT/releases/download/v2/pvt_v2_b2.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='vit_backbones.PyramidVisionTransformerV2',
        arch='b2',
        drop_path_rate=0.1,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(
        in_channels=[64, 128, 320, 512],
        out_channels=256,
        start_level=1,
        add_extra_convs='on_input',
        num_outs=5))

optim_wrapper = dict(optimizer=dict(_delete_=True, type='AdamW', lr=1e-4, weight_decay=1e-4))
# 8 GPUs x 2 images per GPU = total batch 16.
train_dataloader = dict(batch_size=2)
auto_scale_lr = dict(enable=False, base_batch_size=16)
