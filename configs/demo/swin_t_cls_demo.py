"""CPU demo: the real Swin-T as an mmpretrain image classifier, trained from scratch on Demo Shapes classification.

    bash tools/demo_cls.sh        # or: make demo-cls

which runs
    python tools/make_demo_data.py data/demo_cls --kind cls --exist-ok
    python tools/train.py configs/demo/swin_t_cls_demo.py --work-dir work_dirs/demo_cls
    python tools/test.py configs/demo/swin_t_cls_demo.py work_dirs/demo_cls/iter_450.pth --work-dir work_dirs/demo_cls

The data: 2000 train + 200 val 64x64 images, one shape each (circle, square, star, triangle, in their Demo Shapes
colours) among small clutter marks in the colours of random classes. The model: mmpretrain's ``ImageClassifier``
with our full Swin-T (``arch='tiny'``) giving the pooled last stage as its classification feature
(``cls_output='avg_featmap'``, no neck) and a linear head. The backbone outputs all four stages so that the
checkpoint holds every output norm of the segmentation demo's Swin-T (those of stages 0-2 keep their initial
values: the head reads only the last).

As CPU settings: 56x56 random-resized crops (a 14x14 token grid: 2x2 windows of 7 in the first stage, no padding),
batch 16 in one process, 450 iterations of AdamW with a 50-iteration warm-up and cosine decay, drop-path 0.1,
gloo and no cudnn. Its checkpoint initialises the segmentation demo in
``configs/demo/swin_t_upernet_cls-init_demo.py``.

Measured on a 2-core CPU (no GPU): 0.8-1.2 s per iteration (about 1.0; batch 16, 56x56), 450 iterations, 8m11s
in all (training 7m56s); top-1 100.0 on the 200 validation images (99.5 at iterations 150 and 300).
"""
_base_ = ['mmpretrain::_base_/default_runtime.py']

custom_imports = dict(imports=['vit_backbones'], allow_failed_imports=False)

# Must match vit_backbones.datasets.demo_cls.CLASSES (tests check it).
classes = ('circle', 'square', 'star', 'triangle')
num_classes = 4
data_root = 'data/demo_cls'  # tools/make_demo_data.py --kind cls defaults: 2000 train + 200 val images, 64x64
# How to get the data, shown by tools/train.py and tools/test.py when it is missing ({root}: data_root).
data_hint = 'generate it with: python tools/make_demo_data.py {root} --kind cls'
crop_size = 56
max_iters = 450

model = dict(
    type='ImageClassifier',
    data_preprocessor=dict(
        type='ClsDataPreprocessor',
        num_classes=num_classes,
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True),
    backbone=dict(
        type='vit_backbones.SwinTransformer',
        arch='tiny',
        # every stage's output norm exists (norms.0-3), so the checkpoint fills the segmentation demo's Swin-T
        # completely (configs/demo/swin_t_upernet_cls-init_demo.py); the head reads only the last output
        out_indices=(0, 1, 2, 3),
        cls_output='avg_featmap',  # (B, 768) after the maps: the last stage pooled, what the head reads
        drop_path_rate=0.1,
        init_cfg=None),  # from scratch
    neck=None,
    head=dict(
        type='LinearClsHead',
        num_classes=num_classes,
        in_channels=768,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1,)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=crop_size, crop_ratio_range=(0.6, 1.0)),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(crop_size, crop_size)),  # the whole image: the shape may lie anywhere in it
    dict(type='PackInputs'),
]
demo_dataset = dict(type='CustomDataset', data_root=data_root, metainfo=dict(classes=classes))
train_dataloader = dict(
    batch_size=16,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(data_prefix='train', ann_file='meta/train.txt', pipeline=train_pipeline, **demo_dataset))
val_dataloader = dict(
    batch_size=50,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(data_prefix='val', ann_file='meta/val.txt', pipeline=test_pipeline, **demo_dataset))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1,))
test_evaluator = val_evaluator

optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=5e-4, weight_decay=0.05, eps=1e-8, betas=(0.9, 0.999)),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        custom_keys={'.relative_position_bias_table': dict(decay_mult=0.0)}),
    clip_grad=dict(max_norm=5.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=False, begin=50, end=max_iters),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters // 3)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(by_epoch=False, interval=max_iters, max_keep_ckpts=1))
find_unused_parameters = True  # norms.0-2 (see out_indices) get no gradient: DDP must know (dist_train.sh)
log_processor = dict(by_epoch=False)  # iterations, not epochs, in the log
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
