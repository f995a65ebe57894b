"""CPU demo: the Swin-T UperNet demo, its backbone initialised from the classification demo's checkpoint.

    bash tools/demo_cls.sh --seg        # the classifier first (make demo-cls), then this

which, after the classification demo, runs
    python tools/train.py configs/demo/swin_t_upernet_cls-init_demo.py --work-dir work_dirs/demo_cls_init
    python tools/test.py configs/demo/swin_t_upernet_cls-init_demo.py work_dirs/demo_cls_init/iter_900.pth \\
        --work-dir work_dirs/demo_cls_init

Everything is ``swin_t_upernet_demo.py`` (data, heads, schedule) except the backbone's start: the weights of the
Swin-T that ``configs/demo/swin_t_cls_demo.py`` trained on Demo Shapes classification (its ``backbone.*`` keys;
the classifier's head is left out), so the two runs compare from scratch against initialised from the demo
classifier. Another classifier checkpoint: ``--cfg-options model.backbone.init_cfg.checkpoint=PATH``.
"""
_base_ = ['./swin_t_upernet_demo.py']

cls_checkpoint = 'work_dirs/demo_cls/iter_450.pth'  # tools/demo_cls.sh's classifier after its 450 iterations

# _delete_: the base's init_cfg is None (from scratch), which a dict cannot be merged into
model = dict(
    backbone=dict(init_cfg=dict(_delete_=True, type='Pretrained', checkpoint=cls_checkpoint, prefix='backbone.')))
