"""Short alias of ``shuffle/mask-rcnn_shuffle-t_fpn_1x_coco.py`` (Shuffle-T Mask R-CNN, COCO, 1x).

    python tools/train.py configs/shuffle_t_mask_rcnn.py
"""
_base_ = ['./shuffle/mask-rcnn_shuffle-t_fpn_1x_coco.py']
