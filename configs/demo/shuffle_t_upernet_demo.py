"""CPU demo: Shuffle-T UperNet trained from scratch on the synthetic Demo Shapes set, in the Swin demo's time.

    bash tools/demo.sh configs/demo/shuffle_t_upernet_demo.py

which runs
    python tools/make_demo_data.py data/demo_shapes --exist-ok
    python tools/train.py configs/demo/shuffle_t_upernet_demo.py --work-dir work_dirs/shuffle_t_upernet_demo
    python tools/test.py configs/demo/shuffle_t_upernet_demo.py work_dirs/shuffle_t_upernet_demo/iter_750.pth \
        --work-dir work_dirs/shuffle_t_upernet_demo

Measured: see README (time per iteration, total time and mIoU on the 50 validation images, 2-core CPU).

``swin_t_upernet_demo.py`` (data, heads, schedule) with the backbone of ``configs/shuffle_t_upernet.py``: the full
Shuffle-T (``arch='tiny'``), its recipe's no-weight-decay keys (relative position tables and every BatchNorm), and
drop-path 0.1 as in the Swin demo. Its BatchNorms stay plain BatchNorm (one process; the recipe's ``sync_bn`` is
for 8 GPUs). A Shuffle-T iteration takes about 1.2x a Swin-T one on a 2-core CPU, so the demo runs 750 iterations
instead of 900: the same CPU time budget.
"""
_base_ = ['./swin_t_upernet_demo.py']

max_iters = 750
pretrained = None  # trained from scratch (the name is inherited from the recipes)
model = dict(
    backbone=dict(
        _delete_=True,
        type='vit_backbones.ShuffleTransformer',
        arch='tiny',
        window_size=7,
        mlp_ratio=4.0,
        drop_rate=0.0,
        attn_drop_rate=0.0,
        drop_path_rate=0.1,
        norm_eval=False,
        out_indices=(0, 1, 2, 3),
        init_cfg=None))  # from scratch: no download on a CPU demo
optim_wrapper = dict(paramwise_cfg=dict(custom_keys=dict(  # the keys of configs/shuffle/ (see there)
    _delete_=True,
    relative_position_bias_table=dict(decay_mult=0.0),
    norm=dict(decay_mult=0.0),
    **{'patch_embed.bn': dict(decay_mult=0.0)})))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=50),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=50, end=max_iters, by_epoch=False),
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters // 3)
default_hooks = dict(checkpoint=dict(interval=max_iters))
