"""Every registered backbone is usable from an mmpretrain classification config: ``ImageClassifier`` with our
backbone (scoped type), mmpretrain's ``GlobalAveragePooling`` neck over the last map and its ``LinearClsHead``,
a training step and a prediction (the start of the classification configs of issue 11)."""
import pytest
import torch

from tests.backbones.tiny_archs import TINY, backbone_type

mmpretrain = pytest.importorskip('mmpretrain')


@pytest.fixture
def mmpretrain_scope():
    """mmpretrain as mmengine's default scope for one test, then the scopes exactly as before: a scope left behind
    would resolve later tests' types (e.g. ``LN2d``) in mmpretrain's registry instead of theirs."""
    from mmengine.registry import DefaultScope
    saved = DefaultScope._instance_dict.copy()
    DefaultScope.get_instance(f'mmpretrain-test-{len(saved)}', scope_name='mmpretrain')
    yield
    DefaultScope._instance_dict.clear()
    DefaultScope._instance_dict.update(saved)


@pytest.mark.parametrize('name', sorted(TINY))
def test_image_classifier_trains_and_predicts_with_our_backbone(name, mmpretrain_scope):
    from mmpretrain.registry import MODELS
    from mmpretrain.structures import DataSample

    torch.manual_seed(0)
    backbone = dict(type=f'vit_backbones.{backbone_type(name)}', **TINY[name][0])
    probe = MODELS.build(backbone)
    channels = probe.out_channels[-1]
    backbone['out_indices'] = (probe.out_indices[-1],)  # the last map only
    model = MODELS.build(dict(
        type='ImageClassifier', backbone=backbone, neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=5, in_channels=channels,
                  loss=dict(type='CrossEntropyLoss', loss_weight=1.0))))
    images = torch.randn(2, 3, 64, 64)
    samples = [DataSample().set_gt_label(label) for label in (1, 3)]
    model.train()
    losses = model.loss(images, samples)
    loss = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(loss)
    loss.backward()
    assert model.head.fc.weight.grad is not None and model.head.fc.weight.grad.abs().sum() > 0
    grads = [p.grad for p in model.backbone.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)  # the loss reaches the backbone
    model.eval()
    with torch.no_grad():
        preds = model.predict(images)
    assert len(preds) == 2 and all(p.pred_score.shape == (5,) for p in preds)
