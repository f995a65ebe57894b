"""Short alias of ``cpvt/cpvt-s_mln_upernet_8xb2-160k_ade20k-512x512.py`` (CPVT-S + MultiLevelNeck UperNet, ADE20K,
160k).

    python tools/train.py configs/cpvt_s_upernet.py
"""
_base_ = ['./cpvt/cpvt-s_mln_upernet_8xb2-160k_ade20k-512x512.py']
