"""Short alias of ``pvt/retinanet_pvtv2-b2_fpn_1x_coco.py`` (PVTv2-b2 RetinaNet, COCO, 1x).

    python tools/train.py configs/pvtv2_b2_retinanet.py
"""
_base_ = ['./pvt/retinanet_pvtv2-b2_fpn_1x_coco.py']
