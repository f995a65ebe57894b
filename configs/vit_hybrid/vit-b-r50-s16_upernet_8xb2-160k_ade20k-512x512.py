"""R50+ViT-B/16 + UperNet on ADE20K, 512x512 crops, 160k iterations, 8 GPUs x 2 images: Swin-T's ADE20K recipe.

Train (8 GPUs) and test:
    bash tools/dist_train.sh configs/vit_hybrid/vit-b-r50-s16_upernet_8xb2-160k_ade20k-512x512.py 8
    python tools/test.py configs/vit_hybrid_b_r50_upernet.py work_dirs/.../iter_160000.pth

Expected: no published number (the ViT paper has no segmentation results; DPT-Hybrid, which reads the same four
features with its own head, reports 49.02 mIoU on ADE20K, Ranftl et al. 2021, arXiv:2103.13413); this recipe has
not been measured here.

Everything is the Swin-T recipe (``swin/swin-t_upernet_8xb2-160k_ade20k-512x512.py``: AdamW lr 6e-5, weight decay
0.01, 1500 linear warmup iterations then poly decay, 160k iterations, batch 16, 512x512 crops) except the model and
the no-decay keys (mmseg's ViT ones: position embedding, cls token, norms; 'norm' also names the ResNet's
GroupNorms):
* Backbone: R50+ViT-B/16 (``arch='base_r50_s16'``: ResNet-50 stages 3-4-9 with weight-standardised convolutions,
  GroupNorm and 'SAME' padding, then ViT-B on the stride-16 map), drop-path 0.1 in the ViT blocks. Outputs, DPT-Hybrid's
  choice of features: the ResNet's stage 0 and 1 maps (strides 4 and 8; 256 and 512 channels) and the maps of ViT
  blocks 8 and 11 (stride 16, 768 channels; the last after the final norm). Why these and not mmseg's
  MultiLevelNeck over four ViT blocks (the DeiT-S recipe): the hybrid already computes real stride-4 and stride-8
  features, so nothing has to be upsampled from stride 16, and no neck is needed: UperNet's 1x1 lateral convs
  bring the four widths to 512, its top-down path resizes each level to the next one's size (two stride-16 levels
  are fine), and its pyramid pooling runs on block 11's stride-16 map.
* Heads: UperNet on the four levels; the auxiliary FCN head on block 8 (index 2, stride 16), as the Swin recipe
  puts it on its stride-16 level.
* Checkpoint: timm ``vit_base_r50_s16_384.orig_in21k_ft_in1k`` (the paper's ImageNet-21k R50+ViT-B/16 fine-tuned on
  ImageNet-1k at 384), timm layout with its classifier, which the load report lists as dropped; its 24x24 position
  grid is resized to the 32x32 grid of the 512 crops when loading. Offline, download it (or save timm's
  ``state_dict()``) and point ``model.backbone.init_cfg.checkpoint`` at the file.
Data: ADEChallengeData2016 under data/ade/ (see mmseg's dataset preparation docs).
"""
_base_ = ['../swin/swin-t_upernet_8xb2-160k_ade20k-512x512.py']

pretrained = 'https://huggingface.co/timm/vit_base_r50_s16_384.orig_in21k_ft_in1k/resolve/main/model.safetensors'
model = dict(
    backbone=dict(
        _delete_=True,
        type='vit_backbones.HybridVisionTransformer',
        arch='base_r50_s16',
        pretrain_img_size={{_base_.crop_size}},
        drop_path_rate=0.1,
        cnn_out_indices=(0, 1),
        out_indices=(8, 11),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[256, 512, 768, 768]),
    auxiliary_head=dict(in_channels=768, in_index=2))

optim_wrapper = dict(
    paramwise_cfg=dict(
        custom_keys=dict(
            _delete_=True,
            pos_embed=dict(decay_mult=0.0),
            cls_token=dict(decay_mult=0.0),
            norm=dict(decay_mult=0.0))))
