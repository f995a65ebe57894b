"""PVTv2-b5 on ImageNet-1k, 300 epochs, 8 GPUs x 128 images: the official PVT v2 recipe (arXiv:2106.13797;
whai362/PVT ``classification/configs/pvt_v2/pvt_v2_b5.py``), i.e. PVTv2-b0's recipe with drop path 0.3 and
gradient clipping at norm 1. Expected top-1: 83.8 (paper).

    bash tools/dist_train.sh configs/classification/pvt/pvtv2-b5_8xb128_in1k.py 8
"""
_base_ = ['./pvtv2-b0_8xb128_in1k.py']
model = dict(backbone=dict(arch='b5', drop_path_rate=0.3), head=dict(in_channels=512))
optim_wrapper = dict(clip_grad=dict(max_norm=1.0))
