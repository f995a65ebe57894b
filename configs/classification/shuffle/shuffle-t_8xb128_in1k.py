"""Shuffle-T on ImageNet-1k, 300 epochs, 8 GPUs x 128 images: the official Shuffle Transformer recipe (Huang et
al., arXiv:2106.03650; mulinmeng/Shuffle-Transformer, trained with the Swin codebase and its settings).

Swin-T's recipe (AdamW lr 1e-3 at total batch 1024, weight decay 0.05 (none on norms, biases, relative position
tables), cosine after 20 warm-up epochs, clipping at norm 5, DeiT augmentations) with drop path 0.1.
Expected top-1: 82.4 (paper).

    bash tools/dist_train.sh configs/classification/shuffle/shuffle-t_8xb128_in1k.py 8
"""
_base_ = ['../swin/swin-t_8xb128_in1k.py']
model = dict(
    backbone=dict(_delete_=True, type='vit_backbones.ShuffleTransformer', arch='tiny', drop_path_rate=0.1,
                  out_indices=(3,), cls_output='avg_featmap'),
    head=dict(in_channels=768))
