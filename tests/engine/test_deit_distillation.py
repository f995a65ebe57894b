"""DeiT distillation (``vit_backbones.DistillationImageClassifier`` + ``DeiTDistillationHead``), for real: a tiny
distilled ViT student and a tiny mmpretrain RegNet teacher, one training step with Mixup soft targets; the loss
equals DeiT's formula computed by hand from the two student heads' logits and the teacher's; gradients reach the
student and never the teacher; the teacher stays in eval mode, stays out of checkpoints and loads from its file."""
import math

import pytest
import torch
import torch.nn.functional as F

mmpretrain = pytest.importorskip('mmpretrain')

NUM_CLASSES = 5
TINY_REGNET = dict(w0=8, wa=8.0, wm=1.5, group_w=8, depth=5, bot_mul=1.0)  # 4 stages, 8-40 wide


def tiny_teacher_cfg() -> dict:
    """An mmpretrain ImageClassifier over a two-block RegNet (the recipe's teacher is RegNetY-16GF)."""
    from mmpretrain.registry import MODELS
    channels = MODELS.build(dict(type='RegNet', arch=TINY_REGNET)).feat_dim
    return dict(type='ImageClassifier', backbone=dict(type='RegNet', arch=TINY_REGNET),
                neck=dict(type='GlobalAveragePooling'),
                head=dict(type='LinearClsHead', num_classes=NUM_CLASSES, in_channels=channels))


def build_model(distillation_type: str = 'hard', alpha: float = 0.5, tau: float = 1.0,
                teacher_checkpoint=None, augments=None):
    from mmpretrain.registry import MODELS
    train_cfg = dict(augments=augments) if augments else None
    return MODELS.build(dict(
        type='vit_backbones.DistillationImageClassifier',
        backbone=dict(type='vit_backbones.VisionTransformer', arch=dict(embed_dim=32, depth=2, num_heads=2),
                      patch_size=8, pretrain_img_size=32, distilled=True, out_indices=-1, cls_output='cls_token'),
        head=dict(type='vit_backbones.DeiTDistillationHead', num_classes=NUM_CLASSES, in_channels=32,
                  distillation_type=distillation_type, alpha=alpha, tau=tau,
                  loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original')),
        teacher=tiny_teacher_cfg(), teacher_checkpoint=teacher_checkpoint,
        data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=NUM_CLASSES, mean=[127.5] * 3,
                               std=[127.5] * 3),
        train_cfg=train_cfg))


def batch(n: int = 4) -> dict:
    from mmpretrain.structures import DataSample
    torch.manual_seed(1)
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8)
    return dict(inputs=images, data_samples=[DataSample().set_gt_label(i % NUM_CLASSES) for i in range(n)])


def hand_loss(logits_cls, logits_dist, logits_teacher, target, distillation_type, alpha, tau):
    """DeiT's ``DistillationLoss`` written out: label-smoothed soft CE on the cls head ("original" smoothing:
    target * (1 - eps) + eps / K, on the mixed target) plus the distillation term, weighted 1 - alpha / alpha."""
    smoothed = target * (1 - 0.1) + 0.1 / NUM_CLASSES
    base = -(smoothed * logits_cls.log_softmax(1)).sum(1).mean()
    if distillation_type == 'hard':
        dist = -logits_dist.log_softmax(1).gather(1, logits_teacher.argmax(1, keepdim=True)).mean()
    else:
        p_t = (logits_teacher / tau).softmax(1)
        kl = (p_t * (p_t.log() - (logits_dist / tau).log_softmax(1))).sum()
        dist = kl * tau * tau / logits_dist.numel()
    return (1 - alpha) * base + alpha * dist


@pytest.mark.parametrize('distillation_type,alpha,tau', [('hard', 0.5, 1.0), ('soft', 0.3, 3.0)])
def test_loss_is_deit_formula_and_gradients_reach_student_only(distillation_type, alpha, tau, mmpretrain_scope):
    torch.manual_seed(0)
    model = build_model(distillation_type, alpha, tau,
                        augments=[dict(type='Mixup', alpha=0.8), dict(type='CutMix', alpha=1.0)])
    model.init_weights()
    with torch.no_grad():  # a random, non-degenerate teacher head (mmpretrain's Linear init is tiny)
        for p in model.teacher.head.parameters():
            p.normal_(std=1.0)
    model.train()
    assert model.training and model.backbone.training and not model.teacher.training
    assert all(not m.training for m in model.teacher.modules())
    assert not any(p.requires_grad for p in model.teacher.parameters())

    torch.manual_seed(2)
    data = model.data_preprocessor(batch(), True)  # Mixup / CutMix: soft targets in gt_score
    inputs, samples = data['inputs'], data['data_samples']
    target = torch.stack([s.gt_score for s in samples])
    assert not torch.all((target == 0) | (target == 1))  # mixed targets, not one-hot
    losses = model(inputs, samples, mode='loss')
    assert set(losses) == {'loss', 'loss_distill'}
    total, _ = model.parse_losses(losses)

    with torch.no_grad():  # the same logits by independent calls: student heads and teacher
        cls_token, dist_token = model.backbone(inputs)[-1]
        z_cls, z_dist = model.head.layers.head(cls_token), model.head.layers.head_dist(dist_token)
        z_t = model.teacher(inputs, mode='tensor')
    expected = hand_loss(z_cls, z_dist, z_t, target, distillation_type, alpha, tau)
    torch.testing.assert_close(total.detach(), expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(losses['loss_distill'].detach(),
                               expected - (1 - alpha) * hand_loss(z_cls, z_dist, z_t, target, 'hard', 0.0, tau),
                               rtol=1e-5, atol=1e-6)

    total.backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    for name in ('backbone.cls_token', 'backbone.dist_token', 'backbone.pos_embed', 'head.layers.head.weight',
                 'head.layers.head_dist.weight', 'backbone.blocks.0.attn.qkv.weight'):
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_one_training_step_updates_student_not_teacher(mmpretrain_scope):
    from mmengine.optim import build_optim_wrapper
    torch.manual_seed(0)
    model = build_model(augments=[dict(type='Mixup', alpha=0.8)])
    model.init_weights()
    optim = build_optim_wrapper(model, dict(optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05)))
    teacher_before = {k: v.clone() for k, v in model.teacher.state_dict().items()}
    student_before = {k: p.detach().clone() for k, p in model.named_parameters() if p.requires_grad}
    model.train()
    log_vars = model.train_step(batch(), optim)
    assert math.isfinite(float(log_vars['loss'].detach())) and 'loss_distill' in log_vars
    for k, v in model.teacher.state_dict().items():  # weights and BatchNorm statistics (eval mode) unchanged
        assert torch.equal(v, teacher_before[k]), k
    params = dict(model.named_parameters())
    moved = [k for k, v in student_before.items() if not torch.equal(v, params[k])]
    assert len(moved) == len(student_before), set(student_before) - set(moved)


def test_inference_averages_heads_and_checkpoint_holds_student_only(tmp_path, mmpretrain_scope):
    torch.manual_seed(0)
    model = build_model()
    model.init_weights()
    model.eval()
    images = model.data_preprocessor(batch(2), False)['inputs']
    with torch.no_grad():
        cls_token, dist_token = model.backbone(images)[-1]
        expected = (model.head.layers.head(cls_token) + model.head.layers.head_dist(dist_token)) / 2
        torch.testing.assert_close(model(images, mode='tensor'), expected)
        preds = model(images, mode='predict')
    torch.testing.assert_close(torch.stack([p.pred_score for p in preds]), F.softmax(expected, dim=1))

    state = model.state_dict()
    assert state and not any(k.startswith('teacher.') for k in state)
    other = build_model()
    other.load_state_dict(state, strict=True)  # a student checkpoint loads strictly
    for k, v in state.items():
        torch.testing.assert_close(other.state_dict()[k], v)


@pytest.mark.parametrize('layout', ['mmengine', 'deit'])
def test_teacher_loads_from_checkpoint_in_init_weights(tmp_path, layout, mmpretrain_scope):
    from mmpretrain.registry import MODELS
    torch.manual_seed(3)
    source = MODELS.build(tiny_teacher_cfg())
    weights = {k: v + 0.5 if v.is_floating_point() else v for k, v in source.state_dict().items()}
    path = tmp_path / 'teacher.pth'
    if layout == 'mmengine':
        torch.save({'state_dict': weights, 'meta': {}}, path)
    else:  # DeiT's files: {'model': ...}, here with a DistributedDataParallel prefix
        torch.save({'model': {f'module.{k}': v for k, v in weights.items()}}, path)
    model = build_model(teacher_checkpoint=str(path))
    model.init_weights()  # after the student's init, so no init_cfg reaches the loaded teacher
    for k, v in model.teacher.state_dict().items():
        assert torch.equal(v, weights[k]), k
    assert not model.teacher.training and not any(p.requires_grad for p in model.teacher.parameters())


def test_bad_arguments(mmpretrain_scope):
    from mmpretrain.registry import MODELS
    with pytest.raises(ValueError, match='distillation_type'):
        MODELS.build(dict(type='vit_backbones.DeiTDistillationHead', num_classes=3, in_channels=8,
                          distillation_type='none'))
    with pytest.raises(ValueError, match='alpha'):
        MODELS.build(dict(type='vit_backbones.DeiTDistillationHead', num_classes=3, in_channels=8, alpha=1.5))
    head = MODELS.build(dict(type='vit_backbones.DeiTDistillationHead', num_classes=3, in_channels=8))
    with pytest.raises(ValueError, match='teacher_logits'):
        head.loss(((torch.zeros(1, 8), torch.zeros(1, 8)),), [])
