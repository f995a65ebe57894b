"""DeepViT-S + MultiLevelNeck + UperNet on ADE20K, 512x512 crops, 160k iterations, 8 GPUs x 2 images: mmseg's DeiT-S
recipe (``vit/deit-s_mln_upernet_8xb2-160k_ade20k-512x512.py``) with DeepViT-S in place of DeiT-S. The plain-ViT
neck works unchanged: DeepViT's blocks are single-scale stride-16 maps like DeiT's.

Train (8 GPUs) and test:
    bash tools/dist_train.sh configs/deepvit/deepvit-s_mln_upernet_8xb2-160k_ade20k-512x512.py 8
    python tools/test.py configs/deepvit/deepvit-s_mln_upernet_8xb2-160k_ade20k-512x512.py work_dirs/.../iter_160000.pth

No published result for this recipe (the paper and the official repo train on ImageNet only); DeiT-S in the same
recipe gives 43.82 mIoU single-scale (mmseg), the bar to compare against. The ImageNet-1k DeepViT-S checkpoint
(82.3% top-1) is a Google Drive file of the official repo (zhoudaquan/dvit_repo README, "DeepViTs with CNNs for
patch processing": https://drive.google.com/file/d/1evhBjla4Nth7LawW2PAXnGEcpv3YBWEC), a timm training-script file
(``{'state_dict': ..., 'state_dict_ema': ...}`` with the official keys) that has no direct-download URL: download it to
``checkpoints/deepvit_s_224.pth.tar`` (or point ``model.backbone.init_cfg.checkpoint`` elsewhere). It loads as it is:
the classifier ``head`` is left out, its 14x14 position grid is resized to the 32x32 grid of the 512 crops (bicubic),
and the load report lists the final ``norm`` as left out (this recipe has no final norm): expected.

Everything is the Swin-T recipe (``swin/swin-t_upernet_8xb2-160k_ade20k-512x512.py``: AdamW lr 6e-5, weight decay
0.01, 1500 linear warmup iterations then poly decay, 160k iterations, batch 16, 512x512 crops) except the model and
the no-decay keys (mmseg's ViT ones: position embedding, cls token and norms, the re-attention BatchNorms
``attn.var_norm`` among them; plus the stem's BatchNorms ``patch_embed.bn1/bn2``):
* Backbone: DeepViT-S (``arch='s'``: 396 channels, 16 blocks, 12 heads, MLP ratio 3, the convolutional patch stem,
  re-attention in blocks 11-15) with its cls token, the maps of blocks 3, 7, 11, 15 (all at stride 16), no final norm
  (as the DeiT-S recipe), drop-path 0.1. Its BatchNorms (stem and re-attention) train (``norm_eval=False``) and
  ``sync_bn = 'torch'`` synchronises them over the 8 GPUs (2 images each).
* Neck: mmseg's ``MultiLevelNeck``: 1x1 lateral convs, resize by 4, 2, 1, 0.5 (strides 4, 8, 16, 32), 3x3 convs,
  396 channels each.
* Heads: UperNet on the four levels; the auxiliary FCN head on the last (stride 32) level, as mmseg's ViT recipes.
Data: ADEChallengeData2016 under data/ade/ (see mmseg's dataset preparation docs).
"""
_base_ = ['../vit/deit-s_mln_upernet_8xb2-160k_ade20k-512x512.py']  # its MultiLevelNeck, heads and schedule

pretrained = 'checkpoints/deepvit_s_224.pth.tar'
model = dict(
    backbone=dict(
        _delete_=True,
        type='vit_backbones.DeepViT',
        arch='s',
        patch_size=16,
        pretrain_img_size={{_base_.crop_size}},
        final_norm=False,
        drop_path_rate=0.1,
        norm_eval=False,
        out_indices=(3, 7, 11, 15),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(type='MultiLevelNeck', in_channels=[396, 396, 396, 396], out_channels=396, scales=[4, 2, 1, 0.5]),
    decode_head=dict(in_channels=[396, 396, 396, 396]),
    auxiliary_head=dict(in_channels=396, in_index=3))

# the backbone's BatchNorms see the whole batch of 16 (mmengine's Runner converts them; ignored in one process)
sync_bn = 'torch'

optim_wrapper = dict(
    paramwise_cfg=dict(
        custom_keys={
            '_delete_': True,
            'pos_embed': dict(decay_mult=0.0),
            'cls_token': dict(decay_mult=0.0),
            'norm': dict(decay_mult=0.0),
            'patch_embed.bn': dict(decay_mult=0.0),
        }))
