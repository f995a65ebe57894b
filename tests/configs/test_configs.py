"""Config smoke tests: every config loads, its model builds (mmseg's or mmdet's registry) and runs.

Segmentation configs run a forward pass and a training step with their own optimizer; detection configs run one
training loss + backward and one prediction.
"""
from __future__ import annotations

import re
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
# configs/classification (mmpretrain recipes) has its own tests: tests/configs/test_classification_configs.py
CONFIGS = sorted(p for p in (REPO / 'configs').rglob('*.py')
                 if '_base_' not in p.parts and 'classification' not in p.parts
                 and p.name != 'swin_t_cls_demo.py')  # mmpretrain demo: tests/configs/test_cls_demo_config.py
TINY_ARCH = dict(embed_dim=32, depths=(1, 1, 1, 1), num_heads=(1, 2, 4, 8))
# Tiny arch per backbone type, for segmentation and detection configs alike; heads and FPN take the channels the
# built backbone reports.
_PVT_TINY = dict(embed_dims=(16, 32, 32, 64), depths=(1, 1, 1, 1), num_heads=(1, 1, 2, 2), mlp_ratios=(2, 2, 2, 2),
                 sr_ratios=(8, 4, 2, 1))
TINY_DET_ARCHS = {'SwinTransformer': TINY_ARCH, 'PyramidVisionTransformer': _PVT_TINY,
                  'PyramidVisionTransformerV2': _PVT_TINY,
                  'ShuffleTransformer': dict(embed_dim=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4),
                                             dims=(16, 32, 64, 128), token_dim=8),
                  'CvT': dict(embed_dims=(16, 32, 64), depths=(1, 1, 1), num_heads=(1, 2, 2)),
                  # all 24 blocks: the CaiT recipe outputs blocks 5, 11, 17, 23 of CaiT-S24
                  # LayerScale 0.1, not the preset's 1e-5: gradients that small leave some weights unmoved in
                  # float32 after one step
                  'CaiT': dict(embed_dim=32, depth=24, num_heads=2, mlp_ratio=2.0, init_values=0.1),
                  # all 12 blocks: the CeiT recipe outputs blocks 2, 5, 8, 11 of CeiT-S
                  'CeiT': dict(embed_dim=32, depth=12, num_heads=2, mlp_ratio=2.0),
                  # all 16 blocks, the S form (conv stem, re-attention from block 11): the recipe outputs 3, 7, 11, 15
                  'DeepViT': dict(embed_dim=24, depth=16, num_heads=2, mlp_ratio=2.0, re_attention_start=11,
                                  transform_scale=True, scale_adjustment=0.5, conv_stem=True),
                  # all 12 blocks: the recipes name blocks (out_indices, window blocks, interactions) of a 12-block ViT
                  'VisionTransformer': dict(embed_dim=32, depth=12, num_heads=2, mlp_ratio=2.0),
                  # 12 blocks and two ResNet stages at least: the recipe names blocks 8, 11 and stages 0, 1
                  'HybridVisionTransformer': dict(embed_dim=32, depth=12, num_heads=2, mlp_ratio=2.0,
                                                  cnn_depths=(1, 1, 1), stem_width=32, cnn_widths=(128, 128, 256)),
                  # 48 channels: the recipes' 6 deformable heads divide them
                  'ViTAdapter': dict(embed_dim=48, depth=12, num_heads=3, mlp_ratio=2.0),
                  'LeViT': dict(embed_dims=(16, 24, 32), key_dim=8, num_heads=(2, 3, 2), depths=(1, 1, 1)),
                  # all 12 blocks: the CPVT-S recipe outputs blocks 2, 5, 8, 11
                  'CPVT': dict(embed_dim=32, depth=12, num_heads=2, mlp_ratio=2.0)}
DET_RECIPES = {  # config -> (backbone type, arch, head, lr, weight decay, neck start level)
    'swin/mask-rcnn_swin-t_fpn_1x_coco.py': ('SwinTransformer', 'tiny', 'MaskRCNN', 1e-4, 0.05, 0),
    'swin/mask-rcnn_swin-t_fpn_ms-crop-3x_coco.py': ('SwinTransformer', 'tiny', 'MaskRCNN', 1e-4, 0.05, 0),
    'pvt/retinanet_pvtv2-b2_fpn_1x_coco.py': ('PyramidVisionTransformerV2', 'b2', 'RetinaNet', 1e-4, 1e-4, 1),
    'pvt/mask-rcnn_pvtv2-b2_fpn_1x_coco.py': ('PyramidVisionTransformerV2', 'b2', 'MaskRCNN', 2e-4, 1e-4, 0),
    'shuffle/mask-rcnn_shuffle-t_fpn_1x_coco.py': ('ShuffleTransformer', 'tiny', 'MaskRCNN', 1e-4, 0.05, 0),
    'cvt/mask-rcnn_cvt-13_fpn_1x_coco.py': ('CvT', 'cvt-13', 'MaskRCNN', 1e-4, 0.05, 0),
    'vit_adapter/mask-rcnn_vit-adapter-s_fpn_ms-crop-3x_coco.py': ('ViTAdapter', 'small', 'MaskRCNN', 1e-4, 0.05, 0),
}
# The ViTDet recipe (a single-scale ViT, the simple feature pyramid, iteration-based LSJ schedule): test_vitdet_recipe.
VITDET = 'vit/mask-rcnn_vit-b-vitdet_simple-fpn_16xb4-lsj-100e_coco.py'
# Per backbone type in the detection recipes: FPN input channels, drop-path rate, warmup iterations, the
# paramwise custom keys (all with decay_mult 0) and norm_eval (the BatchNorm backbones keep their statistics).
DET_BACKBONE_RECIPES = {
    'SwinTransformer': ([96, 192, 384, 768], 0.2, 1000,
                        {'absolute_pos_embed', 'relative_position_bias_table', 'norm'}, False),
    'PyramidVisionTransformerV2': ([64, 128, 320, 512], 0.1, 500, set(), False),
    'ShuffleTransformer': ([96, 192, 384, 768], 0.2, 1000,
                           {'relative_position_bias_table', 'norm', 'patch_embed.bn'}, True),
    'CvT': ([64, 192, 384], 0.1, 1000,
            {'cls_token', 'norm', 'conv_proj_q.bn', 'conv_proj_k.bn', 'conv_proj_v.bn'}, True),
    # the official keys; 'bias' reaches every bias of the model (heads included), as in the official recipe
    'ViTAdapter': ([384, 384, 384, 384], 0.2, 500, {'level_embed', 'pos_embed', 'norm', 'bias'}, False),
}
DET_ALIASES = {'swin_t_mask_rcnn.py': 'swin/mask-rcnn_swin-t_fpn_1x_coco.py',
               'swin_t_mask_rcnn_3x.py': 'swin/mask-rcnn_swin-t_fpn_ms-crop-3x_coco.py',
               'pvtv2_b2_retinanet.py': 'pvt/retinanet_pvtv2-b2_fpn_1x_coco.py',
               'pvtv2_b2_mask_rcnn.py': 'pvt/mask-rcnn_pvtv2-b2_fpn_1x_coco.py',
               'shuffle_t_mask_rcnn.py': 'shuffle/mask-rcnn_shuffle-t_fpn_1x_coco.py',
               'cvt13_mask_rcnn.py': 'cvt/mask-rcnn_cvt-13_fpn_1x_coco.py',
               'vit_adapter_s_mask_rcnn_3x.py': 'vit_adapter/mask-rcnn_vit-adapter-s_fpn_ms-crop-3x_coco.py',
               'vitdet_b_mask_rcnn.py': VITDET}
DET_DEMOS = {  # demo config -> (backbone type, arch, neck in_channels)
    'demo/mask-rcnn_pvtv2-b0_demo.py': ('PyramidVisionTransformerV2', 'b0', [32, 64, 160, 256]),
    'demo/mask-rcnn_vit-t-vitdet_demo.py': ('VisionTransformer', 'tiny', 192),
}
VITDET_DEMO = 'demo/mask-rcnn_vit-t-vitdet_demo.py'
SEG_ALIASES = {'swin_t_upernet.py': 'swin/swin-t_upernet_8xb2-160k_ade20k-512x512.py',
               'shuffle_t_upernet.py': 'shuffle/shuffle-t_upernet_8xb2-160k_ade20k-512x512.py',
               'cvt13_upernet.py': 'cvt/cvt-13_upernet_8xb2-160k_ade20k-512x512.py',
               'deit_s_upernet.py': 'vit/deit-s_mln_upernet_8xb2-160k_ade20k-512x512.py',
               'vit_hybrid_b_r50_upernet.py': 'vit_hybrid/vit-b-r50-s16_upernet_8xb2-160k_ade20k-512x512.py',
               'cait_s24_upernet.py': 'cait/cait-s24_mln_upernet_8xb2-160k_ade20k-512x512.py',
               'ceit_s_upernet.py': 'ceit/ceit-s_mln_upernet_8xb2-160k_ade20k-512x512.py',
               'deepvit_s_upernet.py': 'deepvit/deepvit-s_mln_upernet_8xb2-160k_ade20k-512x512.py',
               'vit_adapter_s_upernet.py': 'vit_adapter/vit-adapter-s_upernet_8xb2-160k_ade20k-512x512.py',
               'levit_256_upernet.py': 'levit/levit-256_upernet_8xb2-160k_ade20k-512x512.py',
               'cpvt_s_upernet.py': 'cpvt/cpvt-s_mln_upernet_8xb2-160k_ade20k-512x512.py'}
# Segmentation recipes of the plain-ViT backbones, on the Swin-T recipe's schedule (test_vit_segmentation_recipe):
# backbone type, arch, drop-path, the checkpoint (DeiT-S, official), the auxiliary head's input level and the
# optimizer's layer decay rate (None: mmseg's custom no-decay keys instead).
DEIT_CHECKPOINT = 'https://dl.fbaipublicfiles.com/deit/deit_small_patch16_224-cd65a155.pth'
VIT_SEG_RECIPES = {
    'deit_s_upernet.py': ('VisionTransformer', 'small', 0.1, DEIT_CHECKPOINT, 3, None),
    'vit_adapter_s_upernet.py': ('ViTAdapter', 'small', 0.2, DEIT_CHECKPOINT, 2, 0.95),
}
# Segmentation recipes of the BatchNorm backbones (Swin-T's is test_paper_recipe): backbone type, arch, drop-path,
# UperNet in_channels, auxiliary head (in_index, in_channels), custom keys (decay_mult 0), pretrained checkpoint.
SEG_RECIPES = {
    'shuffle_t_upernet.py': ('ShuffleTransformer', 'tiny', 0.3, [96, 192, 384, 768], (2, 384),
                             {'relative_position_bias_table', 'norm', 'patch_embed.bn'},
                             'checkpoints/shuffle_vit_tiny_patch4_window7_224.pth'),
    'cvt13_upernet.py': ('CvT', 'cvt-13', 0.1, [64, 192, 384], (1, 192),
                         {'cls_token', 'norm', 'conv_proj_q.bn', 'conv_proj_k.bn', 'conv_proj_v.bn'},
                         'https://huggingface.co/microsoft/cvt-13/resolve/main/pytorch_model.bin'),
}
SEG_DEMOS = {  # demo config -> (its recipe alias, backbone type, arch, iterations: the Swin demo's CPU time)
    'demo/swin_t_upernet_demo.py': ('swin_t_upernet.py', 'SwinTransformer', 'tiny', 900),
    'demo/shuffle_t_upernet_demo.py': ('shuffle_t_upernet.py', 'ShuffleTransformer', 'tiny', 750),
    'demo/cvt13_upernet_demo.py': ('cvt13_upernet.py', 'CvT', 'cvt-13', 1320),
    'demo/vit-adapter-s_upernet_demo.py': ('vit_adapter_s_upernet.py', 'ViTAdapter', 'small', 720),
}


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
    _sync_bn_to_bn(model_cfg)
    channels = list(MODELS.build(model_cfg.backbone.copy()).out_channels)  # the backbone's contract
    if model_cfg.get('neck'):  # mmseg's MultiLevelNeck: one output per scale
        model_cfg.neck.in_channels = channels
        model_cfg.neck.out_channels = 16
        channels = [16] * len(model_cfg.neck.scales)
    model_cfg.decode_head.in_channels = [channels[i] for i in model_cfg.decode_head.in_index]
    model_cfg.decode_head.channels = 16
    if model_cfg.get('auxiliary_head'):
        model_cfg.auxiliary_head.in_channels = channels[model_cfg.auxiliary_head.in_index]
        model_cfg.auxiliary_head.channels = 8
    return MODELS.build(model_cfg)


def _forward(model: torch.nn.Module, num_classes: int) -> None:
    """Logits of a 72x60 image at the stride of the backbone's first level (4 for the pyramids, 16 for LeViT):
    ``ceil(side / stride)``, or through a neck that upsamples a stride-16 map by 4, ``4 * ceil(side / 16)`` (a ViT's
    grid covers the padded image)."""
    model.eval()
    with torch.no_grad():
        logits = model(torch.randn(1, 3, 72, 60), mode='tensor')
    stride = model.backbone.out_strides[0]
    assert logits.shape == ((1, num_classes, 20, 16) if model.with_neck
                            else (1, num_classes, -(-72 // stride), -(-60 // stride)))
    assert torch.isfinite(logits).all()


def _train_step(model: torch.nn.Module, cfg: Config, num_classes: int) -> None:
    """One training step with the config's own optimizer: loss on two 72x60 images, backward, update."""
    from mmengine.optim import build_optim_wrapper
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    from vit_backbones.layers import DropPath
    model.train()
    for module in model.modules():  # deterministic: a block dropped for the whole batch gets no gradient
        if isinstance(module, DropPath):
            module.drop_prob = 0.0
    with torch.no_grad():  # zero-initialised weights and gates (ViT-Adapter's injector gammas, deformable-attention
        for name, param in model.backbone.named_parameters():  # offset / weight projections) stop the gradient to
            if not param.any() and not name.endswith('bias'):  # what feeds them on a first step
                param.normal_(std=0.02)
    h, w = 72, 60
    samples = []
    for _ in range(2):
        sample = SegDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w)))
        sample.gt_sem_seg = PixelData(data=torch.randint(0, num_classes, (1, h, w)))
        samples.append(sample)
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    trainable = [p for p in model.backbone.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in trainable]
    loss, _ = model.parse_losses(model.loss(torch.randn(2, 3, h, w), samples))
    assert torch.isfinite(loss)
    optim.update_params(loss)
    names = [n for n, p in model.backbone.named_parameters() if p.requires_grad]
    # talking heads' pre-softmax bias (CaiT's attn.proj_l.bias) shifts every logit of a head alike: the softmax
    # cancels it, its gradient is zero up to rounding, and it starts at zero, so weight decay leaves it there too
    stuck = [n for n, a, p in zip(names, before, trainable) if torch.equal(a, p) and not n.endswith('attn.proj_l.bias')]
    assert not stuck, stuck  # every backbone parameter moved


def _build_tiny_detector(cfg: Config) -> torch.nn.Module:
    """Builds ``cfg.model`` (an mmdet detector) with a tiny backbone of the same type and no pretrained weights."""
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model_cfg = cfg.model
    model_cfg.backbone.arch = TINY_DET_ARCHS[model_cfg.backbone.type.split('.')[-1]]
    model_cfg.backbone.init_cfg = None
    _sync_bn_to_bn(model_cfg)
    channels = list(DET_MODELS.build(model_cfg.backbone.copy()).out_channels)
    # the simple feature pyramid reads the last map only; FPN every map
    single = model_cfg.neck.type.split('.')[-1] == 'SimpleFeaturePyramid'
    model_cfg.neck.in_channels = channels[-1] if single else channels
    if model_cfg.get('train_cfg', {}).get('rcnn'):  # 64 sampled RoIs, not 512: conv box heads (4conv1fc) stay fast
        model_cfg.train_cfg.rcnn.sampler.num = 64
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
    assert set(SEG_ALIASES) | set(SEG_ALIASES.values()) | set(SEG_DEMOS) <= names


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
    _train_step(model, cfg, cfg.model.decode_head.num_classes)


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


@pytest.mark.parametrize('name', sorted(SEG_RECIPES))
def test_bn_backbone_segmentation_recipe(name: str) -> None:
    """Shuffle-T and CvT-13 UperNet: Swin-T's ADE20K recipe with their backbone, heads on their levels, and the
    backbone's BatchNorms training as SyncBatchNorm under distributed training."""
    backbone, arch, drop_path_rate, channels, (aux_index, aux_channels), keys, checkpoint = SEG_RECIPES[name]
    cfg = Config.fromfile(str(REPO / 'configs' / name))
    assert cfg.custom_imports.imports == ['vit_backbones', 'vit_backbones.engine.safe_checkpoint_io']
    bcfg = cfg.model.backbone
    assert bcfg.type == f'vit_backbones.{backbone}' and bcfg.arch == arch
    assert bcfg.drop_path_rate == drop_path_rate and bcfg.init_cfg == dict(type='Pretrained', checkpoint=checkpoint)
    assert tuple(bcfg.out_indices) == tuple(range(len(channels)))
    assert bcfg.norm_eval is False and cfg.sync_bn == 'torch'  # BatchNorms train, synchronised across GPUs
    head, aux = cfg.model.decode_head, cfg.model.auxiliary_head
    assert list(head.in_channels) == channels and list(head.in_index) == list(range(len(channels)))
    assert (aux.in_index, aux.in_channels) == (aux_index, aux_channels) and channels[aux_index] == aux_channels
    assert head.norm_cfg.type == aux.norm_cfg.type == 'SyncBN'
    assert head.num_classes == aux.num_classes == 150
    assert cfg.crop_size == (512, 512) and cfg.model.data_preprocessor.size == (512, 512)
    assert cfg.train_dataloader.batch_size == 2 and cfg.train_dataloader.dataset.type == 'ADE20KDataset'
    assert cfg.optim_wrapper.optimizer == dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01)
    custom_keys = cfg.optim_wrapper.paramwise_cfg.custom_keys
    assert set(custom_keys) == keys and all(v == dict(decay_mult=0.0) for v in custom_keys.values())
    warmup, poly = cfg.param_scheduler
    assert (warmup.type, warmup.start_factor, warmup.end) == ('LinearLR', 1e-6, 1500)
    assert (poly.type, poly.power, poly.eta_min, poly.begin, poly.end) == ('PolyLR', 1.0, 0.0, 1500, 160000)
    assert cfg.train_cfg.max_iters == 160000
    built = MODELS.build(cfg.model.backbone)  # the preset's real widths, as the heads are told
    assert list(built.out_channels) == channels
    assert list(built.out_strides) == [4 * 2 ** i for i in range(len(channels))]


@pytest.mark.parametrize('alias', sorted(SEG_ALIASES))
def test_segmentation_aliases(alias: str) -> None:
    assert Config.fromfile(str(REPO / 'configs' / alias)).to_dict() == Config.fromfile(
        str(REPO / 'configs' / SEG_ALIASES[alias])).to_dict()


# Configs whose custom keys must each name parameters of the backbone and nothing outside it (e.g. the heads'
# BatchNorms, named ``bn``), built tiny; and the config changes that give the backbone every parameter kind.
NO_DECAY_KEY_CONFIGS = {'swin_t_upernet.py': dict(use_abs_pos_embed=True),
                        'swin_t_mask_rcnn.py': dict(use_abs_pos_embed=True),
                        'shuffle_t_upernet.py': {}, 'shuffle_t_mask_rcnn.py': {},
                        'cvt13_upernet.py': {}, 'cvt13_mask_rcnn.py': {}, 'deit_s_upernet.py': {},
                        'ceit_s_upernet.py': {},
                        'vit_hybrid_b_r50_upernet.py': {}, 'deepvit_s_upernet.py': {},
                        'levit_256_upernet.py': {}, 'cpvt_s_upernet.py': {}}


@pytest.mark.parametrize('name', sorted(NO_DECAY_KEY_CONFIGS))
def test_no_decay_keys_name_backbone_parameters_only(name: str) -> None:
    cfg = Config.fromfile(str(REPO / 'configs' / name))
    cfg.model.backbone.update(NO_DECAY_KEY_CONFIGS[name])
    model = _build_tiny_detector(cfg) if cfg.get('default_scope') == 'mmdet' else _build_tiny(cfg)
    names = [n for n, _ in model.named_parameters()]  # as mmengine matches them: the full name
    for key in cfg.optim_wrapper.paramwise_cfg.custom_keys:
        matched = [n for n in names if key in n]
        assert matched and all(n.startswith('backbone.') for n in matched), (key, matched)


@pytest.mark.parametrize('name', sorted(SEG_DEMOS))
def test_demo_config_matches_generator(name: str) -> None:
    """Every segmentation demo: the Demo Shapes data, CPU settings, and the backbone and no-decay keys of its recipe.

    The Swin demo inherits its recipe; the others are the Swin demo with their recipe's backbone swapped in (same
    data, heads and schedule shape), so their backbone settings and no-decay keys are checked against the recipe.
    """
    recipe, backbone, arch, iters = SEG_DEMOS[name]
    cfg = Config.fromfile(str(REPO / 'configs' / name))
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dataset = cfg[loader].dataset
        assert dataset.type == 'BaseSegDataset' and not dataset.reduce_zero_label
        assert tuple(dataset.metainfo.classes) == CLASSES
        assert [list(c) for c in dataset.metainfo.palette] == PALETTE
    assert cfg.model.decode_head.num_classes == cfg.model.auxiliary_head.num_classes == len(CLASSES)
    assert cfg.model.backbone.type == f'vit_backbones.{backbone}' and cfg.model.backbone.arch == arch
    assert cfg.model.backbone.init_cfg is None  # from scratch: no download
    assert cfg.model.decode_head.norm_cfg.type == 'BN' and cfg.model.auxiliary_head.norm_cfg.type == 'BN'
    assert cfg.get('sync_bn') is None  # what mmengine's Runner reads: no SyncBatchNorm conversion on a CPU run
    assert cfg.crop_size == (128, 128) and cfg.train_dataloader.batch_size == 4
    assert cfg.train_cfg.max_iters == iters and cfg.train_cfg.val_interval == iters // 3
    assert cfg.param_scheduler[-1].end == iters and cfg.default_hooks.checkpoint.interval == iters
    assert cfg.env_cfg.dist_cfg.backend == 'gloo' and not cfg.env_cfg.cudnn_benchmark
    text = Path(cfg.filename).read_text()
    if backbone == 'SwinTransformer':
        assert text.count(f"_base_ = ['../{recipe}']") == 1  # the demo of that recipe
        return
    assert text.count("_base_ = ['./swin_t_upernet_demo.py'") == 1  # first base: the Swin demo
    full = Config.fromfile(str(REPO / 'configs' / recipe))
    ignore = {'drop_path_rate', 'init_cfg'}
    if full.model.backbone.get('norm_cfg', {}).get('type') == 'SyncBN':  # the recipe's SyncBN is BN on one process
        assert cfg.model.backbone.norm_cfg == dict(full.model.backbone.norm_cfg, type='BN')
        ignore.add('norm_cfg')
    assert {k: v for k, v in cfg.model.backbone.items() if k not in ignore} \
        == {k: v for k, v in full.model.backbone.items() if k not in ignore}
    for head in ('decode_head', 'auxiliary_head'):
        assert cfg.model[head].in_channels == full.model[head].in_channels
        assert cfg.model[head].in_index == full.model[head].in_index
    assert cfg.optim_wrapper.get('constructor') == full.optim_wrapper.get('constructor')
    assert cfg.optim_wrapper.paramwise_cfg == full.optim_wrapper.paramwise_cfg


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
    assert set(DET_RECIPES) | set(DET_ALIASES) | set(DET_DEMOS) | {VITDET} <= names


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
    channels, drop_path_rate, warmup_iters, no_decay_keys, norm_eval = DET_BACKBONE_RECIPES[backbone]
    assert list(cfg.model.neck.in_channels) == channels
    assert cfg.model.backbone.get('norm_eval', False) is norm_eval and cfg.get('sync_bn') is None
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
    assert cfg.model.backbone.drop_path_rate == drop_path_rate and warmup.end == warmup_iters
    custom_keys = (cfg.optim_wrapper.get('paramwise_cfg') or {}).get('custom_keys', {})
    assert set(custom_keys) == no_decay_keys and all(v == dict(decay_mult=0.0) for v in custom_keys.values())


@pytest.mark.parametrize('name', sorted(DET_RECIPES) + [VITDET])
def test_detection_fpn_levels_match_anchor_strides(name: str) -> None:
    """The FPN's outputs (extra levels max-pooled or convolved where the backbone has fewer; the simple feature
    pyramid's levels resampled from one stride-16 map) sit at the strides the anchor generator and the RoI extractors
    of the config assume."""
    cfg = Config.fromfile(str(REPO / 'configs' / name))
    model = _build_tiny_detector(cfg)
    model.eval()
    size = 256
    with torch.no_grad():
        feats = model.neck(model.backbone(torch.randn(1, 3, size, size)))
    strides = [size // f.shape[-1] for f in feats]
    assert [size // s for s in strides] == [f.shape[-1] for f in feats]  # whole divisions
    head = cfg.model.get('rpn_head') or cfg.model.bbox_head
    assert strides == list(head.anchor_generator.strides)
    if 'roi_head' in cfg.model:
        for extractor in ('bbox_roi_extractor', 'mask_roi_extractor'):
            featmap_strides = list(cfg.model.roi_head[extractor].featmap_strides)
            assert featmap_strides == strides[:len(featmap_strides)]


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


@pytest.mark.parametrize('name', sorted(DET_DEMOS))
def test_detection_demo_config_matches_generator(name: str) -> None:
    backbone, arch, neck_channels = DET_DEMOS[name]
    cfg = Config.fromfile(str(REPO / 'configs' / name))
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
    assert cfg.model.backbone.type == f'vit_backbones.{backbone}' and cfg.model.backbone.arch == arch
    assert cfg.model.backbone.init_cfg is None  # no download
    assert cfg.model.neck.in_channels == neck_channels
    assert cfg.env_cfg.dist_cfg.backend == 'gloo' and not cfg.env_cfg.cudnn_benchmark
    assert cfg.train_dataloader.batch_size == 4 and cfg.train_cfg.max_epochs == 6  # the same budget for every demo


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
NO_DECAY_KINDS = ('relative_position_bias_table', 'absolute_pos_embed', 'pos_embed', 'cls_token', 'level_embed',
                  'attention_biases', 'pos_block')
LAYER_DECAY = 'vit_backbones.LayerDecayOptimWrapperConstructor'


def _backbone_archs(type_name: str) -> dict:
    from vit_backbones.backbones import cait, ceit, cpvt, cvt, deepvit, levit, pvt, shuffle, swin, vit, vit_hybrid
    return {'SwinTransformer': swin.ARCHS, 'PyramidVisionTransformer': pvt.V1_ARCHS,
            'PyramidVisionTransformerV2': pvt.V2_ARCHS, 'ShuffleTransformer': shuffle.ARCHS,
            'CvT': cvt.ARCHS, 'VisionTransformer': vit.ARCHS, 'ViTAdapter': vit.ARCHS, 'CaiT': cait.ARCHS,
            'CeiT': ceit.ARCHS, 'LeViT': levit.ARCHS, 'HybridVisionTransformer': vit_hybrid.ARCHS,
            'DeepViT': deepvit.ARCHS,
            'CPVT': cpvt.ARCHS}[type_name]


def _expected_drop_path(type_name: str, depths: list[int], rate: float) -> tuple[str, list[list[float]]]:
    """The block attribute holding stochastic depth and each block's rate, grouped by stage, by the family's
    documented rule: Swin/PVT/ViT rise linearly over all blocks; Shuffle holds ``linspace(0, rate, stages)[i]`` for
    every block of stage i; CvT rises linearly over the last stage's blocks only, 0 elsewhere."""
    if type_name == 'ShuffleTransformer':
        per_stage = torch.linspace(0, rate, len(depths)).tolist()
        return 'drop_path', [[per_stage[i]] * d for i, d in enumerate(depths)]
    if type_name == 'CaiT':  # the same rate in every self-attention block (CaiT's rule)
        return 'drop_path1', [[rate] * d for d in depths]
    if type_name == 'CvT':
        return 'drop_path', [[0.0] * d for d in depths[:-1]] + [torch.linspace(0, rate, depths[-1]).tolist()]
    if type_name == 'LeViT':  # one rate for every residual branch (timm's and the official rule)
        return 'drop_path1', [[rate] * d for d in depths]
    rates = torch.linspace(0, rate, sum(depths)).tolist()
    bounds = [sum(depths[:i]) for i in range(len(depths) + 1)]
    return 'drop_path1', [rates[bounds[i]:bounds[i + 1]] for i in range(len(depths))]


def _layer_decay_depth(name: str, num_blocks: int) -> int:
    """BEiT's depth of a model parameter, written out for a plain ViT: patch and position embeddings 0, block k at
    k + 1, everything else (a ViT-Adapter's adapter, necks, heads) at ``num_blocks + 1``."""
    if name.startswith('backbone.patch_embed.') or name in ('backbone.pos_embed', 'backbone.cls_token'):
        return 0
    match = re.match(r'backbone\.blocks\.(\d+)\.', name)
    return int(match.group(1)) + 1 if match else num_blocks + 1


@pytest.mark.parametrize('path', RECIPES, ids=lambda p: p.relative_to(REPO / 'configs').as_posix())
def test_recipe_builds_the_model_and_optimizer_it_states(path: Path) -> None:
    """The real model of every recipe: the preset depth, window and drop-path schedule the config asks for, and
    an optimizer whose weight decay spares what the recipe exempts (norms, position tables) and nothing else, with
    the learning rate of each layer under layer-wise decay."""
    from mmengine.optim import build_optim_wrapper
    from torch.nn.modules.batchnorm import _BatchNorm

    from vit_backbones.backbones.cait import CaiT
    from vit_backbones.backbones.vit import VisionTransformer
    from vit_backbones.layers import DropPath
    cfg = Config.fromfile(str(path))
    scope = cfg.get('default_scope', 'mmseg')
    init_default_scope(scope)
    _sync_bn_to_bn(cfg.model)
    model = (DET_MODELS if scope == 'mmdet' else MODELS).build(cfg.model)
    backbone, bcfg = model.backbone, cfg.model.backbone
    type_name = bcfg.type.split('.')[-1]
    preset = _backbone_archs(type_name)[bcfg.arch]
    plain = isinstance(backbone, (VisionTransformer, CaiT)) or 'depth' in preset  # e.g. plain CPVT
    if plain:  # every block is a stage: one group of blocks
        depths, stage_blocks = [preset['depth']], [list(backbone.blocks)]
    else:
        depths, stage_blocks = list(preset['depths']), [list(stage.blocks) for stage in backbone.stage_list()]
    assert [len(blocks) for blocks in stage_blocks] == depths
    attr, expected = _expected_drop_path(type_name, depths, bcfg.drop_path_rate)
    for blocks, stage_rates in zip(stage_blocks, expected):
        for block, rate in zip(blocks, stage_rates):
            module = getattr(block, attr)
            assert isinstance(module, DropPath) == (rate > 0), (attr, rate, module)
            # every stochastic-depth module of the block (e.g. Swin's drop_path2) drops at the block's rate
            probs = [m.drop_prob for m in block.modules() if isinstance(m, DropPath)]
            torch.testing.assert_close(torch.tensor(probs), torch.full((len(probs),), rate))
    if type_name == 'ViTAdapter':  # every extractor's ConvFFN drops at the backbone's rate itself
        probs = [m.drop_prob for m in backbone.interactions.modules() if isinstance(m, DropPath)]
        assert len(probs) == len(bcfg.interaction_indexes) + 2  # one per extractor, two extra in the last
        assert set(probs) == {bcfg.drop_path_rate}
    blocks = [block for blocks in stage_blocks for block in blocks]
    if plain:  # windowed blocks by index, the others global
        windowed = set(bcfg.get('window_block_indexes', []))
        assert [getattr(b, 'window_size', 0) for b in blocks] == [bcfg.window_size if i in windowed else 0  # CeiT: none
                                                   for i in range(len(blocks))]
        assert {b.attn.use_rel_pos for b in blocks} == {bcfg.get('use_rel_pos', False)}
    elif hasattr(blocks[0].attn, 'window_size'):
        assert {b.attn.window_size for b in blocks} == {bcfg.get('window_size', 7)}
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    groups = {id(p): group for group in optim.optimizer.param_groups for p in group['params']}
    decay = {key: group['weight_decay'] for key, group in groups.items()}
    base = cfg.optim_wrapper.optimizer.weight_decay
    custom_keys = (cfg.optim_wrapper.get('paramwise_cfg') or {}).get('custom_keys', {})
    assert all(v == dict(decay_mult=0.0) for v in custom_keys.values())
    if cfg.optim_wrapper.get('constructor') == LAYER_DECAY:
        # Layer-wise decay: block k of L gets lr * rate ** (L - k), the embeddings rate ** (L + 1), the rest the
        # full lr; no weight decay on 1-D parameters (norms, biases, layer scales), position embeddings and
        # relative tables, anywhere in the model.
        assert not custom_keys
        rate, lr = cfg.optim_wrapper.paramwise_cfg.layer_decay_rate, cfg.optim_wrapper.optimizer.lr
        top = len(blocks) + 1
        for name, param in model.named_parameters():
            depth = _layer_decay_depth(name, len(blocks))
            assert groups[id(param)]['lr'] == pytest.approx(lr * rate ** (top - depth)), name
            no_decay = param.ndim == 1 or name.rsplit('.', 1)[-1] in ('pos_embed', 'cls_token', 'rel_pos_h',
                                                                      'rel_pos_w')
            assert decay[id(param)] == (0.0 if no_decay else base), name
        return
    # A recipe with custom keys exempts every norm of the backbone (LayerNorm, GroupNorm, BatchNorm alike) and the
    # position tables / embeddings / cls token it names; every other parameter, biases and all parameters outside
    # the backbone included, keeps the base weight decay. Two official ViT-Adapter rules: 'bias' exempts every bias
    # of the model; the spatial prior's BatchNorms (``spm.stem.1`` ...: no 'norm' in their names) keep weight decay
    # on their weights.
    exempt_norms = 'norm' in custom_keys
    exempt_kinds = [kind for kind in NO_DECAY_KINDS if kind in custom_keys]
    modules = dict(model.named_modules())
    for name, param in model.named_parameters():
        owner = modules[name.rsplit('.', 1)[0]]
        is_norm = isinstance(owner, (torch.nn.LayerNorm, torch.nn.GroupNorm, _BatchNorm))
        in_backbone = name.startswith('backbone.')
        no_decay = in_backbone and ((exempt_norms and is_norm) or any(kind in name for kind in exempt_kinds))
        if type_name == 'ViTAdapter' and name.startswith('backbone.spm.'):
            no_decay = False
        no_decay = no_decay or ('bias' in custom_keys and 'bias' in name)
        assert decay[id(param)] == (0.0 if no_decay else base), name


VITDET_WINDOW_BLOCKS = [0, 1, 3, 4, 6, 7, 9, 10]  # the global blocks are 2, 5, 8, 11


def test_vitdet_recipe() -> None:
    """The ViTDet paper's Mask R-CNN ViT-B recipe: MAE init, windowed + global blocks with relative positions, the
    simple feature pyramid with LayerNorm, LN heads, LSJ 1024, AdamW with layer decay 0.7, 184375 iterations of 64."""
    cfg = Config.fromfile(str(REPO / 'configs' / VITDET))
    assert cfg.default_scope == 'mmdet' and cfg.model.type == 'MaskRCNN'
    assert cfg.custom_imports.imports == ['vit_backbones', 'vit_backbones.engine.safe_checkpoint_io']
    bcfg = cfg.model.backbone
    assert bcfg.type == 'vit_backbones.VisionTransformer' and bcfg.arch == 'base' and bcfg.patch_size == 16
    assert 'depth' not in bcfg and 'norm_cfg' not in bcfg  # mmdet's ResNet keys are gone (_delete_)
    assert not bcfg.with_cls_token and bcfg.use_abs_pos and bcfg.use_rel_pos and not bcfg.final_norm
    assert bcfg.window_size == 14 and bcfg.window_block_indexes == VITDET_WINDOW_BLOCKS
    assert bcfg.pretrain_img_size == 1024 and bcfg.interpolate_antialias is False  # detectron2's input_size
    assert bcfg.drop_path_rate == 0.1 and tuple(bcfg.out_indices) == (11, )
    assert bcfg.init_cfg == dict(
        type='Pretrained', checkpoint='https://dl.fbaipublicfiles.com/mae/pretrain/mae_pretrain_vit_base.pth')
    ln = dict(type='LN2d', eps=1e-6, requires_grad=True)
    neck = cfg.model.neck
    assert neck.type == 'vit_backbones.SimpleFeaturePyramid' and 'num_outs' not in neck
    assert (neck.in_channels, neck.out_channels, tuple(neck.scale_factors), neck.in_stride, neck.add_p6) == (
        768, 256, (4.0, 2.0, 1.0, 0.5), 16, True)
    assert neck.norm_cfg == ln
    assert cfg.model.rpn_head.num_convs == 2
    bbox_head, mask_head = cfg.model.roi_head.bbox_head, cfg.model.roi_head.mask_head
    assert bbox_head.type == 'Shared4Conv1FCBBoxHead' and bbox_head.conv_out_channels == 256
    assert bbox_head.norm_cfg == mask_head.norm_cfg == ln
    assert bbox_head.num_classes == mask_head.num_classes == 80
    # large-scale jitter
    train = cfg.train_dataloader.dataset.pipeline
    assert [t.type for t in train] == ['LoadImageFromFile', 'LoadAnnotations', 'RandomFlip', 'RandomResize',
                                       'RandomCrop', 'FilterAnnotations', 'Pad', 'PackDetInputs']
    resize, crop, _, pad = train[3:7]
    assert (resize.scale, resize.ratio_range, resize.keep_ratio) == ((1024, 1024), (0.1, 2.0), True)
    assert (crop.crop_type, crop.crop_size, crop.allow_negative_crop, crop.recompute_bbox) == (
        'absolute_range', (1024, 1024), True, True)
    assert pad.size == (1024, 1024)
    test = cfg.test_dataloader.dataset.pipeline
    assert [t.type for t in test][:3] == ['LoadImageFromFile', 'Resize', 'Pad']
    assert test[1].scale == test[2].size == (1024, 1024)
    assert cfg.train_dataloader.batch_size == 4 and cfg.auto_scale_lr.base_batch_size == 64  # 16 GPUs x 4
    # optimizer and schedule
    assert cfg.optim_wrapper.constructor == LAYER_DECAY
    assert cfg.optim_wrapper.optimizer == dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.1)
    assert cfg.optim_wrapper.paramwise_cfg == dict(layer_decay_rate=0.7)
    assert cfg.train_cfg.type == 'IterBasedTrainLoop' and cfg.train_cfg.max_iters == 184375
    assert 'max_epochs' not in cfg.train_cfg
    warmup, steps = cfg.param_scheduler
    assert (warmup.type, warmup.start_factor, warmup.by_epoch, warmup.end) == ('LinearLR', 0.001, False, 250)
    assert (steps.type, steps.by_epoch, steps.gamma, steps.end) == ('MultiStepLR', False, 0.1, 184375)
    assert [round(m * 64 / 118000, 1) for m in steps.milestones] == [88.9, 96.3]  # epochs of 118k images
    assert cfg.default_hooks.checkpoint.by_epoch is False and cfg.log_processor.by_epoch is False


def test_vitdet_recipe_real_model() -> None:
    """The built ViT-B: 8 windowed and 4 global blocks, global relative tables for the 64x64 grid of 1024 inputs
    (detectron2's size), no cls token and no final norm; the pyramid at strides 4 to 64; the layer-decay lrs."""
    from mmengine.optim import build_optim_wrapper
    cfg = Config.fromfile(str(REPO / 'configs' / VITDET))
    init_default_scope('mmdet')
    model = DET_MODELS.build(cfg.model)
    vit = model.backbone
    assert vit.pos_grid == (64, 64) and vit.cls_token is None and isinstance(vit.norm, torch.nn.Identity)
    for index, block in enumerate(vit.blocks):
        side = 14 if index in VITDET_WINDOW_BLOCKS else 64
        assert block.window_size == (14 if index in VITDET_WINDOW_BLOCKS else 0)
        assert block.attn.rel_pos_h.shape == block.attn.rel_pos_w.shape == (2 * side - 1, 64)
    assert model.neck.out_strides == (4, 8, 16, 32, 64) and vit.out_strides == (16, )
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    lrs = {name: group['lr'] for group in optim.optimizer.param_groups for name in group['param_names']}
    assert lrs['backbone.patch_embed.proj.weight'] == pytest.approx(1e-4 * 0.7 ** 13)
    assert lrs['backbone.blocks.0.attn.qkv.weight'] == pytest.approx(1e-4 * 0.7 ** 12)
    assert lrs['backbone.blocks.11.mlp.fc2.weight'] == pytest.approx(1e-4 * 0.7)
    assert lrs['neck.levels.stride4.lateral_conv.weight'] == lrs['roi_head.bbox_head.fc_cls.weight'] == 1e-4


def test_vitdet_demo_keeps_the_recipe() -> None:
    """The ViTDet demo is the PVT demo (data, budget, head widths) with the ViTDet recipe's model, optimizer and
    augmentation: only the backbone size, the window (4x4 tokens on the 8x8 grid of 128x128 images), the grid it
    learns positions for, the widths and the lr (the PVT demo's) differ."""
    demo = Config.fromfile(str(REPO / 'configs' / VITDET_DEMO))
    recipe = Config.fromfile(str(REPO / 'configs' / VITDET))
    sizes = {'arch', 'window_size', 'pretrain_img_size', 'init_cfg', 'with_cp'}
    assert {k: v for k, v in demo.model.backbone.items() if k not in sizes} \
        == {k: v for k, v in recipe.model.backbone.items() if k not in sizes}
    assert demo.model.backbone.window_size == 4 and demo.model.backbone.pretrain_img_size == (128, 128)
    assert {k: v for k, v in demo.model.neck.items() if k not in ('in_channels', 'out_channels')} \
        == {k: v for k, v in recipe.model.neck.items() if k not in ('in_channels', 'out_channels')}
    assert demo.model.rpn_head.num_convs == 2
    for head in ('bbox_head', 'mask_head'):
        assert demo.model.roi_head[head].type == recipe.model.roi_head[head].type
        assert demo.model.roi_head[head].norm_cfg == recipe.model.roi_head[head].norm_cfg
    assert demo.optim_wrapper.constructor == recipe.optim_wrapper.constructor
    assert demo.optim_wrapper.paramwise_cfg == recipe.optim_wrapper.paramwise_cfg
    assert {k: v for k, v in demo.optim_wrapper.optimizer.items() if k != 'lr'} \
        == {k: v for k, v in recipe.optim_wrapper.optimizer.items() if k != 'lr'}
    assert demo.optim_wrapper.optimizer.lr == 4e-4  # the PVT demo's
    types = [t.type for t in demo.train_dataloader.dataset.pipeline]
    assert types == [t.type for t in recipe.train_dataloader.dataset.pipeline]
    resize, crop, _, pad = demo.train_dataloader.dataset.pipeline[3:7]
    assert resize.scale == crop.crop_size == pad.size == (128, 128) and resize.ratio_range == (0.1, 2.0)
    assert [t.type for t in demo.test_dataloader.dataset.pipeline][:3] == ['LoadImageFromFile', 'Resize', 'Pad']
    init_default_scope('mmdet')
    vit = DET_MODELS.build(demo.model.backbone)
    assert vit.pos_grid == (8, 8) and vit.out_channels == (192, )


@pytest.mark.parametrize('name', sorted(VIT_SEG_RECIPES))
def test_vit_segmentation_recipe(name: str) -> None:
    """DeiT-S + MultiLevelNeck UperNet (mmseg's recipe) and ViT-Adapter-S UperNet (the official one): the Swin-T
    recipe's schedule, data and heads, with their backbone, heads on their levels and their optimizer rules."""
    backbone, arch, drop_path_rate, checkpoint, aux_index, layer_decay = VIT_SEG_RECIPES[name]
    cfg = Config.fromfile(str(REPO / 'configs' / name))
    assert cfg.custom_imports.imports == ['vit_backbones', 'vit_backbones.engine.safe_checkpoint_io']
    bcfg = cfg.model.backbone
    assert bcfg.type == f'vit_backbones.{backbone}' and bcfg.arch == arch and 'window_size' not in bcfg
    assert bcfg.drop_path_rate == drop_path_rate and bcfg.init_cfg == dict(type='Pretrained', checkpoint=checkpoint)
    head, aux = cfg.model.decode_head, cfg.model.auxiliary_head
    assert list(head.in_channels) == [384] * 4 and list(head.in_index) == [0, 1, 2, 3]
    assert (aux.in_index, aux.in_channels) == (aux_index, 384)
    assert head.norm_cfg.type == aux.norm_cfg.type == 'SyncBN' and head.num_classes == aux.num_classes == 150
    assert cfg.crop_size == (512, 512) and cfg.model.data_preprocessor.size == (512, 512)
    assert cfg.train_dataloader.batch_size == 2 and cfg.train_dataloader.dataset.type == 'ADE20KDataset'
    assert cfg.optim_wrapper.optimizer == dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01)
    warmup, poly = cfg.param_scheduler
    assert (warmup.type, warmup.start_factor, warmup.end) == ('LinearLR', 1e-6, 1500)
    assert (poly.type, poly.power, poly.eta_min, poly.begin, poly.end) == ('PolyLR', 1.0, 0.0, 1500, 160000)
    assert cfg.train_cfg.max_iters == 160000
    if layer_decay is None:
        assert 'constructor' not in cfg.optim_wrapper
        custom_keys = cfg.optim_wrapper.paramwise_cfg.custom_keys
        assert custom_keys == {k: dict(decay_mult=0.0) for k in ('pos_embed', 'cls_token', 'norm')}
    else:
        assert cfg.optim_wrapper.constructor == LAYER_DECAY
        assert cfg.optim_wrapper.paramwise_cfg == dict(layer_decay_rate=layer_decay)


def test_deit_mln_upernet_recipe() -> None:
    """mmseg's ``vit_deit-s16_mln_upernet_8xb2-160k_ade20k-512x512``: blocks 2, 5, 8, 11 of DeiT-S with its cls
    token and no final norm, positions learned for the 32x32 grid of 512 crops, MultiLevelNeck to strides 4-32."""
    cfg = Config.fromfile(str(REPO / 'configs' / 'deit_s_upernet.py'))
    bcfg = cfg.model.backbone
    assert bcfg.with_cls_token and not bcfg.final_norm and tuple(bcfg.out_indices) == (2, 5, 8, 11)
    assert bcfg.pretrain_img_size == (512, 512) and bcfg.interpolate_antialias is False
    assert cfg.model.neck == dict(type='MultiLevelNeck', in_channels=[384] * 4, out_channels=384,
                                  scales=[4, 2, 1, 0.5])
    model = _build_tiny(cfg)
    assert model.backbone.pos_grid == (32, 32) and isinstance(model.backbone.norm, torch.nn.Identity)
    model.eval()
    with torch.no_grad():
        feats = model.extract_feat(torch.randn(1, 3, 64, 96))
    assert [f.shape[-2:] for f in feats] == [(16, 24), (8, 12), (4, 6), (2, 3)]  # strides 4, 8, 16, 32


def test_vit_adapter_recipes() -> None:
    """The official ViT-Adapter-S settings in both recipes: DeiT-S with LayerScale, 4 interactions of 3 blocks,
    6 deformable heads of 4 points, value ratio 1.0, ConvFFN ratio 0.25, SyncBN (official) that a single-process
    run overrides; the detection ViT windowed except blocks 2, 5, 8, 11 and the mmdet form of the ViT feature;
    the segmentation ViT global with the mmseg form, tested with sliding 512 windows."""
    seg = Config.fromfile(str(REPO / 'configs' / 'vit_adapter_s_upernet.py'))
    det = Config.fromfile(str(REPO / 'configs' / 'vit_adapter_s_mask_rcnn_3x.py'))
    official = dict(type='vit_backbones.ViTAdapter', arch='small', pretrain_img_size=224, layer_scale_init_value=1.0,
                    drop_path_rate=0.2, conv_inplane=64, n_points=4, deform_num_heads=6, cffn_ratio=0.25,
                    deform_ratio=1.0, interaction_indexes=[[0, 2], [3, 5], [6, 8], [9, 11]],
                    norm_cfg=dict(type='SyncBN', requires_grad=True), out_indices=(0, 1, 2, 3))
    for cfg in (seg, det):
        assert {k: v for k, v in cfg.model.backbone.items() if k in official} == official
    assert seg.model.backbone.vit_feature == 'interactions' and 'window_block_indexes' not in seg.model.backbone
    assert det.model.backbone.vit_feature == 'last'
    assert (det.model.backbone.window_size, det.model.backbone.window_block_indexes) == (14, VITDET_WINDOW_BLOCKS)
    assert seg.model.test_cfg == dict(mode='slide', crop_size=(512, 512), stride=(341, 341))
    assert [t.type for t in seg.test_dataloader.dataset.pipeline] == [
        'LoadImageFromFile', 'Resize', 'ResizeToMultiple', 'LoadAnnotations', 'PackSegInputs']
    # detection: the Swin-T 3x augmentation, then a crop to at most 1024x1024
    pipeline = det.train_dataloader.dataset.pipeline
    assert [t.type for t in pipeline] == ['LoadImageFromFile', 'LoadAnnotations', 'RandomFlip', 'RandomChoice',
                                          'RandomCrop', 'PackDetInputs']
    swin = Config.fromfile(str(REPO / 'configs' / 'swin_t_mask_rcnn_3x.py')).train_dataloader.dataset.pipeline
    assert pipeline[:4] == swin[:4]
    assert (pipeline[4].crop_type, pipeline[4].crop_size) == ('absolute_range', (1024, 1024))
    # single process: BN instead of the official SyncBN (the config tests build every recipe so)
    det.model.backbone.norm_cfg.type = 'BN'
    init_default_scope('mmdet')
    det.model.backbone.arch = TINY_DET_ARCHS['ViTAdapter']
    vit = DET_MODELS.build(det.model.backbone)
    assert type(vit.norm1) is torch.nn.BatchNorm2d and vit.out_strides == (4, 8, 16, 32)


def test_vit_adapter_detection_no_decay_keys() -> None:
    """The official keys: ``level_embed``, ``pos_embed`` and ``norm`` name backbone parameters only; ``bias``
    reaches every bias of the model (heads included), as the official recipe does."""
    cfg = Config.fromfile(str(REPO / 'configs' / 'vit_adapter_s_mask_rcnn_3x.py'))
    names = [n for n, _ in _build_tiny_detector(cfg).named_parameters()]
    for key in ('level_embed', 'pos_embed', 'norm'):
        matched = [n for n in names if key in n]
        assert matched and all(n.startswith('backbone.') for n in matched), (key, matched)
    assert {n.split('.')[0] for n in names if 'bias' in n} == {'backbone', 'neck', 'rpn_head', 'roi_head'}
