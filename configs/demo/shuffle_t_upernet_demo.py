"""CPU demo: the real Shuffle-T UperNet, trained from scratch on the synthetic Demo Shapes set.

    bash tools/demo.sh configs/demo/shuffle_t_upernet_demo.py

which runs
    python tools/make_demo_data.py data/demo_shapes --exist-ok
    python tools/train.py configs/demo/shuffle_t_upernet_demo.py --work-dir work_dirs/shuffle_t_upernet_demo
    python tools/test.py configs/demo/shuffle_t_upernet_demo.py work_dirs/shuffle_t_upernet_demo/iter_900.pth \
        --work-dir work_dirs/shuffle_t_upernet_demo

Measured: see README (time per iteration, total time and mIoU on the 50 validation images, 2-core CPU).

Everything is ``configs/shuffle_t_upernet.py`` except what a CPU and a short run need, as in
``swin_t_upernet_demo.py``: the demo dataset (5 classes, 128x128 crops), BN instead of SyncBN in the heads and no
``sync_bn`` conversion of the backbone's BatchNorms (``sync_bn = None``: a 2-process gloo run on CPU cannot use
SyncBatchNorm), batch size 4 in one process, a short schedule with a higher learning rate and a shorter warmup (no
pretrained weights here), drop-path 0.1 instead of 0.3, gloo and no cudnn, and no visualization. The backbone is
the full Shuffle-T (``arch='tiny'``; its BatchNorms train on the batch of 4); as CPU overrides, UperNet's channels
go from 512 to 128 and the auxiliary FCN head's from 256 to 64.
"""
_base_ = ['../shuffle_t_upernet.py']

# Must match vit_backbones.datasets.demo_shapes.CLASSES / PALETTE (tests check it).
classes = ('background', 'circle', 'square', 'triangle', 'star')
palette = [[0, 0, 0], [220, 40, 40], [40, 180, 70], [40, 90, 230], [240, 200, 20]]
num_classes = 5
data_root = 'data/demo_shapes'  # tools/make_demo_data.py defaults: 400 train + 50 val images, 128x128
# How to get the data, shown by tools/train.py and tools/test.py when it is missing ({root}: data_root).
data_hint = 'generate it with: python tools/make_demo_data.py {root}'
crop_size = (128, 128)
max_iters = 900
norm_cfg = dict(type='BN', requires_grad=True)
sync_bn = None  # no SyncBatchNorm conversion (mmengine's Runner reads cfg.get('sync_bn')): CPU, gloo

model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(drop_path_rate=0.1, init_cfg=None),  # from scratch: no download on a CPU demo
    decode_head=dict(channels=128, num_classes=num_classes, norm_cfg=norm_cfg),
    auxiliary_head=dict(channels=64, num_classes=num_classes, norm_cfg=norm_cfg))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=crop_size, ratio_range=(0.75, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.9),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
demo_dataset = dict(
    type='BaseSegDataset',
    data_root=data_root,
    metainfo=dict(classes=classes, palette=palette),
    img_suffix='.png',
    seg_map_suffix='.png',
    reduce_zero_label=False)
train_dataloader = dict(
    batch_size=4,
    num_workers=1,
    persistent_workers=True,
    dataset=dict(
        _delete_=True,
        data_prefix=dict(img_path='img_dir/train', seg_map_path='ann_dir/train'),
        pipeline=train_pipeline,
        **demo_dataset))
val_dataloader = dict(
    batch_size=1,
    num_workers=1,
    persistent_workers=True,
    dataset=dict(
        _delete_=True,
        data_prefix=dict(img_path='img_dir/val', seg_map_path='ann_dir/val'),
        pipeline=test_pipeline,
        **demo_dataset))
test_dataloader = val_dataloader

optim_wrapper = dict(optimizer=dict(lr=4e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=50),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=50, end=max_iters, by_epoch=False),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters // 3)
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(by_epoch=False, interval=max_iters, max_keep_ckpts=1),
    visualization=dict(draw=False))
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
