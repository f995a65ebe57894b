"""Short alias of ``vit/mask-rcnn_vit-b-vitdet_simple-fpn_16xb4-lsj-100e_coco.py`` (ViTDet: MAE ViT-B Mask R-CNN with
the simple feature pyramid, COCO, LSJ 1024, 100 epochs).

    python tools/train.py configs/vitdet_b_mask_rcnn.py
"""
_base_ = ['./vit/mask-rcnn_vit-b-vitdet_simple-fpn_16xb4-lsj-100e_coco.py']
