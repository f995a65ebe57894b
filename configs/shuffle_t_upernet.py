"""Short alias of ``shuffle/shuffle-t_upernet_8xb2-160k_ade20k-512x512.py`` (Shuffle-T UperNet, ADE20K, 160k).

    python tools/train.py configs/shuffle_t_upernet.py
"""
_base_ = ['./shuffle/shuffle-t_upernet_8xb2-160k_ade20k-512x512.py']
