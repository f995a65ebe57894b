"""DeiT-S distilled (DeiT-S with the distillation token) on ImageNet-1k, 300 epochs, 8 GPUs x 128 images: the DeiT
paper's hard distillation from a RegNetY-16GF teacher (arXiv:2012.12877; facebookresearch/deit ``losses.py``,
``--distillation-type hard --distillation-alpha 0.5 --teacher-model regnety_160``).

DeiT-S's recipe (AdamW 1e-3 at 1024, wd 0.05, 5 warm-up epochs, cosine, drop path 0.1, DeiT augmentations); the
loss is 0.5 * (label-smoothed CE of the cls head on the Mixup/CutMix targets) + 0.5 * CE(distillation head,
teacher argmax), the teacher seeing the same mixed images (``vit_backbones.DistillationImageClassifier``). At test
time the two heads are averaged. Expected top-1: 81.2 (paper, 300 epochs).

Teacher: timm's RegNetY-16GF (``regnety_160``, 83.6M parameters, 82.9% top-1), DeiT's own checkpoint, frozen and in
eval mode; mmpretrain's ``RegNet`` has no RegNetY (SE) presets, so the teacher is built through mmpretrain's
``TimmClassifier``. Offline, point ``model.teacher_checkpoint`` at a local copy of the file.

    bash tools/dist_train.sh configs/classification/deit/deit-s-distilled_8xb128_in1k.py 8
"""
_base_ = ['./deit-s_8xb128_in1k.py']
model = dict(
    type='vit_backbones.DistillationImageClassifier',
    backbone=dict(distilled=True),
    head=dict(type='vit_backbones.DeiTDistillationHead', distillation_type='hard', alpha=0.5, tau=1.0),
    teacher=dict(type='TimmClassifier', model_name='regnety_160', num_classes=1000, pretrained=False),
    teacher_checkpoint='https://dl.fbaipublicfiles.com/deit/regnety_160-a5fe301d.pth')
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'.dist_token': dict(decay_mult=0.0)}))
