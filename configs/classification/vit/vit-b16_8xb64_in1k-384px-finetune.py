"""ViT-B/16 fine-tuned on ImageNet-1k at 384x384 from its 224x224 pre-training, 20k steps, 8 GPUs x 64 images: the
ViT paper's fine-tuning recipe (arXiv:2010.11929, section 4.1 and Appendix B.1.1, Table 4).

SGD momentum 0.9, total batch 512, no weight decay, gradient clipping at global norm 1, lr 0.03 (from the paper's
sweep {0.003, 0.01, 0.03, 0.06}), 500 linear warm-up steps then cosine decay to 0 over 20k steps; the pre-training
MLP head is replaced by a zero-initialised linear head on the cls token; resolution 384 (position embedding of the
backbone interpolated in 2-D, bicubic as timm does, from the 14x14 to the 24x24 grid when the checkpoint loads);
Polyak averaging with factor 0.9999: mmengine's ``EMAHook`` with ``momentum=1e-4`` (its
``ExponentialMovingAverage`` updates ``averaged = (1 - momentum) * averaged + momentum * new``), validated and saved
with the averaged weights.
Dropout 0 while fine-tuning (the reference vit_jax model configs). Paper: 77.9% top-1 (ViT-B/16, ImageNet-1k only).

    python tools/train.py configs/classification/vit/vit-b16_8xb64_in1k-384px-finetune.py \
        --cfg-options model.backbone.init_cfg.checkpoint=work_dirs/vit-b16_64xb64_in1k-pretrain/epoch_300.pth
"""
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs64_pil_resize.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(imports=['vit_backbones', 'vit_backbones.engine.safe_checkpoint_io'],
                      allow_failed_imports=False)

pretrained = 'work_dirs/vit-b16_64xb64_in1k-pretrain/epoch_300.pth'  # the pre-training run's whole-model checkpoint
img_size = 384
data_preprocessor = dict(num_classes=1000, mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5], to_rgb=True)
model = dict(
    type='ImageClassifier',
    backbone=dict(type='vit_backbones.VisionTransformer', arch='base', patch_size=16, pretrain_img_size=img_size,
                  drop_rate=0.0, out_indices=-1, cls_output='cls_token',
                  init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    neck=None,
    head=dict(type='VisionTransformerClsHead', num_classes=1000, in_channels=768,
              init_cfg=dict(type='Constant', layer='Linear', val=0),
              loss=dict(type='CrossEntropyLoss', loss_weight=1.0)),
)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=img_size, backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=img_size, edge='short', backend='pillow'),
    dict(type='CenterCrop', crop_size=img_size),
    dict(type='PackInputs'),
]
# 8 GPUs x 64 images = total batch 512; iteration-based: 20k steps.
train_dataloader = dict(batch_size=64, sampler=dict(type='InfiniteSampler', shuffle=True),
                        dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

max_iters = 20000
warmup_iters = 500
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.03, momentum=0.9, weight_decay=0.0),
    clip_grad=dict(max_norm=1.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='CosineAnnealingLR', eta_min=0.0, by_epoch=False, begin=warmup_iters, end=max_iters),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=2000)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=100, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=2000, max_keep_ckpts=3))
log_processor = dict(by_epoch=False)
custom_hooks = [dict(type='EMAHook', momentum=1e-4, priority='ABOVE_NORMAL')]
auto_scale_lr = dict(base_batch_size=512)
