"""Short alias of ``vit_adapter/vit-adapter-s_upernet_8xb2-160k_ade20k-512x512.py`` (ViT-Adapter-S UperNet, ADE20K,
160k).

    python tools/train.py configs/vit_adapter_s_upernet.py
"""
_base_ = ['./vit_adapter/vit-adapter-s_upernet_8xb2-160k_ade20k-512x512.py']
