"""LeViT-256 + UperNet on ADE20K, 512x512 crops, 160k iterations, 8 GPUs x 2 images: Swin-T's ADE20K recipe.

The LeViT paper has no segmentation results, so this is the Swin-T recipe
(``swin/swin-t_upernet_8xb2-160k_ade20k-512x512.py``: AdamW lr 6e-5, weight decay 0.01, 1500 linear warmup
iterations then poly decay, 160k iterations, batch 16, 512x512 crops) with the backbone swapped:
* Backbone: LeViT-256 (``arch='256'``: 256/384/512 channels, 4+4+4 blocks, key width 32, Hardswish), its three
  stages at strides 16, 32, 64; drop-path 0.1 on every residual branch (LeViT's rule: one rate for all). The
  attention-bias tables are laid out for the 32/16/8 grids of 512 crops (``pretrain_img_size``): the 14/7/4 tables
  of the ImageNet checkpoint are resized once on load (bicubic, antialiased), and test images of other sizes
  resize them again at every forward.
* Heads: UperNet fuses the three levels (256, 384, 512 channels) and predicts at stride 16 (the loss resizes the
  logits to the labels); the auxiliary FCN head reads the middle level (stride 32, 384 channels).
* BatchNorm: every LeViT projection ends in BatchNorm. ``sync_bn = 'torch'`` makes mmengine's Runner convert them
  (all BatchNorms of the model) to ``torch.nn.SyncBatchNorm`` under distributed training; they train
  (``norm_eval=False``). A single-process run keeps plain BatchNorm.
* No weight decay on the attention-bias tables (timm's and the official ``no_weight_decay``); the BatchNorms keep
  it, as the heads' BatchNorms do in every recipe here (LeViT names them ``bn``, as the heads do).

Train (8 GPUs) and test:
    bash tools/dist_train.sh configs/levit/levit-256_upernet_8xb2-160k_ade20k-512x512.py 8
    python tools/test.py configs/levit/levit-256_upernet_8xb2-160k_ade20k-512x512.py work_dirs/.../iter_160000.pth

Expected: no published number (neither the LeViT paper nor its repository reports ADE20K results); this recipe has
not been measured here either.

Checkpoint: timm's ImageNet-1k ``levit_256.fb_dist_in1k`` (Hugging Face hub ``timm/levit_256.fb_dist_in1k``, the
official weights in timm's keys); its classifier and distillation head are left out on load. timm's
``levit_conv_256`` checkpoints load as well. Offline, save timm's weights as a ``.pth`` file, e.g.
``torch.save(timm.create_model('levit_256.fb_dist_in1k', pretrained=True).state_dict(), 'checkpoints/levit_256.pth')``,
and point at it:
    python tools/train.py configs/levit/levit-256_upernet_8xb2-160k_ade20k-512x512.py --cfg-options \
        model.backbone.init_cfg.checkpoint=checkpoints/levit_256.pth
Data: ADEChallengeData2016 under data/ade/ (see mmseg's dataset preparation docs).
"""
_base_ = ['../swin/swin-t_upernet_8xb2-160k_ade20k-512x512.py']

pretrained = 'https://huggingface.co/timm/levit_256.fb_dist_in1k/resolve/main/model.safetensors'
model = dict(
    backbone=dict(
        _delete_=True,
        type='vit_backbones.LeViT',
        arch='256',
        pretrain_img_size={{_base_.crop_size}},
        drop_path_rate=0.1,
        norm_eval=False,
        out_indices=(0, 1, 2),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[256, 384, 512], in_index=[0, 1, 2]),
    auxiliary_head=dict(in_channels=384, in_index=1))
# mmengine's Runner converts every BatchNorm to torch.nn.SyncBatchNorm when training is distributed (read there as
# cfg.get('sync_bn'); ignored in a single process): the backbone's BatchNorms then see the whole batch of 16.
sync_bn = 'torch'

optim_wrapper = dict(
    paramwise_cfg=dict(
        custom_keys=dict(
            _delete_=True,
            attention_biases=dict(decay_mult=0.0))))
