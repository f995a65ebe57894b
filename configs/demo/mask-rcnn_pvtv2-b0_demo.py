"""CPU demo: the real PVTv2 Mask R-CNN recipe, trained from scratch on the synthetic Demo Shapes COCO set.

    bash tools/demo_det.sh        # or: make demo-det

which runs
    python tools/make_demo_data.py data/demo_coco --kind det --exist-ok
    python tools/train.py configs/demo/mask-rcnn_pvtv2-b0_demo.py --work-dir work_dirs/demo_det
    python tools/test.py configs/demo/mask-rcnn_pvtv2-b0_demo.py work_dirs/demo_det/epoch_6.pth --work-dir ...

Measured on a 2-core CPU (no GPU): 0.6-0.8 s per iteration (batch 4, 128x128), 600 iterations (6 epochs); 6m55s
in all with the data already there (402 s training), 7m49s from scratch (data generation included); on the 50
validation images (mmdet CocoMetric, 4 classes) box mAP 0.844 (AP50 1.000, AP75 0.980) and mask mAP 0.869, the
same in both runs; already 0.653 / 0.772 after epoch 3. Under CPU contention from other processes
PyTorch's two OpenMP threads can slow down many times over; ``OMP_NUM_THREADS=1`` then runs at ~0.9 s/iteration.

Everything is ``configs/pvt/mask-rcnn_pvtv2-b2_fpn_1x_coco.py`` except what a CPU and a short run need: the
smallest PVTv2 (``arch='b0'``, FPN inputs (32, 64, 160, 256)) without pretrained weights; the demo dataset (4
classes, 128x128 images); batch 4 in one process; 6 epochs with LR steps after epochs 4 and 5, lr 4e-4 and 100
warmup iterations; a narrower FPN and heads (128 channels, 256-wide box FCs, instead of 256 and 1024); fewer
proposals (300 in training, 100 in testing), 64 sampled RoIs per image instead of 512, at most 50 detections per
image; gloo; no visualization.
"""
_base_ = ['../pvt/mask-rcnn_pvtv2-b2_fpn_1x_coco.py']

# Must match vit_backbones.datasets.demo_coco.CLASSES / DET_PALETTE (tests check it).
classes = ('circle', 'square', 'triangle', 'star')
palette = [[220, 40, 40], [40, 180, 70], [40, 90, 230], [240, 200, 20]]
num_classes = 4
data_root = 'data/demo_coco/'  # tools/make_demo_data.py --kind det defaults: 400 train + 50 val, 128x128
# How to get the data, shown by tools/train.py and tools/test.py when it is missing ({root}: data_root).
data_hint = 'generate it with: python tools/make_demo_data.py {root} --kind det'
img_scale = (128, 128)
max_epochs = 6  # 100 iterations each
batch_size = 4

channels = 128  # FPN and head width (256 in the recipe)

model = dict(
    backbone=dict(arch='b0', init_cfg=None),
    neck=dict(in_channels=[32, 64, 160, 256], out_channels=channels),
    rpn_head=dict(in_channels=channels, feat_channels=channels),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=channels),
        bbox_head=dict(in_channels=channels, fc_out_channels=256, num_classes=num_classes),
        mask_roi_extractor=dict(out_channels=channels),
        mask_head=dict(in_channels=channels, conv_out_channels=channels, num_classes=num_classes)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=1000, max_per_img=300),
        rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=100), rcnn=dict(max_per_img=50)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
demo_dataset = dict(type='CocoDataset', data_root=data_root, metainfo=dict(classes=classes, palette=palette))
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=1,
    persistent_workers=True,
    dataset=dict(
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=8),
        pipeline=train_pipeline,
        **demo_dataset))
val_dataloader = dict(
    batch_size=1,
    num_workers=1,
    persistent_workers=True,
    dataset=dict(
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'),
        pipeline=test_pipeline,
        **demo_dataset))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json', metric=['bbox', 'segm'])
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(lr=4e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=100),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[4, 5], gamma=0.1),
]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs // 2)
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=max_epochs, max_keep_ckpts=1),
    visualization=dict(draw=False))
log_processor = dict(window_size=20)
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
auto_scale_lr = dict(enable=False, base_batch_size=batch_size)
