"""Short alias of ``pvt/mask-rcnn_pvtv2-b2_fpn_1x_coco.py`` (PVTv2-b2 Mask R-CNN, COCO, 1x).

    python tools/train.py configs/pvtv2_b2_mask_rcnn.py
"""
_base_ = ['./pvt/mask-rcnn_pvtv2-b2_fpn_1x_coco.py']
