"""UperNet with our CvT-13 backbone: ``upernet_swin-t.py``'s heads over CvT's three levels (strides 4, 8, 16).

CvT has no stride-32 stage, so UperNet fuses three inputs (64, 192 and 384 channels) and the auxiliary FCN head
reads the middle one (stride 8, 192 channels; Swin's auxiliary head reads its third of four levels). Heads use SyncBN
as mmseg does for 8-GPU training; single-process runs swap it for BN (see configs/demo/). The backbone's
BatchNorms (inside the q/k/v conv projections) are plain BatchNorm2d; the recipes convert them to SyncBN for
multi-GPU training through the top-level ``sync_bn`` option (see configs/cvt/).
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
        type='vit_backbones.CvT',
        arch='cvt-13',
        drop_rate=0.0,
        attn_drop_rate=0.0,
        drop_path_rate=0.1,
        norm_eval=False,
        out_indices=(0, 1, 2)),
    decode_head=dict(
        type='UPerHead',
        in_channels=[64, 192, 384],
        in_index=[0, 1, 2],
        pool_scales=(1, 2, 3, 6),
        channels=512,
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=dict(
        type='FCNHead',
        in_channels=192,
        in_index=1,
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
