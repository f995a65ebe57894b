"""Short alias of ``vit/deit-s_mln_upernet_8xb2-160k_ade20k-512x512.py`` (DeiT-S + MultiLevelNeck UperNet, ADE20K,
160k).

    python tools/train.py configs/deit_s_upernet.py
"""
_base_ = ['./vit/deit-s_mln_upernet_8xb2-160k_ade20k-512x512.py']
