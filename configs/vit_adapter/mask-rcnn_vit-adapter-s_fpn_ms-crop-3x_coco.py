"""Mask R-CNN with ViT-Adapter-S (DeiT-S) on COCO 2017, 3x schedule (36 epochs) with multi-scale + crop training,
8 GPUs x 2 images: the official recipe (czczup/ViT-Adapter
``detection/configs/mask_rcnn/mask_rcnn_deit_adapter_small_fpn_3x_coco.py``).

Train (8 GPUs) and test:
    bash tools/dist_train.sh configs/vit_adapter/mask-rcnn_vit-adapter-s_fpn_ms-crop-3x_coco.py 8
    python tools/test.py configs/vit_adapter/mask-rcnn_vit-adapter-s_fpn_ms-crop-3x_coco.py work_dirs/.../epoch_36.pth

Expected with the ImageNet-1k DeiT-S loaded below: 48.2 box AP / 42.8 mask AP (ViT-Adapter README). The DeiT
checkpoint initialises the ViT (cls token and cls position row dropped, the 14x14 grid resized at every forward);
the adapter and the LayerScales start from their random init. Offline, download it and point
``model.backbone.init_cfg.checkpoint`` at the file.

BatchNorm: the adapter's spatial prior and output norms are SyncBN as in the official model (which hard-codes it);
for a single process (one GPU, CPU) pass ``--cfg-options model.backbone.norm_cfg.type=BN``.

Everything is the Swin-T 3x recipe (``swin/mask-rcnn_swin-t_fpn_ms-crop-3x_coco.py``: AdamW lr 1e-4, weight decay
0.05, LR x0.1 after epochs 27 and 33, DETR-style multi-scale + crop augmentation, batch 16) except:
* Backbone: DeiT-S (384 channels, 12 blocks, 6 heads) with LayerScale (the official ViT's ``layer_scale=True``,
  gammas start at 1); 14x14 windowed attention in blocks 0, 1, 3, 4, 6, 7, 9, 10, global attention in 2, 5, 8, 11;
  adapter: 4 interactions over blocks [0-2], [3-5], [6-8], [9-11], deformable attention with 6 heads and 4 points,
  value ratio 1.0, ConvFFN ratio 0.25, two extra extractors, the last ViT map added to every level (the official
  mmdet model); drop-path 0.2 (blocks linear from 0, every extractor 0.2). Four maps at strides 4, 8, 16, 32, 384
  channels each, into mmdet's FPN (256 channels, 5 levels).
* Data: the Swin-T 3x augmentation followed by a random crop to at most 1024x1024 (the official pipeline's last crop).
* Optimizer: the official no-decay keys: ``level_embed``, ``pos_embed``, ``norm`` and ``bias`` (every bias of the
  model, heads included). As in the official model, the spatial prior's BatchNorms (``spm.stem.1`` ...) keep weight
  decay on their weights (their names do not contain ``norm``), and so do the LayerScales and injector gammas.
* Schedule: 500 linear warmup iterations (mmdet 2.x ``schedule_3x``, the official base).
Data: COCO 2017 under data/coco/ (train2017/, val2017/, annotations/instances_{train,val}2017.json).
"""
_base_ = ['../swin/mask-rcnn_swin-t_fpn_ms-crop-3x_coco.py']

pretrained = 'https://dl.fbaipublicfiles.com/deit/deit_small_patch16_224-cd65a155.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='vit_backbones.ViTAdapter',
        arch='small',
        pretrain_img_size=224,
        layer_scale_init_value=1.0,
        drop_path_rate=0.2,
        window_size=14,
        window_block_indexes=[0, 1, 3, 4, 6, 7, 9, 10],
        conv_inplane=64,
        n_points=4,
        deform_num_heads=6,
        cffn_ratio=0.25,
        deform_ratio=1.0,
        interaction_indexes=[[0, 2], [3, 5], [6, 8], [9, 11]],
        vit_feature='last',
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        out_indices=(0, 1, 2, 3),
        with_cp=False,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[384, 384, 384, 384], out_channels=256, num_outs=5))

# The Swin-T 3x pipeline (random flip; a short side in 480..800, or one in {400, 500, 600}, a random 384..600 crop
# and again a short side in 480..800), then a crop to at most 1024x1024.
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='RandomChoice',
        transforms=[
            [dict(type='RandomChoiceResize', scales={{_base_.multi_scales}}, keep_ratio=True)],
            [
                dict(type='RandomChoiceResize', scales=[(400, 1333), (500, 1333), (600, 1333)], keep_ratio=True),
                dict(type='RandomCrop', crop_type='absolute_range', crop_size=(384, 600), allow_negative_crop=True),
                dict(type='RandomChoiceResize', scales={{_base_.multi_scales}}, keep_ratio=True),
            ],
        ]),
    dict(type='RandomCrop', crop_type='absolute_range', crop_size=(1024, 1024), allow_negative_crop=True),
    dict(type='PackDetInputs'),
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
