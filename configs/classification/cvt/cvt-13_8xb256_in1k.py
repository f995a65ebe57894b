"""CvT-13 on ImageNet-1k, 300 epochs, 8 GPUs x 256 images: the official CvT recipe (Wu et al., ICCV 2021,
arXiv:2103.15808; microsoft/CvT ``experiments/imagenet/cvt/cvt-13-224x224.yaml``).

AdamW lr 2.5e-4 per 256 images (2e-3 at total batch 2048), weight decay 0.05 (none on norms, biases and the cls
token), cosine to 1e-5 after 5 linear warm-up epochs, stochastic depth 0.1 in the last stage; DeiT augmentations
(RandAugment m9/n2, Mixup 0.8, CutMix 1.0, random erasing 0.25, label smoothing 0.1). The classifier reads the
last stage's final-normed cls token. Expected top-1: 81.6 (paper).

    bash tools/dist_train.sh configs/classification/cvt/cvt-13_8xb256_in1k.py 8
"""
_base_ = ['../_base_/deit-recipe_adamw-300e_in1k.py']
model = dict(
    backbone=dict(_delete_=True, type='vit_backbones.CvT', arch='cvt-13', drop_path_rate=0.1,
                  out_indices=(2,), cls_output='cls_token'),
    head=dict(in_channels=384))
train_dataloader = dict(batch_size=256)
optim_wrapper = dict(
    optimizer=dict(lr=2.5e-4 * 2048 / 256),
    paramwise_cfg=dict(custom_keys={'.cls_token': dict(decay_mult=0.0)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, end=5, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=5),
]
auto_scale_lr = dict(base_batch_size=2048)
# The last block's patch-token queries (conv_proj_q) feed nothing once only the cls token is read: DDP must allow
# parameters without gradients.
model_wrapper_cfg = dict(type='MMDistributedDataParallel', find_unused_parameters=True)
