"""DeiT-B on ImageNet-1k, 300 epochs, 8 GPUs x 128 images: the DeiT paper's recipe (arXiv:2012.12877), DeiT-S's
with the base width (768, 12 heads); drop path 0.1. Expected top-1: 81.8 (paper).

    bash tools/dist_train.sh configs/classification/deit/deit-b_8xb128_in1k.py 8
"""
_base_ = ['./deit-s_8xb128_in1k.py']
model = dict(backbone=dict(arch='base'), head=dict(in_channels=768))
