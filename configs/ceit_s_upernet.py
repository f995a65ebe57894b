"""Short alias of ``ceit/ceit-s_mln_upernet_8xb2-160k_ade20k-512x512.py`` (CeiT-S + MultiLevelNeck UperNet, ADE20K,
160k).

    python tools/train.py configs/ceit_s_upernet.py
"""
_base_ = ['./ceit/ceit-s_mln_upernet_8xb2-160k_ade20k-512x512.py']
