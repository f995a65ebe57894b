"""Short alias of ``vit_adapter/mask-rcnn_vit-adapter-s_fpn_ms-crop-3x_coco.py`` (ViT-Adapter-S Mask R-CNN, COCO, 3x
multi-scale + crop).

    python tools/train.py configs/vit_adapter_s_mask_rcnn_3x.py
"""
_base_ = ['./vit_adapter/mask-rcnn_vit-adapter-s_fpn_ms-crop-3x_coco.py']
