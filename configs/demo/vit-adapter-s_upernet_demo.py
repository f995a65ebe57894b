"""CPU demo: ViT-Adapter-S UperNet trained from scratch on the synthetic Demo Shapes set, in the Swin demo's time.

    bash tools/demo.sh configs/demo/vit-adapter-s_upernet_demo.py

which runs
    python tools/make_demo_data.py data/demo_shapes --exist-ok
    python tools/train.py configs/demo/vit-adapter-s_upernet_demo.py --work-dir work_dirs/vit-adapter-s_upernet_demo
    python tools/test.py configs/demo/vit-adapter-s_upernet_demo.py \
        work_dirs/vit-adapter-s_upernet_demo/iter_720.pth --work-dir work_dirs/vit-adapter-s_upernet_demo

Measured (2-core AMD EPYC, no GPU): 18 min 53 s (1110 s training, median 1.42 s/iteration), mIoU 92.79
(aAcc 98.32) on the 50 validation images; the README's demo table has the other backbones.

``swin_t_upernet_demo.py`` (data, heads, schedule) with the model and optimizer of ``configs/vit_adapter_s_upernet.py``:
the full ViT-Adapter-S (DeiT-S with LayerScale, four interactions, the ViT map after interaction i added to level i)
without pretrained weights, drop-path 0.1 as the other demos; UperNet over its four 384-channel levels, the auxiliary
head on the stride-16 one; layer-wise lr decay 0.95. Its BatchNorms are plain BatchNorm (one process; the recipe's
SyncBN is for 8 GPUs). On 128x128 crops the ViT runs on an 8x8 token grid.
"""
_base_ = ['./swin_t_upernet_demo.py', '../_base_/models/vit-adapter-s.py']

max_iters = 720  # a ViT-Adapter-S iteration costs ~1.25x a Swin-T one on 2 CPU cores: the Swin demo's time
pretrained = None  # trained from scratch (the name is inherited from the recipes)
model = dict(
    backbone=dict(
        _base_.vit_adapter_s,
        _delete_=True,
        vit_feature='interactions',
        norm_cfg=dict(type='BN', requires_grad=True),
        drop_path_rate=0.1,
        init_cfg=None),  # from scratch: no download on a CPU demo
    decode_head=dict(in_channels=[384, 384, 384, 384]),
    auxiliary_head=dict(in_channels=384, in_index=2))
optim_wrapper = dict(
    constructor='vit_backbones.LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(_delete_=True, layer_decay_rate=0.95))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=50),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=50, end=max_iters, by_epoch=False),
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters // 3)
default_hooks = dict(checkpoint=dict(interval=max_iters))
