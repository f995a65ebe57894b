"""Short alias of ``levit/levit-256_upernet_8xb2-160k_ade20k-512x512.py`` (LeViT-256 UperNet, ADE20K, 160k).

    python tools/train.py configs/levit_256_upernet.py
"""
_base_ = ['./levit/levit-256_upernet_8xb2-160k_ade20k-512x512.py']
