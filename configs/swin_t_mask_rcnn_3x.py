"""Short alias of ``swin/mask-rcnn_swin-t_fpn_ms-crop-3x_coco.py`` (Swin-T Mask R-CNN, COCO, 3x multi-scale + crop).

    python tools/train.py configs/swin_t_mask_rcnn_3x.py
"""
_base_ = ['./swin/mask-rcnn_swin-t_fpn_ms-crop-3x_coco.py']
