"""ViTDet parts (Li et al., arXiv:2203.16527; detectron2 ``projects/ViTDet``) shared by the ViTDet recipes and demos.

Variables, not a model: a config inherits this file beside its task base and builds from them, e.g.
``backbone=dict(_base_.vitdet_backbone, _delete_=True, arch='base', window_size=14, pretrain_img_size=1024)``.

* ``vitdet_backbone``: a 12-block plain ViT/16 without cls token and final norm; windowed attention in blocks 0, 1,
  3, 4, 6, 7, 9, 10 (the window side is the config's), global attention in blocks 2, 5, 8, 11; decomposed relative
  positions in every block; absolute positions resized without antialias (detectron2's ``get_abs_pos``);
  drop-path 0.1; the last block's stride-16 map.
* ``vitdet_neck``: the simple feature pyramid from that map: scales 4, 2, 1, 0.5 plus a max-pooled p6 (strides 4 to
  64), LayerNorm after every convolution (``vitdet_norm_cfg``, eps 1e-6).
* ``vitdet_lsj_train_pipeline`` / ``vitdet_lsj_test_pipeline``: large-scale jitter at 1024x1024 (random flip, resize
  of the 1024x1024 box by a ratio in [0.1, 2.0], random 1024x1024 crop with boxes recomputed from the masks and
  crops without objects allowed, degenerate boxes dropped, pad to 1024x1024 with 114); testing resizes the longer
  side to 1024 and pads. Other sizes: :data:`lsj_size_keys` name the entries' size arguments.
"""
vitdet_norm_cfg = dict(type='LN2d', eps=1e-6, requires_grad=True)  # detectron2's channel LayerNorm (ours)
vitdet_backbone = dict(
    type='vit_backbones.VisionTransformer',
    patch_size=16,
    with_cls_token=False,
    use_abs_pos=True,
    use_rel_pos=True,
    window_block_indexes=[0, 1, 3, 4, 6, 7, 9, 10],
    final_norm=False,
    interpolate_antialias=False,
    drop_path_rate=0.1,
    out_indices=(11, ))
vitdet_neck = dict(
    type='vit_backbones.SimpleFeaturePyramid',
    scale_factors=(4.0, 2.0, 1.0, 0.5),
    in_stride=16,
    add_p6=True,
    norm_cfg=vitdet_norm_cfg)

lsj_size = (1024, 1024)
lsj_size_keys = ('scale', 'crop_size', 'size')  # the size arguments of the entries below
vitdet_lsj_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomResize', scale=lsj_size, ratio_range=(0.1, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_type='absolute_range', crop_size=lsj_size, recompute_bbox=True,
         allow_negative_crop=True),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-2, 1e-2)),
    dict(type='Pad', size=lsj_size, pad_val=dict(img=(114, 114, 114))),
    dict(type='PackDetInputs'),
]
vitdet_lsj_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=lsj_size, keep_ratio=True),
    dict(type='Pad', size=lsj_size, pad_val=dict(img=(114, 114, 114))),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
