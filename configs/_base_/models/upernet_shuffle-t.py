"""UperNet with our Shuffle-T backbone: ``upernet_swin-t.py`` with the backbone swapped (same widths and strides).

Heads use SyncBN as mmseg does for 8-GPU training; single-process runs swap it for BN (see configs/demo/). The
backbone's own norms are plain BatchNorm2d (the official model's); the recipes convert them to SyncBN for
multi-GPU training through the top-level ``sync_bn`` option (see configs/shuffle/).
Importing ``vit_backbones`` through ``custom_imports`` registers our modules for every config inheriting this one;
``vit_backbones.engine.safe_checkpoint_io`` switches on weights-only resuming and atomic checkpoint saves, also under
mmseg's own ``tools/train.py``.
"""
custom_imports = dict(imports=['vit_backbones', 'vit_backbones.engine.safe_checkpoint_io'], allow_failed_imports=False)

norm_cfg = dict(type='SyncBN', requires_grad=True)
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='vit_backbones.ShuffleTransformer',
        arch='tiny',
        window_size=7,
        mlp_ratio=4.0,
        drop_rate=0.0,
        attn_drop_rate=0.0,
        drop_path_rate=0.3,
        norm_eval=False,
        out_indices=(0, 1, 2, 3)),
    decode_head=dict(
        type='UPerHead',
        in_channels=[96, 192, 384, 768],
        in_index=[0, 1, 2, 3],
        pool_scales=(1, 2, 3, 6),
        channels=512,
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=dict(
        type='FCNHead',
        in_channels=384,
        in_index=2,
        channels=256,
        num_convs=1,
        concat_input=False,
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
