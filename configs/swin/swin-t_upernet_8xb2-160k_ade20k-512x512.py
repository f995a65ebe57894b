"""Swin-T + UperNet on ADE20K, 512x512 crops, 160k iterations, 8 GPUs x 2 images: the Swin paper recipe.

Train (8 GPUs) and test:
    bash tools/dist_train.sh configs/swin/swin-t_upernet_8xb2-160k_ade20k-512x512.py 8
    python tools/train.py configs/swin/swin-t_upernet_8xb2-160k_ade20k-512x512.py --launcher pytorch  # per rank
    python tools/test.py configs/swin/swin-t_upernet_8xb2-160k_ade20k-512x512.py work_dirs/.../iter_160000.pth

Expected single-scale mIoU with the ImageNet-1k pretrained Swin-T loaded below: 44.41 (mmseg) / 44.51
(official repo); 45.8 with multi-scale + flip testing. The backbone starts from the official Swin-T checkpoint
(downloaded by mmengine; the backbone converts its keys when loading). Offline, or to start from a timm or
mmseg checkpoint instead, point it at a local file:
    python tools/train.py configs/swin/swin-t_upernet_8xb2-160k_ade20k-512x512.py --cfg-options \
        model.backbone.init_cfg.checkpoint=/path/to/swin_tiny_patch4_window7_224.pth

Data: ADEChallengeData2016 under data/ade/ (see mmseg's dataset preparation docs).
"""
_base_ = [
    '../_base_/models/upernet_swin-t.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py',
]
pretrained = 'https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_tiny_patch4_window7_224.pth'
crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(arch='tiny', window_size=7, drop_path_rate=0.3,
                  init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[96, 192, 384, 768], num_classes=150),
    auxiliary_head=dict(in_channels=384, num_classes=150))

# AdamW; no weight decay on position embeddings, relative position tables and norm layers.
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(
        custom_keys={
            'absolute_pos_embed': dict(decay_mult=0.0),
            'relative_position_bias_table': dict(decay_mult=0.0),
            'norm': dict(decay_mult=0.0),
        }))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=160000, by_epoch=False),
]

# 8 GPUs x 2 images per GPU = total batch 16.
train_dataloader = dict(batch_size=2)
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader
auto_scale_lr = dict(enable=False, base_batch_size=16)
