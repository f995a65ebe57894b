"""CeiT-S + MultiLevelNeck + UperNet on ADE20K, 512x512 crops, 160k iterations, 8 GPUs x 2 images: mmseg's DeiT-S
recipe (``vit/deit-s_mln_upernet_8xb2-160k_ade20k-512x512.py``) with CeiT-S in place of DeiT-S.

Train (8 GPUs) and test:
    bash tools/dist_train.sh configs/ceit/ceit-s_mln_upernet_8xb2-160k_ade20k-512x512.py 8
    python tools/test.py configs/ceit/ceit-s_mln_upernet_8xb2-160k_ade20k-512x512.py work_dirs/.../iter_160000.pth

No published result for this recipe, and no public CeiT weights (the paper released no code; coeusguo/ceit, the
most used implementation, lists none): train CeiT-S on ImageNet-1k first (the paper's 300-epoch DeiT recipe) and
point ``model.backbone.init_cfg`` at that checkpoint, ``dict(type='Pretrained', checkpoint=PATH)``: ours or
coeusguo/ceit's keys load (build with ``leff_out_act=False`` for the latter). Its 14x14 position grid is resized
to the 32x32 grid of the 512 crops (bicubic, no antialias, as mmseg); the load report lists the classifier
``head``, the layer-wise class-token attention ``lca.*`` and its final ``norm`` as left out (this dense recipe
builds none of them): expected. As written (no checkpoint) it trains from scratch. DeiT-S in the same recipe
gives 43.82 mIoU single-scale (mmseg), the bar to compare against.

Everything is the Swin-T recipe (``swin/swin-t_upernet_8xb2-160k_ade20k-512x512.py``: AdamW lr 6e-5, weight decay
0.01, 1500 linear warmup iterations then poly decay, 160k iterations, batch 16, 512x512 crops) except the model and
the no-decay keys (position embedding, cls token and norms as mmseg's ViT recipes, plus the BatchNorms of the I2T
stem and of every LeFF):
* Backbone: CeiT-S (``arch='small'``: 384 channels, 12 blocks, 6 heads, I2T stem, LeFF) without its LCA, the
  patch-token maps of blocks 2, 5, 8, 11 (all at stride 16), drop-path 0.1. The BatchNorms train (``norm_eval``
  False) and are synchronised across GPUs (``sync_bn='torch'``, as the ShuffleTransformer and CvT recipes).
* Neck: mmseg's ``MultiLevelNeck``: 1x1 lateral convs, resize by 4, 2, 1, 0.5 (strides 4, 8, 16, 32), 3x3 convs,
  384 channels each.
* Heads: UperNet on the four levels; the auxiliary FCN head on the last (stride 32) level, as mmseg's ViT recipes.
Data: ADEChallengeData2016 under data/ade/ (see mmseg's dataset preparation docs).
"""
_base_ = ['../vit/deit-s_mln_upernet_8xb2-160k_ade20k-512x512.py']  # its MultiLevelNeck, heads and schedule

model = dict(
    backbone=dict(
        _delete_=True,
        type='vit_backbones.CeiT',
        arch='small',
        pretrain_img_size={{_base_.crop_size}},
        interpolate_antialias=False,
        drop_path_rate=0.1,
        out_indices=(2, 5, 8, 11),
        norm_eval=False,
        init_cfg=None))

# mmengine's Runner converts every BatchNorm to torch.nn.SyncBatchNorm when training is distributed (read there as
# cfg.get('sync_bn'); ignored in a single process): the I2T and LeFF BatchNorms then see the whole batch of 16.
sync_bn = 'torch'

# No weight decay on the position embedding, the cls token and the norms: 'norm' catches the LayerNorms,
# 'patch_embed.bn' the I2T stem's BatchNorm and 'leff.bn' the LeFF BatchNorms bn1/bn2/bn3 (all of the backbone's).
optim_wrapper = dict(
    paramwise_cfg=dict(
        custom_keys={
            '_delete_': True,
            'pos_embed': dict(decay_mult=0.0),
            'cls_token': dict(decay_mult=0.0),
            'norm': dict(decay_mult=0.0),
            'patch_embed.bn': dict(decay_mult=0.0),
            'leff.bn': dict(decay_mult=0.0),
        }))
