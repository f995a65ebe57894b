"""DeiT-S + MultiLevelNeck + UperNet on ADE20K, 512x512 crops, 160k iterations, 8 GPUs x 2 images: mmseg's recipe
``vit_deit-s16_mln_upernet_8xb2-160k_ade20k-512x512`` (v0.x name ``upernet_deit-s16_mln_512x512_160k_ade20k``).

Train (8 GPUs) and test:
    bash tools/dist_train.sh configs/vit/deit-s_mln_upernet_8xb2-160k_ade20k-512x512.py 8
    python tools/test.py configs/vit/deit-s_mln_upernet_8xb2-160k_ade20k-512x512.py work_dirs/.../iter_160000.pth

Expected with the ImageNet-1k DeiT-S loaded below: 43.82 mIoU single-scale, 45.07 multi-scale + flip (mmseg's
result for this recipe). Without the neck's multi-level fusion (mmseg's ``vit_deit-s16_upernet_8xb2-*``) mmseg
reports 42.96 (80k) / 42.87 (160k). The official DeiT checkpoint (``{'model': ...}``, timm keys) is converted while
loading; its 14x14 position grid is resized to the 32x32 grid of the 512 crops (bicubic, no antialias, as mmseg);
the load report lists DeiT's final ``norm.*`` as unmatched (this recipe has no final norm): expected.
Offline, download it and point ``model.backbone.init_cfg.checkpoint`` at the file.

Everything is the Swin-T recipe (``swin/swin-t_upernet_8xb2-160k_ade20k-512x512.py``: AdamW lr 6e-5, weight decay
0.01, 1500 linear warmup iterations then poly decay, 160k iterations, batch 16, 512x512 crops) except the model and
the no-decay keys (mmseg's: position embedding, cls token and norms):
* Backbone: DeiT-S/16 (``arch='small'``: 384 channels, 12 blocks, 6 heads) with its cls token, the maps of blocks
  2, 5, 8, 11 (all at stride 16), no final norm (mmseg's ``final_norm=False``; ``-ln_mln`` is the variant with it),
  drop-path 0.1. The patch embedding keeps DeiT's bias (mmseg's ``patch_bias`` default drops it on load).
* Neck: mmseg's ``MultiLevelNeck``: 1x1 lateral convs, resize by 4, 2, 1, 0.5 (strides 4, 8, 16, 32), 3x3 convs,
  384 channels each.
* Heads: UperNet on the four levels; the auxiliary FCN head on the last (stride 32) level, as mmseg's ViT recipes.
Data: ADEChallengeData2016 under data/ade/ (see mmseg's dataset preparation docs).
"""
_base_ = ['../swin/swin-t_upernet_8xb2-160k_ade20k-512x512.py']

pretrained = 'https://dl.fbaipublicfiles.com/deit/deit_small_patch16_224-cd65a155.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='vit_backbones.VisionTransformer',
        arch='small',
        patch_size=16,
        pretrain_img_size={{_base_.crop_size}},
        with_cls_token=True,
        final_norm=False,
        interpolate_antialias=False,
        drop_path_rate=0.1,
        out_indices=(2, 5, 8, 11),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(type='MultiLevelNeck', in_channels=[384, 384, 384, 384], out_channels=384, scales=[4, 2, 1, 0.5]),
    decode_head=dict(in_channels=[384, 384, 384, 384]),
    auxiliary_head=dict(in_channels=384, in_index=3))

optim_wrapper = dict(
    paramwise_cfg=dict(
        custom_keys=dict(
            _delete_=True,
            pos_embed=dict(decay_mult=0.0),
            cls_token=dict(decay_mult=0.0),
            norm=dict(decay_mult=0.0))))
