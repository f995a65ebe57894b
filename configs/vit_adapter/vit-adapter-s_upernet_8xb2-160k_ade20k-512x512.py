"""ViT-Adapter-S (DeiT-S) + UperNet on ADE20K, 512x512 crops, 160k iterations, 8 GPUs x 2 images: the official
recipe (czczup/ViT-Adapter ``segmentation/configs/ade20k/upernet_deit_adapter_small_512_160k_ade20k.py``).

Train (8 GPUs; the official run used mixed precision) and test:
    bash tools/dist_train.sh configs/vit_adapter/vit-adapter-s_upernet_8xb2-160k_ade20k-512x512.py 8 --amp
    python tools/test.py configs/vit_adapter/vit-adapter-s_upernet_8xb2-160k_ade20k-512x512.py \
        work_dirs/.../iter_160000.pth

Expected with the ImageNet-1k DeiT-S loaded below: 46.2 mIoU single-scale, 47.1 multi-scale (ViT-Adapter README).
The DeiT checkpoint initialises the ViT (its cls token and cls position row are dropped, the 14x14 grid is resized at
every forward as the official model does); the adapter and the LayerScales start from their random init. Offline,
download it and point ``model.backbone.init_cfg.checkpoint`` at the file.

BatchNorm: the adapter's spatial prior and output norms are SyncBN as in the official model (which hard-codes it);
for a single process (one GPU, CPU) pass ``--cfg-options model.backbone.norm_cfg.type=BN`` (and the heads' too:
``model.decode_head.norm_cfg.type=BN model.auxiliary_head.norm_cfg.type=BN``).

Everything is the Swin-T recipe (``swin/swin-t_upernet_8xb2-160k_ade20k-512x512.py``: AdamW lr 6e-5, weight decay
0.01, 1500 linear warmup iterations then poly decay, 160k iterations, batch 16, 512x512 crops) except:
* Backbone: DeiT-S (384 channels, 12 blocks, 6 heads) with LayerScale (the official ViT's ``layer_scale=True``,
  gammas start at 1), global attention in every block; adapter: 4 interactions over blocks [0-2], [3-5], [6-8],
  [9-11], deformable attention with 6 heads and 4 points, value ratio 1.0, ConvFFN ratio 0.25, two extra extractors,
  the ViT map after interaction i added to level i (the official mmseg model), drop-path 0.2 (blocks linear from 0,
  every extractor 0.2). Four maps at strides 4, 8, 16, 32, 384 channels each.
* Heads: UperNet on the four levels, the auxiliary FCN head on the stride-16 level (the official ``upernet_r50``
  base), 150 classes.
* Optimizer: layer-wise lr decay 0.95 (block k of 12 gets 0.95^(12 - k), patch and position embeddings 0.95^13, the
  adapter and the heads the full lr); no weight decay on 1-D parameters (norms, biases, LayerScales) and on the
  position embedding (the official constructor decays the latter: its name check misses ``backbone.pos_embed``).
* Testing: images resized to 2048x512 (keep ratio), then to a multiple of 32; sliding 512x512 windows, stride 341.
Data: ADEChallengeData2016 under data/ade/ (see mmseg's dataset preparation docs).
"""
_base_ = ['../swin/swin-t_upernet_8xb2-160k_ade20k-512x512.py']

pretrained = 'https://dl.fbaipublicfiles.com/deit/deit_small_patch16_224-cd65a155.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='vit_backbones.ViTAdapter',
        arch='small',
        pretrain_img_size=224,
        layer_scale_init_value=1.0,
        drop_path_rate=0.2,
        conv_inplane=64,
        n_points=4,
        deform_num_heads=6,
        cffn_ratio=0.25,
        deform_ratio=1.0,
        interaction_indexes=[[0, 2], [3, 5], [6, 8], [9, 11]],
        vit_feature='interactions',
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        out_indices=(0, 1, 2, 3),
        with_cp=False,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[384, 384, 384, 384]),
    auxiliary_head=dict(in_channels=384, in_index=2),
    test_cfg=dict(mode='slide', crop_size={{_base_.crop_size}}, stride=(341, 341)))

test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 512), keep_ratio=True),
    dict(type='ResizeToMultiple', size_divisor=32),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(
    constructor='vit_backbones.LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(_delete_=True, layer_decay_rate=0.95))
