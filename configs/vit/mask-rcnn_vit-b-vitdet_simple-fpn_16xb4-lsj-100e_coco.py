"""ViTDet: Mask R-CNN with a plain ViT-B (MAE pre-trained) and the simple feature pyramid on COCO 2017, LSJ 1024x1024,
100 epochs (184375 iterations of 64 images), 16 GPUs x 4 images: the ViTDet paper recipe.

Train (16 GPUs: 2 nodes x 8, mixed precision as the paper) and test:
    NNODES=2 NODE_RANK=0 MASTER_ADDR=node0 bash tools/dist_train.sh \
        configs/vit/mask-rcnn_vit-b-vitdet_simple-fpn_16xb4-lsj-100e_coco.py 8 --amp  # NODE_RANK=1 on node1
    python tools/test.py configs/vit/mask-rcnn_vit-b-vitdet_simple-fpn_16xb4-lsj-100e_coco.py \
        work_dirs/.../iter_184375.pth

Expected with the MAE ViT-B loaded below: 51.6 box AP / 45.9 mask AP (ViTDet paper, Li et al., arXiv:2203.16527;
detectron2's ``mask_rcnn_vitdet_b_100ep``). With another number of GPUs keep 64 images per iteration (e.g. 8x8), or
scale the learning rate and the schedule. The MAE checkpoint
(``{'model': ...}``, timm keys with a cls row in ``pos_embed``) is converted while loading: the cls row is dropped and
the 14x14 position grid is resized (bicubic, no antialias: detectron2's ``get_abs_pos``) to the 64x64 grid of the
1024 input. The load report lists ``cls_token`` and ``norm.*`` as unmatched (this ViT has neither) and the relative
tables as missing (they start at 0): expected. Offline, download it and point ``model.backbone.init_cfg.checkpoint``
at the file.

Recipe (detectron2 ``projects/ViTDet/configs/COCO/mask_rcnn_vitdet_b_100ep.py``, mmdet ``projects/ViTDet``):
* Backbone: ViT-B/16 without cls token and final norm; windowed attention (14x14) in blocks 0, 1, 3, 4, 6, 7, 9, 10,
  global attention in blocks 2, 5, 8, 11; decomposed relative positions in every block (tables start at 0: MAE has
  none); absolute positions from MAE; drop-path 0.1. ``pretrain_img_size=1024`` sizes the global blocks' relative
  tables for the 64x64 grid as detectron2 does (``input_size``); our backbone ties the absolute grid to the same
  size, so the MAE grid is resized once at load (detectron2 resizes it at every forward; the two agree at init).
* Neck: the simple feature pyramid from the last (stride 16) map: scales 4, 2, 1, 0.5 plus a max-pooled p6, 256
  channels, LayerNorm after every convolution: strides 4, 8, 16, 32, 64 for mmdet's RPN anchors and RoI extractors.
* Heads: RPN with two 3x3 convolutions; box head with four 3x3 convolutions (LayerNorm) and one FC
  (``Shared4Conv1FCBBoxHead``); mask head with LayerNorm after each of its four convolutions.
* Data: large-scale jitter: random flip, resize of the 1024x1024 box by a random ratio in [0.1, 2.0], random
  1024x1024 crop (boxes recomputed from the masks, crops without objects allowed), drop degenerate boxes, pad to
  1024x1024; testing resizes the longer side to 1024 and pads to 1024x1024.
* Optimizer: AdamW lr 1e-4, betas (0.9, 0.999), weight decay 0.1, layer-wise lr decay 0.7 (block k of 12 gets
  0.7^(12 - k), patch and position embeddings 0.7^13, neck and heads the full lr). No weight decay on 1-D parameters
  (norms and biases, also in the neck and heads; detectron2 decays biases) and on position/relative tables.
* Schedule: 250 linear warmup iterations, LR x0.1 at iterations 163889 and 177546 (88.9 and 96.3 epochs), 184375
  iterations; evaluation and checkpoints every 5000 iterations and at the end.
Data: COCO 2017 under data/coco/ (train2017/, val2017/, annotations/instances_{train,val}2017.json).
"""
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/default_runtime.py',
    '../_base_/models/vitdet.py',
]
custom_imports = dict(imports=['vit_backbones', 'vit_backbones.engine.safe_checkpoint_io'], allow_failed_imports=False)

pretrained = 'https://dl.fbaipublicfiles.com/mae/pretrain/mae_pretrain_vit_base.pth'
norm_cfg = _base_.vitdet_norm_cfg

model = dict(
    backbone=dict(
        _base_.vitdet_backbone,
        _delete_=True,
        arch='base',
        pretrain_img_size=1024,
        window_size=14,
        with_cp=False,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(_base_.vitdet_neck, _delete_=True, in_channels=768, out_channels=256),
    rpn_head=dict(num_convs=2),
    roi_head=dict(
        bbox_head=dict(type='Shared4Conv1FCBBoxHead', conv_out_channels=256, norm_cfg=norm_cfg),
        mask_head=dict(norm_cfg=norm_cfg)))

# Large-scale jitter (the images are padded to 1024x1024 here, so the data preprocessor's divisor-32 pad is a no-op).
train_pipeline = _base_.vitdet_lsj_train_pipeline
test_pipeline = _base_.vitdet_lsj_test_pipeline
# 16 GPUs x 4 images per GPU = total batch 64.
train_dataloader = dict(batch_size=4, num_workers=8, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

# Layer-wise lr decay; its constructor already exempts 1-D parameters and position / relative tables from weight
# decay, so there are no custom keys.
optim_wrapper = dict(
    type='OptimWrapper',
    constructor='vit_backbones.LayerDecayOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.1),
    paramwise_cfg=dict(layer_decay_rate=0.7))

# 100 epochs = 184375 iterations x 64 images / 118k images; LR steps at 88.9 and 96.3 epochs.
max_iters = 184375
interval = 5000
train_cfg = dict(
    _delete_=True,
    type='IterBasedTrainLoop',
    max_iters=max_iters,
    val_interval=interval,
    dynamic_intervals=[(max_iters // interval * interval + 1, max_iters)])
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=250),
    dict(type='MultiStepLR', begin=0, end=max_iters, by_epoch=False, milestones=[163889, 177546], gamma=0.1),
]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, save_last=True, interval=interval, max_keep_ckpts=5))
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=False)
auto_scale_lr = dict(enable=False, base_batch_size=64)
