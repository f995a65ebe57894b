"""CPU demo: CvT-13 UperNet trained from scratch on the synthetic Demo Shapes set, in the Swin demo's time.

    bash tools/demo.sh configs/demo/cvt13_upernet_demo.py

which runs
    python tools/make_demo_data.py data/demo_shapes --exist-ok
    python tools/train.py configs/demo/cvt13_upernet_demo.py --work-dir work_dirs/cvt13_upernet_demo
    python tools/test.py configs/demo/cvt13_upernet_demo.py work_dirs/cvt13_upernet_demo/iter_1320.pth \
        --work-dir work_dirs/cvt13_upernet_demo

Measured: see README (time per iteration, total time and mIoU on the 50 validation images, 2-core CPU).

``swin_t_upernet_demo.py`` (data, heads, schedule) with the backbone and head inputs of ``configs/cvt13_upernet.py``:
the full CvT-13 (``arch='cvt-13'``, drop-path 0.1 in its last stage), UperNet over its three levels, the auxiliary
head on the stride-8 one, and its recipe's no-weight-decay keys (cls token, LayerNorms, the q/k/v BatchNorms). Its
BatchNorms stay plain BatchNorm (one process; the recipe's ``sync_bn`` is for 8 GPUs). A CvT-13 iteration takes
about 0.67x a Swin-T one on a 2-core CPU, so the demo runs 1320 iterations instead of 900: the same CPU time budget.
"""
_base_ = ['./swin_t_upernet_demo.py']

max_iters = 1320
pretrained = None  # trained from scratch (the name is inherited from the recipes)
model = dict(
    backbone=dict(
        _delete_=True,
        type='vit_backbones.CvT',
        arch='cvt-13',
        drop_rate=0.0,
        attn_drop_rate=0.0,
        drop_path_rate=0.1,
        norm_eval=False,
        out_indices=(0, 1, 2),
        init_cfg=None),  # from scratch: no download on a CPU demo
    decode_head=dict(in_channels=[64, 192, 384], in_index=[0, 1, 2]),
    auxiliary_head=dict(in_channels=192, in_index=1))
optim_wrapper = dict(paramwise_cfg=dict(custom_keys=dict(  # the keys of configs/cvt/ (see there)
    _delete_=True,
    cls_token=dict(decay_mult=0.0),
    norm=dict(decay_mult=0.0),
    **{f'conv_proj_{x}.bn': dict(decay_mult=0.0) for x in 'qkv'})))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=50),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=50, end=max_iters, by_epoch=False),
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters // 3)
default_hooks = dict(checkpoint=dict(interval=max_iters))
