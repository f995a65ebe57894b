"""Config smoke tests: every config loads, its model builds with mmseg's registry and runs a forward pass."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from mmengine import Config
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from vit_backbones.datasets import CLASSES, PALETTE

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted(p for p in (REPO / 'configs').rglob('*.py') if '_base_' not in p.parts)
TINY_ARCH = dict(embed_dim=32, depths=(1, 1, 1, 1), num_heads=(1, 2, 4, 8))
TINY_CHANNELS = [32, 64, 128, 256]


def _sync_bn_to_bn(node: Any) -> None:
    """Replaces SyncBN by BN everywhere in a config tree (a single process has no process group)."""
    if isinstance(node, dict):
        if node.get('type') == 'SyncBN':
            node['type'] = 'BN'
        for value in node.values():
            _sync_bn_to_bn(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _sync_bn_to_bn(value)


def _build_tiny(cfg: Config) -> torch.nn.Module:
    """Builds ``cfg.model`` with a tiny Swin and narrow heads, the way tools/train.py would resolve it."""
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    model_cfg = cfg.model
    model_cfg.backbone.arch = TINY_ARCH
    model_cfg.decode_head.in_channels = TINY_CHANNELS
    model_cfg.decode_head.channels = 16
    if model_cfg.get('auxiliary_head'):
        model_cfg.auxiliary_head.in_channels = TINY_CHANNELS[model_cfg.auxiliary_head.in_index]
        model_cfg.auxiliary_head.channels = 8
    _sync_bn_to_bn(model_cfg)
    return MODELS.build(model_cfg)


def _forward(model: torch.nn.Module, num_classes: int) -> None:
    model.eval()
    with torch.no_grad():
        logits = model(torch.randn(1, 3, 72, 60), mode='tensor')
    assert logits.shape == (1, num_classes, 18, 15)
    assert torch.isfinite(logits).all()


def test_configs_found() -> None:
    names = {p.relative_to(REPO / 'configs').as_posix() for p in CONFIGS}
    assert {'swin_t_upernet.py', 'swin/swin-t_upernet_8xb2-160k_ade20k-512x512.py',
            'demo/swin_t_upernet_demo.py'} <= names


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.relative_to(REPO / 'configs').as_posix())
def test_config_builds_and_runs(path: Path) -> None:
    cfg = Config.fromfile(str(path))
    assert cfg.model.backbone.type == 'vit_backbones.SwinTransformer'
    model = _build_tiny(cfg)
    assert type(model.backbone).__module__.startswith('vit_backbones')
    _forward(model, cfg.model.decode_head.num_classes)


def test_paper_recipe() -> None:
    cfg = Config.fromfile(str(REPO / 'configs' / 'swin_t_upernet.py'))
    assert cfg.model.backbone.arch == 'tiny' and cfg.model.backbone.window_size == 7
    assert cfg.model.backbone.drop_path_rate == 0.3
    assert cfg.model.decode_head.norm_cfg.type == 'SyncBN'
    assert cfg.model.decode_head.num_classes == cfg.model.auxiliary_head.num_classes == 150
    assert cfg.crop_size == (512, 512) and cfg.model.data_preprocessor.size == (512, 512)
    assert cfg.train_dataloader.batch_size == 2 and cfg.train_dataloader.dataset.type == 'ADE20KDataset'
    assert cfg.optim_wrapper.optimizer == dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01)
    assert set(cfg.optim_wrapper.paramwise_cfg.custom_keys) == {
        'absolute_pos_embed', 'relative_position_bias_table', 'norm'}
    warmup, poly = cfg.param_scheduler
    assert (warmup.type, warmup.start_factor, warmup.end) == ('LinearLR', 1e-6, 1500)
    assert (poly.type, poly.power, poly.eta_min, poly.begin, poly.end) == ('PolyLR', 1.0, 0.0, 1500, 160000)
    assert cfg.train_cfg.max_iters == 160000
    assert cfg.custom_imports.imports == ['vit_backbones']


def test_no_decay_keys_match_backbone_parameters() -> None:
    cfg = Config.fromfile(str(REPO / 'configs' / 'swin_t_upernet.py'))
    cfg.model.backbone.use_abs_pos_embed = True
    names = [n for n, _ in _build_tiny(cfg).backbone.named_parameters()]
    for key in cfg.optim_wrapper.paramwise_cfg.custom_keys:
        assert any(key in n for n in names), key


def test_demo_config_matches_generator() -> None:
    cfg = Config.fromfile(str(REPO / 'configs' / 'demo' / 'swin_t_upernet_demo.py'))
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dataset = cfg[loader].dataset
        assert dataset.type == 'BaseSegDataset' and not dataset.reduce_zero_label
        assert tuple(dataset.metainfo.classes) == CLASSES
        assert [list(c) for c in dataset.metainfo.palette] == PALETTE
    assert cfg.model.decode_head.num_classes == cfg.model.auxiliary_head.num_classes == len(CLASSES)
    assert cfg.model.backbone.arch == 'tiny'
    assert cfg.model.decode_head.norm_cfg.type == 'BN' and cfg.model.auxiliary_head.norm_cfg.type == 'BN'
    assert cfg.env_cfg.dist_cfg.backend == 'gloo' and not cfg.env_cfg.cudnn_benchmark


def test_user_config_outside_the_repo(tmp_path: Path) -> None:
    user = tmp_path / 'my_swin.py'
    user.write_text(f"_base_ = [{str(REPO / 'configs' / 'swin_t_upernet.py')!r}]\n"
                    "model = dict(decode_head=dict(num_classes=7), auxiliary_head=dict(num_classes=7))\n")
    cfg = Config.fromfile(str(user))
    model = _build_tiny(cfg)
    assert type(model.backbone).__module__.startswith('vit_backbones')
    _forward(model, 7)


def test_mmseg_bases_with_scoped_type(tmp_path: Path) -> None:
    user = tmp_path / 'mmseg_swin.py'
    user.write_text(
        "_base_ = ['mmseg::_base_/models/upernet_swin.py', 'mmseg::_base_/default_runtime.py']\n"
        "custom_imports = dict(imports=['vit_backbones'], allow_failed_imports=False)\n"
        "model = dict(backbone=dict(_delete_=True, type='vit_backbones.SwinTransformer', arch='tiny'))\n")
    cfg = Config.fromfile(str(user))
    model = _build_tiny(cfg)
    assert type(model.backbone).__module__.startswith('vit_backbones')
    _forward(model, cfg.model.decode_head.num_classes)
    mmseg_swin = MODELS.get('SwinTransformer')  # mmseg's own class is untouched
    assert mmseg_swin.__module__.startswith('mmseg')
    assert MODELS.get('vit_backbones.SwinTransformer') is type(model.backbone)
