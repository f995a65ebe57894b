"""ViT-Adapter-S (DeiT-S) + UperNet on ADE20K, 512x512 crops, 160k iterations, 8 GPUs x 2 images: the official
recipe (czczup/ViT-Adapter ``segmentation/configs/ade20k/upernet_deit_adapter_small_512_160k_ade20k.py``).

Train (8 GPUs; the official run used mixed precision) and test:
    bash tools/dist_train.sh configs/vit_adapter/vit-adapter-s_upernet_8xb2-160k_ade20k-512x512.py 8 --amp
    python tools/test.py configs/vit_adapter/vit-adapter-s_upernet_8xb2-160k_ade20k-512x512.py \
        work_dirs/.../iter_160000.pth

Expected with the ImageNet-1k DeiT-S of the backbone base: 46.2 mIoU single-scale, 47.1 multi-scale (ViT-Adapter
README). Offline, download it and point ``model.backbone.init_cfg.checkpoint`` at the file.

BatchNorm: the adapter's spatial prior and output norms are SyncBN as in the official model (which hard-codes it);
for a single process (one GPU, CPU) pass ``--cfg-options model.backbone.norm_cfg.type=BN`` (and the heads' too:
``model.decode_head.norm_cfg.type=BN model.auxiliary_head.norm_cfg.type=BN``).

Everything is the Swin-T recipe (``swin/swin-t_upernet_8xb2-160k_ade20k-512x512.py``: AdamW lr 6e-5, weight decay
0.01, 1500 linear warmup iterations then poly decay, 160k iterations, batch 16, 512x512 crops) except:
* Backbone: ViT-Adapter-S (``_base_/models/vit-adapter-s.py``: DeiT-S with LayerScale, 4 interactions, drop-path
  0.2), global attention in every block, the ViT map after interaction i added to level i (the official mmseg
  model). Four maps at strides 4, 8, 16, 32, 384 channels each.
* Heads: UperNet on the four levels, the auxiliary FCN head on the stride-16 level (the official ``upernet_r50``
  base), 150 classes.
* Optimizer: layer-wise lr decay 0.95 (block k of 12 gets 0.95^(12 - k), patch and position embeddings 0.95^13, the
  adapter and the heads the full lr); no weight decay on 1-D parameters (norms, biases, LayerScales) and on the
  position embedding (the official constructor decays the latter: its name check misses ``backbone.pos_embed``).
* Testing: images resized to 2048x512 (keep ratio), then to a multiple of 32; sliding 512x512 windows, stride 341.
Data: ADEChallengeData2016 under data/ade/ (see mmseg's dataset preparation docs).
"""
_base_ = ['../swin/swin-t_upernet_8xb2-160k_ade20k-512x512.py', '../_base_/models/vit-adapter-s.py']

model = dict(
    backbone=dict(_base_.vit_adapter_s, _delete_=True, vit_feature='interactions'),
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
