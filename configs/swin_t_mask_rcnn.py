"""Short alias of ``swin/mask-rcnn_swin-t_fpn_1x_coco.py`` (Swin-T Mask R-CNN, COCO, 1x).

    python tools/train.py configs/swin_t_mask_rcnn.py
"""
_base_ = ['./swin/mask-rcnn_swin-t_fpn_1x_coco.py']
