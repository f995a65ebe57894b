"""CPVT-S + MultiLevelNeck + UperNet on ADE20K, 512x512 crops, 160k iterations, 8 GPUs x 2 images: mmseg's DeiT-S
recipe (``vit/deit-s_mln_upernet_8xb2-160k_ade20k-512x512.py``) with the position embedding replaced by CPVT's
Position Encoding Generator (Chu et al., arXiv:2102.10882).

Train (8 GPUs) and test:
    bash tools/dist_train.sh configs/cpvt/cpvt-s_mln_upernet_8xb2-160k_ade20k-512x512.py 8
    python tools/test.py configs/cpvt/cpvt-s_mln_upernet_8xb2-160k_ade20k-512x512.py work_dirs/.../iter_160000.pth

No ImageNet CPVT-S weights are published (Meituan-AutoML/CPVT releases none; the pyramid PCPVT weights are in
timm, ``twins_pcpvt_*``). The backbone therefore starts from the official ImageNet-1k DeiT-S, read in its ``deit``
layout: every block, the patch embedding and the cls token are loaded; DeiT's absolute ``pos_embed`` and head are
left out (CPVT has no position table: the PEG after block 0 encodes positions at any crop size, with no resize),
the PEG keeps its random init, and the load report lists the PEG keys as missing and DeiT's final ``norm.*`` as
unmatched (this recipe has no final norm): expected. No result has been measured for this recipe; the DeiT-S
recipe it follows gives 43.82 mIoU single-scale (mmseg). Offline, download the file and point
``model.backbone.init_cfg.checkpoint`` at it.

Everything is the Swin-T recipe (``swin/swin-t_upernet_8xb2-160k_ade20k-512x512.py``: AdamW lr 6e-5, weight decay
0.01, 1500 linear warmup iterations then poly decay, 160k iterations, batch 16, 512x512 crops) except the model and
the no-decay keys (mmseg's DeiT ones with the PEG in place of the position embedding, as the official Twins recipes
exempt ``pos_block``: PEG, cls token and norms):
* Backbone: CPVT-S (``arch='small'``: 384 channels, 12 blocks, 6 heads, a cls token, the PEG (depth-wise 3x3 conv +
  residual) after block 0), the maps of blocks 2, 5, 8, 11 (all at stride 16), no final norm, drop-path 0.1.
* Neck: mmseg's ``MultiLevelNeck``: 1x1 lateral convs, resize by 4, 2, 1, 0.5 (strides 4, 8, 16, 32), 3x3 convs,
  384 channels each.
* Heads: UperNet on the four levels; the auxiliary FCN head on the last (stride 32) level, as mmseg's ViT recipes.
Data: ADEChallengeData2016 under data/ade/ (see mmseg's dataset preparation docs).
"""
_base_ = ['../vit/deit-s_mln_upernet_8xb2-160k_ade20k-512x512.py']  # its MultiLevelNeck, heads and schedule

pretrained = 'https://dl.fbaipublicfiles.com/deit/deit_small_patch16_224-cd65a155.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='vit_backbones.CPVT',
        arch='small',
        patch_size=16,
        with_cls_token=True,
        peg_blocks=(0, ),
        final_norm=False,
        drop_path_rate=0.1,
        out_indices=(2, 5, 8, 11),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)))

optim_wrapper = dict(
    paramwise_cfg=dict(
        custom_keys=dict(
            _delete_=True,
            pos_block=dict(decay_mult=0.0),
            cls_token=dict(decay_mult=0.0),
            norm=dict(decay_mult=0.0))))
