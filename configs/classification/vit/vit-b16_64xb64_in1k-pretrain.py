"""ViT-B/16 pre-trained on ImageNet-1k at 224x224, 300 epochs, 64 GPUs x 64 images: the ViT paper's recipe
(Dosovitskiy et al., ICLR 2021, arXiv:2010.11929, section 4.1 and Appendix B.1, Table 3 row "ViT-* ImageNet").

Adam(W) beta1 0.9, beta2 0.999, total batch 4096, lr 3e-3, weight decay 0.3 (Table 3's ImageNet-1k value; the
"high weight decay of 0.1" in section 4.1 is the JFT-300M setting; decoupled as in the reference's Adam; no decay on
the cls token and position embedding, mmpretrain ``imagenet_bs4096_AdamW``), linear warm-up over 10k steps then
cosine decay to 0 (the paper's other option, linear decay, is its JFT / ImageNet-21k schedule), dropout 0.1,
gradient clipping at global norm 1, Inception crop + flip at 224, inputs scaled to [-1, 1]. The pre-training head
is an MLP with one tanh hidden layer (width 768, the released checkpoints' ``pre_logits``). Cross-entropy with
softmax (the paper's JFT runs used sigmoid cross-entropy). Then fine-tune at 384 with
``vit-b16_8xb64_in1k-384px-finetune.py`` (paper: 77.9% top-1 at 384).

    bash tools/dist_train.sh configs/classification/vit/vit-b16_64xb64_in1k-pretrain.py 8   # x 8 nodes
"""
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs64_pil_resize.py',
    'mmpretrain::_base_/schedules/imagenet_bs4096_AdamW.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(imports=['vit_backbones', 'vit_backbones.engine.safe_checkpoint_io'],
                      allow_failed_imports=False)

data_preprocessor = dict(num_classes=1000, mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5], to_rgb=True)
model = dict(
    type='ImageClassifier',
    backbone=dict(type='vit_backbones.VisionTransformer', arch='base', patch_size=16, pretrain_img_size=224,
                  drop_rate=0.1, out_indices=-1, cls_output='cls_token'),
    neck=None,
    head=dict(type='VisionTransformerClsHead', num_classes=1000, in_channels=768, hidden_dim=768,
              act_cfg=dict(type='Tanh'), init_cfg=dict(type='Constant', layer='Linear', val=0),
              loss=dict(type='CrossEntropyLoss', loss_weight=1.0)),
)

# 64 GPUs x 64 images = total batch 4096.
train_dataloader = dict(batch_size=64)
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=3e-3, betas=(0.9, 0.999), weight_decay=0.3),
    clip_grad=dict(max_norm=1.0))
iters_per_epoch = 313  # ceil(1281167 / 4096)
warmup_iters = 10000
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='CosineAnnealingLR', eta_min=0.0, by_epoch=False, begin=warmup_iters, end=300 * iters_per_epoch),
]
train_cfg = dict(by_epoch=True, max_epochs=300, val_interval=1)
auto_scale_lr = dict(base_batch_size=4096)
