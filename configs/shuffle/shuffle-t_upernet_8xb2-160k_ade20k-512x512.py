"""Shuffle-T + UperNet on ADE20K, 512x512 crops, 160k iterations, 8 GPUs x 2 images: the Shuffle paper recipe.

The Shuffle Transformer paper follows Swin's segmentation setup, so this is the Swin-T recipe
(``swin/swin-t_upernet_8xb2-160k_ade20k-512x512.py``) with the backbone swapped: AdamW lr 6e-5, weight decay 0.01,
1500 linear warmup iterations then poly decay, 160k iterations, batch 16, 512x512 crops, drop-path 0.3.

Train (8 GPUs) and test:
    bash tools/dist_train.sh configs/shuffle/shuffle-t_upernet_8xb2-160k_ade20k-512x512.py 8
    python tools/test.py configs/shuffle/shuffle-t_upernet_8xb2-160k_ade20k-512x512.py work_dirs/.../iter_160000.pth

Expected with the ImageNet-1k pretrained Shuffle-T loaded below: 47.6 mIoU with multi-scale testing (Shuffle paper).
The paper reports no single-scale number, so none is given for the plain ``tools/test.py`` run above.

Checkpoint: the official weights are only on Google Drive, so mmengine cannot download them. Download Shuffle-T
from https://drive.google.com/drive/folders/1goDJtcnxgBAcHhZnNwrgOlG_WBftpmOS (the file holds
``{'model': state_dict, ...}``; the backbone unwraps and converts it while loading) and save it as
``checkpoints/shuffle_vit_tiny_patch4_window7_224.pth`` (relative to where you start training), or point at it:
    python tools/train.py configs/shuffle/shuffle-t_upernet_8xb2-160k_ade20k-512x512.py --cfg-options \
        model.backbone.init_cfg.checkpoint=/path/to/shuffle_tiny.pth

BatchNorm: every norm of the Shuffle backbone is a BatchNorm2d, which would see only the 2 images of its GPU.
``sync_bn = 'torch'`` below makes mmengine's Runner convert them (all BatchNorms of the model) to
``torch.nn.SyncBatchNorm`` when it wraps the model for distributed training, so they normalise over the whole
batch of 16 as the heads' SyncBN does; a single-process run keeps plain BatchNorm (the Runner ignores the option
there). The BatchNorms train (``norm_eval=False``).
Data: ADEChallengeData2016 under data/ade/ (see mmseg's dataset preparation docs).
"""
_base_ = [
    '../_base_/models/upernet_shuffle-t.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py',
]
pretrained = 'checkpoints/shuffle_vit_tiny_patch4_window7_224.pth'  # from Google Drive, see above
crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(arch='tiny', window_size=7, drop_path_rate=0.3, norm_eval=False,
                  init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[96, 192, 384, 768], num_classes=150),
    auxiliary_head=dict(in_channels=384, num_classes=150))
# mmengine's Runner converts every BatchNorm to torch.nn.SyncBatchNorm when training is distributed (read there as
# cfg.get('sync_bn'); ignored in a single process): the backbone's BatchNorms then see the whole batch of 16.
sync_bn = 'torch'

# AdamW; no weight decay on relative position tables and norm layers: 'norm' catches the blocks' norm1/2/3 and
# the patch merging's downsample.norm, 'patch_embed.bn' the stem's bn1/bn2 (all BatchNorms of the backbone).
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(
        custom_keys={
            'relative_position_bias_table': dict(decay_mult=0.0),
            'norm': dict(decay_mult=0.0),
            'patch_embed.bn': dict(decay_mult=0.0),
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
