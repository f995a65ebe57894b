"""The classification demo config (mmpretrain ``ImageClassifier`` + our Swin-T) and the segmentation demo that
starts from its checkpoint (``configs/demo/swin_t_upernet_cls-init_demo.py``)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from mmengine import Config
from mmengine.dataset import pseudo_collate
from mmengine.optim import build_optim_wrapper

from vit_backbones.datasets import CLS_CLASSES, generate_demo_cls

mmpretrain = pytest.importorskip('mmpretrain')

REPO = Path(__file__).resolve().parents[2]
CLS_CONFIG = REPO / 'configs' / 'demo' / 'swin_t_cls_demo.py'
INIT_CONFIG = REPO / 'configs' / 'demo' / 'swin_t_upernet_cls-init_demo.py'
TINY_SWIN = dict(embed_dim=32, depths=(1, 1, 1, 1), num_heads=(1, 2, 4, 8))  # channels 32, 64, 128, 256


@pytest.fixture
def restore_scopes():
    """Restores mmengine's default scopes after the test: a scope left behind ('mmpretrain', 'mmseg') would
    resolve later tests' types in the wrong registry."""
    from mmengine.registry import DefaultScope
    saved = DefaultScope._instance_dict.copy()
    yield
    DefaultScope._instance_dict.clear()
    DefaultScope._instance_dict.update(saved)


def _tiny_classifier(cfg: Config) -> torch.nn.Module:
    """``cfg.model`` with the tiny Swin arch substituted (and the head's width to match), built by mmpretrain."""
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    model_cfg = cfg.model.copy()
    model_cfg.backbone = dict(model_cfg.backbone, arch=TINY_SWIN)
    model_cfg.head = dict(model_cfg.head, in_channels=TINY_SWIN['embed_dim'] * 8)
    return MODELS.build(model_cfg)


def test_cls_demo_config() -> None:
    cfg = Config.fromfile(str(CLS_CONFIG))
    assert cfg.default_scope == 'mmpretrain'
    assert cfg.custom_imports == dict(imports=['vit_backbones'], allow_failed_imports=False)
    assert cfg.model.type == 'ImageClassifier' and cfg.model.neck is None
    backbone = cfg.model.backbone
    assert backbone.type == 'vit_backbones.SwinTransformer' and backbone.arch == 'tiny'  # the full Swin-T
    assert backbone.cls_output == 'avg_featmap' and 3 in backbone.out_indices and backbone.init_cfg is None
    assert cfg.model.head.type == 'LinearClsHead' and cfg.model.head.num_classes == len(CLS_CLASSES)
    assert cfg.model.head.in_channels == 768  # Swin-T's last stage
    assert cfg.model.data_preprocessor.type == 'ClsDataPreprocessor'
    for loader, split in (('train_dataloader', 'train'), ('val_dataloader', 'val'), ('test_dataloader', 'val')):
        dataset = cfg[loader].dataset
        assert dataset.type == 'CustomDataset' and dataset.data_root == 'data/demo_cls'
        assert dataset.data_prefix == split and dataset.ann_file == f'meta/{split}.txt'
        assert tuple(dataset.metainfo.classes) == CLS_CLASSES
    assert [t.type for t in cfg.train_dataloader.dataset.pipeline][1:3] == ['RandomResizedCrop', 'RandomFlip']
    assert '--kind cls' in cfg.data_hint
    assert cfg.val_evaluator == dict(type='Accuracy', topk=(1,))
    assert cfg.optim_wrapper.optimizer.type == 'AdamW'
    assert [s.type for s in cfg.param_scheduler] == ['LinearLR', 'CosineAnnealingLR']
    assert cfg.param_scheduler[-1].end == cfg.train_cfg.max_iters == cfg.default_hooks.checkpoint.interval
    assert cfg.env_cfg.dist_cfg.backend == 'gloo' and not cfg.env_cfg.cudnn_benchmark
    # the initialised segmentation demo reads the checkpoint tools/demo_cls.sh leaves by default
    init = Config.fromfile(str(INIT_CONFIG)).model.backbone.init_cfg
    assert init == dict(type='Pretrained', checkpoint=f'work_dirs/demo_cls/iter_{cfg.train_cfg.max_iters}.pth',
                        prefix='backbone.')


def test_full_swin_t_classifier_feature() -> None:
    """The real backbone of the config: its last output is the (B, 768) pooled feature the head reads."""
    from mmpretrain.registry import MODELS
    backbone = MODELS.build(Config.fromfile(str(CLS_CONFIG)).model.backbone)
    assert type(backbone).__module__.startswith('vit_backbones')
    with torch.no_grad():
        outs = backbone(torch.randn(1, 3, 56, 56))
    assert outs[-1].shape == (1, 768) and outs[-2].shape == (1, 768, 2, 2)
    torch.testing.assert_close(outs[-1], outs[-2].mean((2, 3)))


def test_cls_demo_trains_one_step_on_generated_data(tmp_path: Path, restore_scopes) -> None:
    """The config's pipelines read the generated set; one optimizer step moves the whole network; prediction."""
    from mmpretrain.registry import DATASETS
    root = tmp_path / 'cls'
    generate_demo_cls(root, num_train=4, num_val=4, size=48)
    cfg = Config.fromfile(str(CLS_CONFIG))
    torch.manual_seed(0)
    model = _tiny_classifier(cfg)
    train_set = DATASETS.build(dict(cfg.train_dataloader.dataset, data_root=str(root)))
    batch = pseudo_collate([train_set[i] for i in range(4)])
    assert batch['inputs'][0].shape == (3, cfg.crop_size, cfg.crop_size)
    assert sorted(int(s.gt_label) for s in batch['data_samples']) == [0, 1, 2, 3]
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    before = [p.detach().clone() for _, p in named]
    model.train()
    log = model.train_step(batch, optim)
    assert torch.isfinite(log['loss'])
    # norms.0-2 are outputs the head never reads (kept so that the checkpoint is complete for segmentation)
    stuck = [n for (n, p), b in zip(named, before) if torch.equal(p, b) and not n.startswith('backbone.norms.')]
    assert not stuck, stuck
    val_set = DATASETS.build(dict(cfg.val_dataloader.dataset, data_root=str(root)))
    preds = model.val_step(pseudo_collate([val_set[i] for i in range(4)]))
    assert [p.pred_score.shape for p in preds] == [(len(CLS_CLASSES),)] * 4
    assert val_set[0]['inputs'].shape == (3, cfg.crop_size, cfg.crop_size)  # resized whole image


def test_cls_init_seg_demo_fills_every_backbone_key(tmp_path: Path, restore_scopes) -> None:
    """A classifier checkpoint (keys backbone.*, head.*) initialises the segmentation demo's Swin: every key of
    the backbone comes from it, and nothing else does."""
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS as SEG_MODELS

    torch.manual_seed(0)
    classifier = _tiny_classifier(Config.fromfile(str(CLS_CONFIG)))
    with torch.no_grad():  # not the values a fresh init gives, so a key that is not loaded shows
        for p in classifier.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    state = classifier.state_dict()
    assert {k.split('.')[0] for k in state} == {'backbone', 'head'}
    ckpt = tmp_path / 'iter_600.pth'
    torch.save(dict(meta=dict(iter=600), state_dict=state), ckpt)

    cfg = Config.fromfile(str(INIT_CONFIG))
    init_default_scope('mmseg')
    cfg.model.backbone.arch = TINY_SWIN
    cfg.model.backbone.init_cfg.checkpoint = str(ckpt)
    cfg.model.decode_head.in_channels = [32, 64, 128, 256]
    cfg.model.auxiliary_head.in_channels = 128
    segmentor = SEG_MODELS.build(cfg.model)
    segmentor.init_weights()
    loaded = segmentor.backbone.state_dict()
    expected = {k[len('backbone.'):]: v for k, v in state.items() if k.startswith('backbone.')}
    assert loaded.keys() == expected.keys()
    wrong = [k for k in loaded if not torch.equal(loaded[k], expected[k])]
    assert not wrong, wrong
