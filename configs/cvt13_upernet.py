"""Short alias of ``cvt/cvt-13_upernet_8xb2-160k_ade20k-512x512.py`` (CvT-13 UperNet, ADE20K, 160k).

    python tools/train.py configs/cvt13_upernet.py
"""
_base_ = ['./cvt/cvt-13_upernet_8xb2-160k_ade20k-512x512.py']
