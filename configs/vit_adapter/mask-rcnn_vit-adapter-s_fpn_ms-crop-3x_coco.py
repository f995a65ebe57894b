"""Mask R-CNN with ViT-Adapter-S (DeiT-S) on COCO 2017, 3x schedule (36 epochs) with multi-scale + crop training,
8 GPUs x 2 images: the official recipe (czczup/ViT-Adapter
``detection/configs/mask_rcnn/mask_rcnn_deit_adapter_small_fpn_3x_coco.py``).

Train (8 GPUs) and test:
    bash tools/dist_train.sh configs/vit_adapter/mask-rcnn_vit-adapter-s_fpn_ms-crop-3x_coco.py 8
    python tools/test.py configs/vit_adapter/mask-rcnn_vit-adapter-s_fpn_ms-crop-3x_coco.py work_dirs/.../epoch_36.pth

Expected with the ImageNet-1k DeiT-S of the backbone base: 48.2 box AP / 42.8 mask AP (ViT-Adapter README).
Offline, download it and point ``model.backbone.init_cfg.checkpoint`` at the file.

BatchNorm: the adapter's spatial prior and output norms are SyncBN as in the official model (which hard-codes it);
for a single process (one GPU, CPU) pass ``--cfg-options model.backbone.norm_cfg.type=BN``.

Everything is the Swin-T 3x recipe (``swin/mask-rcnn_swin-t_fpn_ms-crop-3x_coco.py``: AdamW lr 1e-4, weight decay
0.05, LR x0.1 after epochs 27 and 33, DETR-style multi-scale + crop augmentation, batch 16) except:
* Backbone: ViT-Adapter-S (``_base_/models/vit-adapter-s.py``: DeiT-S with LayerScale, 4 interactions, drop-path
  0.2) with 14x14 windowed attention in blocks 0, 1, 3, 4, 6, 7, 9, 10 (q, k, v zero-padded to whole windows, the
  official rule and ``ViTAdapter``'s default ``window_pad='qkv'``) and global attention in 2, 5, 8, 11, the
  last ViT map added to every level (the official mmdet model). Four maps at strides 4, 8, 16, 32, 384 channels
  each, into mmdet's FPN (256 channels, 5 levels).
* Data: the Swin-T 3x augmentation followed by a random crop to at most 1024x1024 (the official pipeline's last crop).
* Optimizer: the official no-decay keys: ``level_embed``, ``pos_embed``, ``norm`` and ``bias`` (every bias of the
  model, heads included). As in the official model, the spatial prior's BatchNorms (``spm.stem.1`` ...) keep weight
  decay on their weights (their names do not contain ``norm``), and so do the LayerScales and injector gammas.
* Schedule: 500 linear warmup iterations (mmdet 2.x ``schedule_3x``, the official base).
Data: COCO 2017 under data/coco/ (train2017/, val2017/, annotations/instances_{train,val}2017.json).
"""
_base_ = ['../swin/mask-rcnn_swin-t_fpn_ms-crop-3x_coco.py', '../_base_/models/vit-adapter-s.py']

model = dict(
    backbone=dict(
        _base_.vit_adapter_s,
        _delete_=True,
        window_size=14,
        window_block_indexes=[0, 1, 3, 4, 6, 7, 9, 10],
        vit_feature='last'),
    neck=dict(in_channels=[384, 384, 384, 384], out_channels=256, num_outs=5))

# The Swin-T 3x pipeline (random flip; a short side in 480..800, or one in {400, 500, 600}, a random 384..600 crop
# and again a short side in 480..800), then a crop to at most 1024x1024.
train_pipeline = [
    *_base_.train_pipeline[:-1],  # all but PackDetInputs
    dict(type='RandomCrop', crop_type='absolute_range', crop_size=(1024, 1024), allow_negative_crop=True),
    _base_.train_pipeline[-1],
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

optim_wrapper = dict(
    paramwise_cfg=dict(
        custom_keys=dict(
            _delete_=True,
            level_embed=dict(decay_mult=0.0),
            pos_embed=dict(decay_mult=0.0),
            norm=dict(decay_mult=0.0),
            bias=dict(decay_mult=0.0))))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end={{_base_.max_epochs}}, by_epoch=True, milestones=[27, 33], gamma=0.1),
]
