"""UperNet with our CvT-13 backbone: ``upernet_swin-t.py``'s heads over CvT's three levels (strides 4, 8, 16).

CvT has no stride-32 stage, so UperNet fuses three inputs (64, 192 and 384 channels) and the auxiliary FCN head
reads the middle one (stride 8, 192 channels; Swin's auxiliary head reads its third of four levels). Heads use SyncBN
as mmseg does for 8-GPU training; single-process runs swap it for BN (see configs/demo/). The backbone's
BatchNorms (inside the q/k/v conv projections) are plain BatchNorm2d; the recipes convert them to SyncBN for
multi-GPU training through the top-level ``sync_bn`` option (see configs/cvt/).
Everything else (data preprocessor, head settings, ``custom_imports``) comes from ``upernet_swin-t.py``.
"""

_base_ = ['./upernet_swin-t.py']

model = dict(
    backbone=dict(
        _delete_=True,
        type='vit_backbones.CvT',
        arch='cvt-13',
        drop_rate=0.0,
        attn_drop_rate=0.0,
        drop_path_rate=0.1,
        norm_eval=False,
        out_indices=(0, 1, 2)),
    decode_head=dict(in_channels=[64, 192, 384], in_index=[0, 1, 2]),
    auxiliary_head=dict(in_channels=192, in_index=1))
