"""Short alias of ``vit_hybrid/vit-b-r50-s16_upernet_8xb2-160k_ade20k-512x512.py`` (R50+ViT-B/16 UperNet, ADE20K,
160k).

    python tools/train.py configs/vit_hybrid_b_r50_upernet.py
"""
_base_ = ['./vit_hybrid/vit-b-r50-s16_upernet_8xb2-160k_ade20k-512x512.py']
