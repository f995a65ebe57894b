"""ImageNet classification recipes (configs/classification, mmpretrain bases): every config loads, states its
source, builds with a tiny arch of its backbone type (the distillation teacher: a tiny RegNet) and runs one real
training step with its own optimizer wrapper and augmentations; and each states the published recipe (optimizer,
lr, betas, weight decay and what is exempt from it, warm-up, schedule, clipping, drop path, EMA, head init, size).
"""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from mmengine import Config

from tests.configs.test_configs import TINY_DET_ARCHS

mmpretrain = pytest.importorskip('mmpretrain')

REPO = Path(__file__).resolve().parents[2]
CLS_DIR = REPO / 'configs' / 'classification'
CONFIGS = sorted(p for p in CLS_DIR.rglob('*.py') if '_base_' not in p.parts)
TINY_REGNET = dict(w0=8, wa=8.0, wm=1.5, group_w=8, depth=5, bot_mul=1.0)  # 4 stages, 8-40 wide
DEIT_TEACHER = 'https://dl.fbaipublicfiles.com/deit/regnety_160-a5fe301d.pth'

# config -> backbone type, arch, drop path, cls_output, head in_channels, lr, weight decay, warm-up epochs, clip norm
DEIT_FAMILY = {
    'swin/swin-t_8xb128_in1k.py': ('SwinTransformer', 'tiny', 0.2, 'avg_featmap', 768, 1e-3, 0.05, 20, 5.0),
    'swin/swin-s_8xb128_in1k.py': ('SwinTransformer', 'small', 0.3, 'avg_featmap', 768, 1e-3, 0.05, 20, 5.0),
    'swin/swin-b_8xb128_in1k.py': ('SwinTransformer', 'base', 0.5, 'avg_featmap', 1024, 1e-3, 0.05, 20, 5.0),
    'shuffle/shuffle-t_8xb128_in1k.py': ('ShuffleTransformer', 'tiny', 0.1, 'avg_featmap', 768, 1e-3, 0.05, 20, 5.0),
    'pvt/pvtv2-b0_8xb128_in1k.py': ('PyramidVisionTransformerV2', 'b0', 0.1, 'avg_featmap', 256, 1e-3, 0.05, 5, None),
    'pvt/pvtv2-b1_8xb128_in1k.py': ('PyramidVisionTransformerV2', 'b1', 0.1, 'avg_featmap', 512, 1e-3, 0.05, 5, None),
    'pvt/pvtv2-b2_8xb128_in1k.py': ('PyramidVisionTransformerV2', 'b2', 0.1, 'avg_featmap', 512, 1e-3, 0.05, 5, None),
    'pvt/pvtv2-b3_8xb128_in1k.py': ('PyramidVisionTransformerV2', 'b3', 0.3, 'avg_featmap', 512, 1e-3, 0.05, 5, 1.0),
    'pvt/pvtv2-b4_8xb128_in1k.py': ('PyramidVisionTransformerV2', 'b4', 0.3, 'avg_featmap', 512, 1e-3, 0.05, 5, 1.0),
    'pvt/pvtv2-b5_8xb128_in1k.py': ('PyramidVisionTransformerV2', 'b5', 0.3, 'avg_featmap', 512, 1e-3, 0.05, 5, 1.0),
    'cvt/cvt-13_8xb256_in1k.py': ('CvT', 'cvt-13', 0.1, 'cls_token', 384, 2e-3, 0.05, 5, None),
    'deit/deit-s_8xb128_in1k.py': ('VisionTransformer', 'small', 0.1, 'cls_token', 384, 1e-3, 0.05, 5, None),
    'deit/deit-b_8xb128_in1k.py': ('VisionTransformer', 'base', 0.1, 'cls_token', 768, 1e-3, 0.05, 5, None),
    'deit/deit-s-distilled_8xb128_in1k.py': ('VisionTransformer', 'small', 0.1, 'cls_token', 384, 1e-3, 0.05, 5,
                                             None),
    'deit/deit-b-distilled_8xb128_in1k.py': ('VisionTransformer', 'base', 0.1, 'cls_token', 768, 1e-3, 0.05, 5,
                                             None),
    'vit/vit-b16_8xb128_in1k.py': ('VisionTransformer', 'base', 0.1, 'cls_token', 768, 1e-3, 0.05, 5, None),
}
VIT_PRETRAIN = 'vit/vit-b16_64xb64_in1k-pretrain.py'
VIT_FINETUNE = 'vit/vit-b16_8xb64_in1k-384px-finetune.py'
# total batch each recipe's lr is given for (auto_scale_lr.base_batch_size == GPUs x images in the name)
BASE_BATCH = {**{k: 1024 for k in DEIT_FAMILY}, 'cvt/cvt-13_8xb256_in1k.py': 2048, VIT_PRETRAIN: 4096,
              VIT_FINETUNE: 512}


def rel(path: Path) -> str:
    return path.relative_to(CLS_DIR).as_posix()


def test_every_config_has_a_recipe() -> None:
    assert {rel(p) for p in CONFIGS} == set(DEIT_FAMILY) | {VIT_PRETRAIN, VIT_FINETUNE}


def build_tiny(cfg: Config) -> torch.nn.Module:
    """``cfg.model`` with a tiny arch of its backbone type, no pretrained weights, a tiny RegNet teacher, and the
    top-level data preprocessor merged in as mmengine's Runner does."""
    from mmpretrain.registry import MODELS
    model_cfg = cfg.model
    model_cfg.backbone.arch = TINY_DET_ARCHS[model_cfg.backbone.type.split('.')[-1]]
    model_cfg.backbone.init_cfg = None
    if 'teacher' in model_cfg:
        feat_dim = MODELS.build(dict(type='RegNet', arch=TINY_REGNET)).feat_dim
        model_cfg.teacher = dict(type='ImageClassifier', backbone=dict(type='RegNet', arch=TINY_REGNET),
                                 neck=dict(type='GlobalAveragePooling'),
                                 head=dict(type='LinearClsHead', num_classes=model_cfg.head.num_classes,
                                           in_channels=feat_dim))
        model_cfg.teacher_checkpoint = None
    model_cfg.head.in_channels = MODELS.build(model_cfg.backbone.copy()).out_channels[-1]
    if model_cfg.head.get('hidden_dim'):
        model_cfg.head.hidden_dim = 16
    model_cfg.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
    return MODELS.build(model_cfg)


@pytest.mark.parametrize('path', CONFIGS, ids=rel)
def test_config_builds_and_trains_one_step(path: Path, mmpretrain_scope) -> None:
    from mmengine.optim import build_optim_wrapper
    from mmpretrain.structures import DataSample

    from vit_backbones.layers import DropPath
    cfg = Config.fromfile(str(path))
    text = path.read_text()
    assert text.startswith('"""') and 'arXiv:' in text  # a docstring naming the recipe's source
    assert cfg.custom_imports.imports[0] == 'vit_backbones' and cfg.custom_imports.allow_failed_imports is False
    assert cfg.default_scope == 'mmpretrain' and cfg.model.neck is None
    assert cfg.model.backbone.type.startswith('vit_backbones.')
    torch.manual_seed(0)
    model = build_tiny(cfg)
    model.init_weights()
    assert type(model.backbone).__module__.startswith('vit_backbones')
    for module in model.modules():  # deterministic: a block dropped for the whole batch gets no gradient
        if isinstance(module, DropPath):
            module.drop_prob = 0.0
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    assert type(optim.optimizer).__name__ == cfg.optim_wrapper.optimizer.type
    clip = cfg.optim_wrapper.get('clip_grad')
    assert (optim.clip_grad_kwargs or {}) == (dict(clip) if clip else {})

    names = {id(p): n for n, p in model.named_parameters()}
    decay = {names[id(p)]: g['weight_decay'] for g in optim.optimizer.param_groups for p in g['params']}
    wd = cfg.optim_wrapper.optimizer.weight_decay
    no_decay_keys = ('.cls_token', '.dist_token', '.pos_embed', 'relative_position_bias_table', 'absolute_pos_embed')
    for name, value in decay.items():
        if any(k in name for k in no_decay_keys):
            assert value == 0.0, name
        elif name.endswith('.weight') and dict(model.named_parameters())[name].ndim > 1:
            assert value == wd, name  # matrices and kernels decay
        elif rel(path) in DEIT_FAMILY:  # norms, biases, other 1-D parameters: no decay in the DeiT family
            assert value == 0.0, name

    samples = [DataSample().set_gt_label(label) for label in (1, 3)]
    data = dict(inputs=torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8), data_samples=samples)
    student = {n: p.detach().clone() for n, p in model.named_parameters()
               if p.requires_grad and not n.startswith('teacher.')}
    teacher = {n: p.detach().clone() for n, p in model.named_parameters() if n.startswith('teacher.')}
    model.train()
    log_vars = model.train_step(data, optim)  # preprocess (+ Mixup / CutMix), loss, backward, clip, update
    assert math.isfinite(float(log_vars['loss'].detach()))
    params = dict(model.named_parameters())
    assert all(torch.equal(v, params[n]) for n, v in teacher.items())
    assert all(not p.requires_grad for n, p in params.items() if n.startswith('teacher.'))
    moved = {n for n, v in student.items() if not torch.equal(v, params[n])}
    # CvT's output is the last stage's cls token: the last block's patch-token queries (conv_proj_q) feed nothing
    last = len(model.backbone.stages) - 1 if backbone_type(cfg) == 'CvT' else None
    unused = {n for n in student if last is not None and n.startswith(
        f'backbone.stages.{last}.blocks.{len(model.backbone.stages[last].blocks) - 1}.attn.conv_proj_q.')}
    head = cfg.model.head
    if head.get('init_cfg') == dict(type='Constant', layer='Linear', val=0):
        # the ViT paper's zero-initialised head: logits 0, loss ln(K), and the first step's gradient stops at the
        # head (the backbone's matrices move by weight decay only); with a non-zero head the gradient flows on
        assert float(log_vars['loss'].detach()) == pytest.approx(math.log(head.num_classes), rel=1e-5)
        assert not {n for n in moved if n.startswith('backbone.') and decay[n] == 0.0}  # no gradient: no update
        assert {'head.layers.head.weight', 'head.layers.head.bias'} <= moved
        with torch.no_grad():
            model.head.layers.head.weight.normal_(std=0.02)
        batch = model.data_preprocessor(data, True)
        loss, _ = model.parse_losses(model(**batch, mode='loss'))
        loss.backward()
        dead = {n for n in student if n.startswith('backbone.') and not params[n].grad.any()}
        assert dead == unused, dead
    else:
        assert set(student) - unused <= moved, set(student) - unused - moved  # every student parameter moved


def backbone_type(cfg: Config) -> str:
    return cfg.model.backbone.type.split('.')[-1]


@pytest.mark.parametrize('name', sorted(DEIT_FAMILY))
def test_deit_family_recipe(name: str) -> None:
    backbone, arch, drop_path, cls_output, channels, lr, wd, warmup, clip = DEIT_FAMILY[name]
    cfg = Config.fromfile(str(CLS_DIR / name))
    bcfg = cfg.model.backbone
    assert bcfg.type == f'vit_backbones.{backbone}' and bcfg.arch == arch and bcfg.drop_path_rate == drop_path
    assert bcfg.cls_output == cls_output and bcfg.get('init_cfg') is None  # from scratch
    built = mmpretrain.registry.MODELS.build(bcfg)
    assert built.out_channels[-1] == channels == cfg.model.head.in_channels  # the real preset's width
    assert cfg.model.head.num_classes == 1000
    loss = cfg.model.head.loss
    assert (loss.type, loss.label_smooth_val) == ('LabelSmoothLoss', 0.1)
    assert [dict(a) for a in cfg.model.train_cfg.augments] == [dict(type='Mixup', alpha=0.8),
                                                               dict(type='CutMix', alpha=1.0)]
    steps = {t.type: t for t in cfg.train_pipeline}
    assert steps['RandomResizedCrop'].scale == 224 and steps['RandomResizedCrop'].interpolation == 'bicubic'
    ra = steps['RandAugment']  # rand-m9-mstd0.5-inc1, 2 ops
    assert (ra.policies, ra.num_policies, ra.magnitude_level, ra.magnitude_std) == ('timm_increasing', 2, 9, 0.5)
    assert steps['RandomErasing'].erase_prob == 0.25

    opt = cfg.optim_wrapper.optimizer
    assert (opt.type, opt.betas, opt.weight_decay) == ('AdamW', (0.9, 0.999), wd)
    assert opt.lr == pytest.approx(lr)
    total_batch = int(name.split('_')[1].split('xb')[0]) * int(name.split('xb')[1].split('_')[0])
    assert cfg.train_dataloader.batch_size * 8 == total_batch == cfg.auto_scale_lr.base_batch_size == BASE_BATCH[name]
    assert opt.lr == pytest.approx((2.5e-4 / 256 if backbone == 'CvT' else 5e-4 / 512) * total_batch)
    pw = cfg.optim_wrapper.paramwise_cfg
    assert pw.norm_decay_mult == pw.bias_decay_mult == pw.flat_decay_mult == 0.0
    assert (cfg.optim_wrapper.get('clip_grad') or {}).get('max_norm') == clip
    linear, cosine = cfg.param_scheduler
    assert (linear.type, linear.start_factor, linear.by_epoch, linear.end) == ('LinearLR', 1e-3, True, warmup)
    assert linear.convert_to_iter_based
    assert (cosine.type, cosine.eta_min, cosine.begin) == ('CosineAnnealingLR', 1e-5, warmup)
    assert cfg.train_cfg.max_epochs == 300 and not cfg.get('custom_hooks')  # no EMA
    if backbone == 'VisionTransformer':  # DeiT: patch 16, repeated augmentation
        assert bcfg.patch_size == 16 and cfg.train_dataloader.sampler.type == 'RepeatAugSampler'
    if 'distilled' in name:
        assert cfg.model.type == 'vit_backbones.DistillationImageClassifier' and bcfg.distilled
        head = cfg.model.head
        assert (head.type, head.distillation_type, head.alpha) == ('vit_backbones.DeiTDistillationHead', 'hard', 0.5)
        assert cfg.model.teacher.model_name == 'regnety_160' and cfg.model.teacher_checkpoint == DEIT_TEACHER
        assert '.dist_token' in pw.custom_keys


def test_vit_paper_pretrain_recipe() -> None:
    cfg = Config.fromfile(str(CLS_DIR / VIT_PRETRAIN))
    bcfg = cfg.model.backbone
    assert (bcfg.arch, bcfg.patch_size, bcfg.pretrain_img_size, bcfg.drop_rate) == ('base', 16, 224, 0.1)
    assert cfg.model.head.hidden_dim == 768 and cfg.model.head.act_cfg.type == 'Tanh'  # MLP pre-training head
    opt = cfg.optim_wrapper.optimizer
    assert (opt.type, opt.lr, opt.betas, opt.weight_decay) == ('AdamW', 3e-3, (0.9, 0.999), 0.3)
    assert cfg.optim_wrapper.clip_grad == dict(max_norm=1.0)
    assert cfg.train_dataloader.batch_size * 64 == 4096 == cfg.auto_scale_lr.base_batch_size
    linear, cosine = cfg.param_scheduler
    assert (linear.type, linear.by_epoch, linear.begin, linear.end) == ('LinearLR', False, 0, 10000)
    assert (cosine.type, cosine.by_epoch, cosine.begin, cosine.eta_min) == ('CosineAnnealingLR', False, 10000, 0.0)
    assert cosine.end == 300 * math.ceil(1281167 / 4096) and cfg.train_cfg.max_epochs == 300
    assert cfg.data_preprocessor.mean == cfg.data_preprocessor.std == [127.5] * 3  # inputs in [-1, 1]
    assert {t.type for t in cfg.train_pipeline} == {'LoadImageFromFile', 'RandomResizedCrop', 'RandomFlip',
                                                   'PackInputs'}


def test_vit_paper_finetune_recipe() -> None:
    cfg = Config.fromfile(str(CLS_DIR / VIT_FINETUNE))
    bcfg = cfg.model.backbone
    assert (bcfg.arch, bcfg.patch_size, bcfg.pretrain_img_size) == ('base', 16, 384)
    assert bcfg.init_cfg.type == 'Pretrained' and bcfg.init_cfg.prefix == 'backbone.'
    head = cfg.model.head
    assert head.get('hidden_dim') is None and head.init_cfg == dict(type='Constant', layer='Linear', val=0)
    opt = cfg.optim_wrapper.optimizer
    assert (opt.type, opt.momentum, opt.weight_decay) == ('SGD', 0.9, 0.0) and opt.lr in (0.003, 0.01, 0.03, 0.06)
    assert cfg.optim_wrapper.clip_grad == dict(max_norm=1.0)
    assert cfg.train_dataloader.batch_size * 8 == 512 == cfg.auto_scale_lr.base_batch_size
    linear, cosine = cfg.param_scheduler
    assert (linear.type, linear.by_epoch, linear.end) == ('LinearLR', False, 500)
    assert (cosine.type, cosine.by_epoch, cosine.begin, cosine.end) == ('CosineAnnealingLR', False, 500, 20000)
    assert cfg.train_cfg.type == 'IterBasedTrainLoop' and cfg.train_cfg.max_iters == 20000
    assert cfg.train_dataloader.sampler.type == 'InfiniteSampler'
    (ema,) = cfg.custom_hooks
    assert ema.type == 'EMAHook' and ema.momentum == 1e-4  # Polyak averaging, factor 1 - 1e-4 = 0.9999
    train = {t.type: t for t in cfg.train_dataloader.dataset.pipeline}
    test = {t.type: t for t in cfg.val_dataloader.dataset.pipeline}
    assert train['RandomResizedCrop'].scale == 384 and test['CenterCrop'].crop_size == 384
    assert {t.type: t for t in cfg.test_dataloader.dataset.pipeline}['CenterCrop'].crop_size == 384


def test_ema_hook_momentum_is_polyak_factor() -> None:
    """mmengine's ExponentialMovingAverage (what EMAHook averages with) computes
    averaged = (1 - momentum) * averaged + momentum * new, so momentum 1e-4 is the paper's factor 0.9999."""
    from mmengine.model import ExponentialMovingAverage
    model = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.constant_(model.weight, 1.0)
    ema = ExponentialMovingAverage(model, momentum=1e-4)
    with torch.no_grad():
        model.weight.fill_(3.0)
    ema.update_parameters(model)  # the first call only copies
    ema.update_parameters(model)
    assert ema.module.weight.item() == pytest.approx(3.0)
    with torch.no_grad():
        model.weight.fill_(5.0)
    ema.update_parameters(model)
    assert ema.module.weight.item() == pytest.approx(0.9999 * 3.0 + 1e-4 * 5.0)
