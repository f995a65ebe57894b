"""UperNet with our Shuffle-T backbone: ``upernet_swin-t.py`` with the backbone swapped (same widths and strides).

Heads use SyncBN as mmseg does for 8-GPU training; single-process runs swap it for BN (see configs/demo/). The
backbone's own norms are plain BatchNorm2d (the official model's); the recipes convert them to SyncBN for
multi-GPU training through the top-level ``sync_bn`` option (see configs/shuffle/). ``custom_imports`` comes from
``upernet_swin-t.py``.
"""
_base_ = ['./upernet_swin-t.py']

model = dict(
    backbone=dict(
        _delete_=True,
        type='vit_backbones.ShuffleTransformer',
        arch='tiny',
        window_size=7,
        mlp_ratio=4.0,
        drop_rate=0.0,
        attn_drop_rate=0.0,
        drop_path_rate=0.3,
        norm_eval=False,
        out_indices=(0, 1, 2, 3)))
