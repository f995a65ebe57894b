"""CaiT-S24 + MultiLevelNeck + UperNet on ADE20K, 512x512 crops, 160k iterations, 8 GPUs x 2 images: mmseg's DeiT-S
recipe (``vit/deit-s_mln_upernet_8xb2-160k_ade20k-512x512.py``) with CaiT-S24 in place of DeiT-S.

Train (8 GPUs) and test:
    bash tools/dist_train.sh configs/cait/cait-s24_mln_upernet_8xb2-160k_ade20k-512x512.py 8
    python tools/test.py configs/cait/cait-s24_mln_upernet_8xb2-160k_ade20k-512x512.py work_dirs/.../iter_160000.pth

No published result for this recipe (neither the paper nor mmseg trains CaiT on ADE20K); DeiT-S in the same recipe
gives 43.82 mIoU single-scale (mmseg), the bar to compare against. The ImageNet-1k CaiT-S24 at 224 (timm
``cait_s24_224.fb_dist_in1k``, hub id ``timm/cait_s24_224.fb_dist_in1k``; the URL below is the official release,
``{'model': {'module.<key>': ...}}`` with timm's keys) is converted while loading: ``gamma_{1,2}`` become
``ls{1,2}.gamma``, its 14x14 position grid is resized to the 32x32 grid of the 512 crops (bicubic), and the load report
lists the classifier ``head``, the cls token, the class-attention blocks ``blocks_token_only`` and the final
``norm`` as left out (this dense recipe builds none of them): expected. Offline, download it and point
``model.backbone.init_cfg.checkpoint`` at the file.

Everything is the Swin-T recipe (``swin/swin-t_upernet_8xb2-160k_ade20k-512x512.py``: AdamW lr 6e-5, weight decay
0.01, 1500 linear warmup iterations then poly decay, 160k iterations, batch 16, 512x512 crops) except the model and
the no-decay keys (the position embedding and the norms, as mmseg's ViT recipes):
* Backbone: CaiT-S24 (``arch='s24'``: 384 channels, 24 talking-heads self-attention blocks, 8 heads, LayerScale)
  without its class-attention head, the patch-token maps of blocks 5, 11, 17, 23 (all at stride 16), no final norm
  (as the DeiT-S recipe), stochastic depth 0.1 in every block (CaiT's uniform rule).
* Neck: mmseg's ``MultiLevelNeck``: 1x1 lateral convs, resize by 4, 2, 1, 0.5 (strides 4, 8, 16, 32), 3x3 convs,
  384 channels each.
* Heads: UperNet on the four levels; the auxiliary FCN head on the last (stride 32) level, as mmseg's ViT recipes.
Data: ADEChallengeData2016 under data/ade/ (see mmseg's dataset preparation docs).
"""
_base_ = ['../vit/deit-s_mln_upernet_8xb2-160k_ade20k-512x512.py']  # its MultiLevelNeck, heads and schedule

pretrained = 'https://dl.fbaipublicfiles.com/deit/S24_224.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='vit_backbones.CaiT',
        arch='s24',
        patch_size=16,
        pretrain_img_size={{_base_.crop_size}},
        final_norm=False,
        drop_path_rate=0.1,
        out_indices=(5, 11, 17, 23),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)))

optim_wrapper = dict(
    paramwise_cfg=dict(
        custom_keys=dict(
            _delete_=True,
            pos_embed=dict(decay_mult=0.0),
            norm=dict(decay_mult=0.0))))
