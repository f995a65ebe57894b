"""Short alias of ``deepvit/deepvit-s_mln_upernet_8xb2-160k_ade20k-512x512.py`` (DeepViT-S + MultiLevelNeck UperNet,
ADE20K, 160k).

    python tools/train.py configs/deepvit_s_upernet.py
"""
_base_ = ['./deepvit/deepvit-s_mln_upernet_8xb2-160k_ade20k-512x512.py']
