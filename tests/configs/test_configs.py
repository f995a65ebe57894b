"""Config smoke tests: every config loads, its model builds (mmseg's or mmdet's registry) and runs.

Segmentation configs run a forward pass; detection configs run one training loss + backward and one prediction.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from mmdet.registry import MODELS as DET_MODELS
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmengine import Config
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData
from mmseg.registry import MODELS

from vit_backbones.datasets import CLASSES, DET_CLASSES, DET_PALETTE, PALETTE

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted(p for p in (REPO / 'configs').rglob('*.py') if '_base_' not in p.parts)
TINY_ARCH = dict(embed_dim=32, depths=(1, 1, 1, 1), num_heads=(1, 2, 4, 8))
# Tiny arch per backbone type for detection configs; the FPN takes the channels the built backbone reports.
_PVT_TINY = dict(embed_dims=(16, 32, 32, 64), depths=(1, 1, 1, 1), num_heads=(1, 1, 2, 2), mlp_ratios=(2, 2, 2, 2),
                 sr_ratios=(8, 4, 2, 1))
TINY_DET_ARCHS = {'SwinTransformer': TINY_ARCH, 'PyramidVisionTransformer': _PVT_TINY,
                  'PyramidVisionTransformerV2': _PVT_TINY}
DET_RECIPES = {  # config -> (backbone type, arch, head, lr, weight decay, neck start level)
    'swin/mask-rcnn_swin-t_fpn_1x_coco.py': ('SwinTransformer', 'tiny', 'MaskRCNN', 1e-4, 0.05, 0),
    'swin/mask-rcnn_swin-t_fpn_ms-crop-3x_coco.py': ('SwinTransformer', 'tiny', 'MaskRCNN', 1e-4, 0.05, 0),
    'pvt/retinanet_pvtv2-b2_fpn_1x_coco.py': ('PyramidVisionTransformerV2', 'b2', 'RetinaNet', 1e-4, 1e-4, 1),
    'pvt/mask-rcnn_pvtv2-b2_fpn_1x_coco.py': ('PyramidVisionTransformerV2', 'b2', 'MaskRCNN', 2e-4, 1e-4, 0),
}
DET_ALIASES = {'swin_t_mask_rcnn.py': 'swin/mask-rcnn_swin-t_fpn_1x_coco.py',
               'swin_t_mask_rcnn_3x.py': 'swin/mask-rcnn_swin-t_fpn_ms-crop-3x_coco.py',
               'pvtv2_b2_retinanet.py': 'pvt/retinanet_pvtv2-b2_fpn_1x_coco.py',
               'pvtv2_b2_mask_rcnn.py': 'pvt/mask-rcnn_pvtv2-b2_fpn_1x_coco.py'}
DET_DEMO = 'demo/mask-rcnn_pvtv2-b0_demo.py'


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
    """Builds ``cfg.model`` with a tiny backbone of its type and narrow heads, as tools/train.py would resolve it."""
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    model_cfg = cfg.model
    model_cfg.backbone.arch = TINY_DET_ARCHS[model_cfg.backbone.type.split('.')[-1]]
    model_cfg.backbone.init_cfg = None
    channels = list(MODELS.build(model_cfg.backbone.copy()).out_channels)  # the backbone's contract
    model_cfg.decode_head.in_channels = [channels[i] for i in model_cfg.decode_head.in_index]
    model_cfg.decode_head.channels = 16
    if model_cfg.get('auxiliary_head'):
        model_cfg.auxiliary_head.in_channels = channels[model_cfg.auxiliary_head.in_index]
        model_cfg.auxiliary_head.channels = 8
    _sync_bn_to_bn(model_cfg)
    return MODELS.build(model_cfg)


def _forward(model: torch.nn.Module, num_classes: int) -> None:
    model.eval()
    with torch.no_grad():
        logits = model(torch.randn(1, 3, 72, 60), mode='tensor')
    assert logits.shape == (1, num_classes, 18, 15)
    assert torch.isfinite(logits).all()


def _build_tiny_detector(cfg: Config) -> torch.nn.Module:
    """Builds ``cfg.model`` (an mmdet detector) with a tiny backbone of the same type and no pretrained weights."""
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model_cfg = cfg.model
    model_cfg.backbone.arch = TINY_DET_ARCHS[model_cfg.backbone.type.split('.')[-1]]
    model_cfg.backbone.init_cfg = None
    model_cfg.neck.in_channels = list(DET_MODELS.build(model_cfg.backbone.copy()).out_channels)
    return DET_MODELS.build(model_cfg)


def _run_detector(model: torch.nn.Module, with_masks: bool) -> None:
    """One training loss + backward and one prediction on a 72x60 image with two boxes (and masks)."""
    h, w = 72, 60
    sample = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), scale_factor=(1.0, 1.0)))
    boxes = torch.tensor([[4.0, 6.0, 30.0, 40.0], [30.0, 36.0, 58.0, 70.0]])
    sample.gt_instances = InstanceData(bboxes=boxes, labels=torch.tensor([0, 1]))
    if with_masks:
        masks = np.zeros((2, h, w), np.uint8)
        for mask, (x0, y0, x1, y1) in zip(masks, boxes.int().tolist()):
            mask[y0:y1, x0:x1] = 1
        sample.gt_instances.masks = BitmapMasks(masks, h, w)
    batch = dict(inputs=[torch.randint(0, 256, (3, h, w), dtype=torch.uint8)], data_samples=[sample])
    model.train()
    losses = model(**model.data_preprocessor(batch, True), mode='loss')
    total, _ = model.parse_losses(losses)
    assert torch.isfinite(total)
    total.backward()
    assert all(p.grad is not None for p in model.backbone.parameters() if p.requires_grad)
    model.eval()
    with torch.no_grad():
        (pred,) = model(**model.data_preprocessor(batch, False), mode='predict')
    assert pred.pred_instances.bboxes.shape[1:] == (4,)
    assert ('masks' in pred.pred_instances) == with_masks


def test_configs_found() -> None:
    names = {p.relative_to(REPO / 'configs').as_posix() for p in CONFIGS}
    assert {'swin_t_upernet.py', 'swin/swin-t_upernet_8xb2-160k_ade20k-512x512.py',
            'demo/swin_t_upernet_demo.py'} <= names


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.relative_to(REPO / 'configs').as_posix())
def test_config_builds_and_runs(path: Path) -> None:
    cfg = Config.fromfile(str(path))
    if cfg.get('default_scope') == 'mmdet':
        assert cfg.model.backbone.type.startswith('vit_backbones.')
        model = _build_tiny_detector(cfg)
        assert type(model.backbone).__module__.startswith('vit_backbones')
        _run_detector(model, with_masks='mask_head' in cfg.model.get('roi_head', {}))
        return
    assert cfg.model.backbone.type.startswith('vit_backbones.')
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
    assert cfg.custom_imports.imports == ['vit_backbones', 'vit_backbones.engine.safe_checkpoint_io']


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


def test_detection_configs_found() -> None:
    names = {p.relative_to(REPO / 'configs').as_posix() for p in CONFIGS}
    assert set(DET_RECIPES) | set(DET_ALIASES) | {DET_DEMO} <= names


@pytest.mark.parametrize('name', sorted(DET_RECIPES))
def test_detection_recipe(name: str) -> None:
    backbone, arch, detector, lr, weight_decay, start_level = DET_RECIPES[name]
    cfg = Config.fromfile(str(REPO / 'configs' / name))
    assert cfg.default_scope == 'mmdet'
    assert cfg.custom_imports.imports == ['vit_backbones', 'vit_backbones.engine.safe_checkpoint_io']
    assert cfg.model.type == detector
    assert cfg.model.backbone.type == f'vit_backbones.{backbone}' and cfg.model.backbone.arch == arch
    assert 'depth' not in cfg.model.backbone  # the ResNet keys of mmdet's base are gone (_delete_)
    assert cfg.model.backbone.init_cfg.type == 'Pretrained' and cfg.model.backbone.init_cfg.checkpoint
    channels = [96, 192, 384, 768] if backbone == 'SwinTransformer' else [64, 128, 320, 512]
    assert list(cfg.model.neck.in_channels) == channels
    assert (cfg.model.neck.out_channels, cfg.model.neck.num_outs, cfg.model.neck.get('start_level', 0)) == (
        256, 5, start_level)
    if detector == 'RetinaNet':
        assert cfg.model.neck.add_extra_convs == 'on_input' and cfg.model.bbox_head.num_classes == 80
    else:
        assert cfg.model.roi_head.bbox_head.num_classes == cfg.model.roi_head.mask_head.num_classes == 80
    optimizer = cfg.optim_wrapper.optimizer
    assert (optimizer.type, optimizer.lr, optimizer.weight_decay) == ('AdamW', lr, weight_decay)
    assert 'momentum' not in optimizer
    epochs, milestones = (36, [27, 33]) if '3x' in name else (12, [8, 11])
    assert cfg.train_cfg.max_epochs == epochs
    warmup, steps = cfg.param_scheduler
    assert warmup.type == 'LinearLR' and not warmup.by_epoch
    assert (steps.type, steps.milestones, steps.gamma, steps.end) == ('MultiStepLR', milestones, 0.1, epochs)
    assert cfg.train_dataloader.batch_size == 2 and cfg.train_dataloader.dataset.type == 'CocoDataset'
    assert cfg.val_evaluator.type == 'CocoMetric'
    if backbone == 'SwinTransformer':
        assert cfg.model.backbone.drop_path_rate == 0.2 and warmup.end == 1000
        assert set(cfg.optim_wrapper.paramwise_cfg.custom_keys) == {
            'absolute_pos_embed', 'relative_position_bias_table', 'norm'}
    else:
        assert cfg.model.backbone.drop_path_rate == 0.1 and warmup.end == 500


def test_swin_3x_multi_scale_crop_pipeline() -> None:
    cfg = Config.fromfile(str(REPO / 'configs' / 'swin_t_mask_rcnn_3x.py'))
    types = [t.type for t in cfg.train_dataloader.dataset.pipeline]
    assert types == ['LoadImageFromFile', 'LoadAnnotations', 'RandomFlip', 'RandomChoice', 'PackDetInputs']
    single, crop = cfg.train_dataloader.dataset.pipeline[3].transforms
    assert [s[0] for s in single[0].scales] == list(range(480, 801, 32))
    assert [t.type for t in crop] == ['RandomChoiceResize', 'RandomCrop', 'RandomChoiceResize']
    assert crop[1].crop_size == (384, 600) and crop[1].crop_type == 'absolute_range'


@pytest.mark.parametrize('alias', sorted(DET_ALIASES))
def test_detection_aliases(alias: str) -> None:
    assert Config.fromfile(str(REPO / 'configs' / alias)).to_dict() == Config.fromfile(
        str(REPO / 'configs' / DET_ALIASES[alias])).to_dict()


def test_swin_detection_no_decay_keys_match_backbone_parameters() -> None:
    cfg = Config.fromfile(str(REPO / 'configs' / 'swin_t_mask_rcnn.py'))
    cfg.model.backbone.use_abs_pos_embed = True
    names = [n for n, _ in _build_tiny_detector(cfg).backbone.named_parameters()]
    for key in cfg.optim_wrapper.paramwise_cfg.custom_keys:
        assert any(key in n for n in names), key


def test_detection_demo_config_matches_generator() -> None:
    cfg = Config.fromfile(str(REPO / 'configs' / DET_DEMO))
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dataset = cfg[loader].dataset
        assert dataset.type == 'CocoDataset' and dataset.data_root == 'data/demo_coco/'
        assert tuple(dataset.metainfo.classes) == DET_CLASSES
        assert [list(c) for c in dataset.metainfo.palette] == DET_PALETTE
    assert cfg.train_dataloader.dataset.ann_file == 'annotations/instances_train.json'
    assert cfg.val_dataloader.dataset.ann_file == 'annotations/instances_val.json'
    assert cfg.val_evaluator.ann_file == 'data/demo_coco/annotations/instances_val.json'
    assert cfg.val_evaluator.metric == ['bbox', 'segm']
    assert cfg.model.roi_head.bbox_head.num_classes == cfg.model.roi_head.mask_head.num_classes == len(DET_CLASSES)
    assert cfg.model.backbone.type == 'vit_backbones.PyramidVisionTransformerV2' and cfg.model.backbone.arch == 'b0'
    assert cfg.model.backbone.init_cfg is None  # no download
    assert list(cfg.model.neck.in_channels) == [32, 64, 160, 256]
    assert cfg.env_cfg.dist_cfg.backend == 'gloo' and not cfg.env_cfg.cudnn_benchmark


def test_mmdet_bases_with_scoped_type(tmp_path: Path) -> None:
    user = tmp_path / 'mmdet_pvt.py'
    user.write_text(
        "_base_ = ['mmdet::_base_/models/retinanet_r50_fpn.py', 'mmdet::_base_/default_runtime.py']\n"
        "custom_imports = dict(imports=['vit_backbones'], allow_failed_imports=False)\n"
        "model = dict(backbone=dict(_delete_=True, type='vit_backbones.PyramidVisionTransformerV2', arch='b0'),\n"
        "             neck=dict(in_channels=[32, 64, 160, 256]))\n")
    cfg = Config.fromfile(str(user))
    model = _build_tiny_detector(cfg)
    assert type(model.backbone).__module__.startswith('vit_backbones')
    _run_detector(model, with_masks=False)
    assert DET_MODELS.get('PyramidVisionTransformerV2').__module__.startswith('mmdet')  # mmdet's own class
    assert DET_MODELS.get('vit_backbones.PyramidVisionTransformerV2') is type(model.backbone)


RECIPES = [p for p in CONFIGS if 'demo' not in p.relative_to(REPO / 'configs').parts]
NO_DECAY_KINDS = ('norm', 'relative_position_bias_table', 'absolute_pos_embed', 'pos_embed')


def _backbone_archs(type_name: str) -> dict:
    from vit_backbones.backbones import pvt, swin
    return {'SwinTransformer': swin.ARCHS, 'PyramidVisionTransformer': pvt.V1_ARCHS,
            'PyramidVisionTransformerV2': pvt.V2_ARCHS}[type_name]


@pytest.mark.parametrize('path', RECIPES, ids=lambda p: p.relative_to(REPO / 'configs').as_posix())
def test_recipe_builds_the_model_and_optimizer_it_states(path: Path) -> None:
    """The real model of every recipe: the preset depth, window and drop-path schedule the config asks for, and
    an optimizer whose weight decay spares what the recipe exempts (norms, position tables) and nothing else."""
    from mmengine.optim import build_optim_wrapper

    from vit_backbones.layers import DropPath
    cfg = Config.fromfile(str(path))
    scope = cfg.get('default_scope', 'mmseg')
    init_default_scope(scope)
    _sync_bn_to_bn(cfg.model)
    model = (DET_MODELS if scope == 'mmdet' else MODELS).build(cfg.model)
    backbone, bcfg = model.backbone, cfg.model.backbone
    preset = _backbone_archs(bcfg.type.split('.')[-1])[bcfg.arch]
    blocks = [block for stage in backbone.stage_list() for block in stage.blocks]
    assert [len(stage.blocks) for stage in backbone.stage_list()] == list(preset['depths'])
    rates = [b.drop_path1.drop_prob if isinstance(b.drop_path1, DropPath) else 0.0 for b in blocks]
    torch.testing.assert_close(torch.tensor(rates), torch.linspace(0, bcfg.drop_path_rate, len(blocks)))
    if hasattr(blocks[0].attn, 'window_size'):
        assert {b.attn.window_size for b in blocks} == {bcfg.get('window_size', 7)}
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    decay = {id(p): group['weight_decay'] for group in optim.optimizer.param_groups for p in group['params']}
    base = cfg.optim_wrapper.optimizer.weight_decay
    exempt = set((cfg.optim_wrapper.get('paramwise_cfg') or {}).get('custom_keys', {}))
    for name, param in backbone.named_parameters():
        is_norm = isinstance(backbone.get_submodule(name.rsplit('.', 1)[0]), torch.nn.LayerNorm) \
            if '.' in name else False
        no_decay_kind = is_norm or any(k in name for k in NO_DECAY_KINDS[1:])
        if exempt and no_decay_kind:
            assert decay[id(param)] == 0.0, name
        elif param.ndim > 1 or not exempt:
            assert decay[id(param)] == base, name
