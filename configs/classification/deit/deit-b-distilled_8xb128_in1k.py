"""DeiT-B distilled on ImageNet-1k, 300 epochs, 8 GPUs x 128 images: DeiT-S distilled's recipe (hard distillation,
alpha 0.5, RegNetY-16GF teacher; arXiv:2012.12877) with the base width. Expected top-1: 83.4 (paper).

    bash tools/dist_train.sh configs/classification/deit/deit-b-distilled_8xb128_in1k.py 8
"""
_base_ = ['./deit-s-distilled_8xb128_in1k.py']
model = dict(backbone=dict(arch='base'), head=dict(in_channels=768))
