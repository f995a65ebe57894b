"""Short alias of ``cait/cait-s24_mln_upernet_8xb2-160k_ade20k-512x512.py`` (CaiT-S24 + MultiLevelNeck UperNet,
ADE20K, 160k).

    python tools/train.py configs/cait_s24_upernet.py
"""
_base_ = ['./cait/cait-s24_mln_upernet_8xb2-160k_ade20k-512x512.py']
