"""Short alias of ``cvt/mask-rcnn_cvt-13_fpn_1x_coco.py`` (CvT-13 Mask R-CNN, COCO, 1x).

    python tools/train.py configs/cvt13_mask_rcnn.py
"""
_base_ = ['./cvt/mask-rcnn_cvt-13_fpn_1x_coco.py']
