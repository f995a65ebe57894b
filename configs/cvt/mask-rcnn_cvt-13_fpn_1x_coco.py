"""Mask R-CNN with our CvT-13 on COCO 2017, 1x schedule (12 epochs), 8 GPUs x 2 images: mmdet's Swin recipe.

Train (8 GPUs) and test:
    bash tools/dist_train.sh configs/cvt/mask-rcnn_cvt-13_fpn_1x_coco.py 8
    python tools/test.py configs/cvt/mask-rcnn_cvt-13_fpn_1x_coco.py work_dirs/.../epoch_12.pth

Expected: no published number (neither the CvT paper nor its repository reports COCO results); not measured here
either. For reference, Swin-T gets 42.7 box AP / 39.3 mask AP with the same recipe
(``swin/mask-rcnn_swin-t_fpn_1x_coco.py``).

Checkpoint: the ImageNet-1k CvT-13 from the Hugging Face hub (``transformers`` layout, converted by the backbone
while loading), downloaded once by our checkpoint I/O to ``$TORCH_HOME/checkpoints/microsoft--cvt-13--main--
pytorch_model.bin`` (one cache file per hub repository). Offline, download it (or the official OneDrive
``CvT-13-224x224-IN-1k.pth``, which loads as well) and point ``model.backbone.init_cfg.checkpoint`` at the file.

Recipe (the Swin-T one): AdamW lr 1e-4, weight decay 0.05 (none on the cls token and norms), 1000 linear warmup
iterations, LR x0.1 after epochs 8 and 11, drop-path 0.1 (last stage only, CvT's rule), 1333x800 single-scale
training. CvT has three levels (strides 4, 8, 16; 64, 192, 384 channels): the FPN still gives five outputs, its
two extra levels max-pooled from the last (mmdet's FPN with ``add_extra_convs=False``), so they sit at strides
4, 8, 16, 32, 64 as the RPN anchors of the base config expect; the RoI extractors read the first four.
BatchNorm: the q/k/v conv projections end in BatchNorm2d; with 2 images per GPU their batch statistics would be
noisy, so ``norm_eval=True`` keeps the ImageNet running statistics (their affine weights still train).
Data: COCO 2017 under data/coco/ (train2017/, val2017/, annotations/instances_{train,val}2017.json).
"""
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['vit_backbones', 'vit_backbones.engine.safe_checkpoint_io'], allow_failed_imports=False)

pretrained = 'https://huggingface.co/microsoft/cvt-13/resolve/main/pytorch_model.bin'

model = dict(
    backbone=dict(
        _delete_=True,
        type='vit_backbones.CvT',
        arch='cvt-13',
        drop_path_rate=0.1,
        norm_eval=True,  # BatchNorms with 2 images per GPU: keep the pretrained statistics
        out_indices=(0, 1, 2),
        with_cp=False,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    # Three inputs at strides 4, 8, 16; outputs 4 and 5 (strides 32, 64) are max-pooled from output 3.
    neck=dict(in_channels=[64, 192, 384], out_channels=256, num_outs=5))

max_epochs = 12
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[8, 11], gamma=0.1),
]
# 'norm' catches the LayerNorms (patch_embed.norm, norm1/norm2, norms.2), the conv_proj_*.bn keys the BatchNorms.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(_delete_=True, type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(
        custom_keys={
            'cls_token': dict(decay_mult=0.0),
            'norm': dict(decay_mult=0.0),
            'conv_proj_q.bn': dict(decay_mult=0.0),
            'conv_proj_k.bn': dict(decay_mult=0.0),
            'conv_proj_v.bn': dict(decay_mult=0.0),
        }))
# 8 GPUs x 2 images per GPU = total batch 16.
train_dataloader = dict(batch_size=2)
auto_scale_lr = dict(enable=False, base_batch_size=16)
