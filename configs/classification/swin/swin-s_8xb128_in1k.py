"""Swin-S on ImageNet-1k, 300 epochs, 8 GPUs x 128 images: the Swin paper's recipe (arXiv:2103.14030; official
``swin_small_patch4_window7_224.yaml``), as Swin-T's with drop path 0.3. Expected top-1: 83.2 (paper).

    bash tools/dist_train.sh configs/classification/swin/swin-s_8xb128_in1k.py 8
"""
_base_ = ['./swin-t_8xb128_in1k.py']
model = dict(backbone=dict(arch='small', drop_path_rate=0.3), head=dict(in_channels=768))
