"""Short alias of ``swin/swin-t_upernet_8xb2-160k_ade20k-512x512.py`` (Swin-T UperNet, ADE20K, 160k).

    python tools/train.py configs/swin_t_upernet.py
"""
_base_ = ['./swin/swin-t_upernet_8xb2-160k_ade20k-512x512.py']
