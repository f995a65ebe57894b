"""Every registered backbone is usable from an mmpretrain classification config: ``ImageClassifier`` with our
backbone (scoped type), mmpretrain's ``GlobalAveragePooling`` neck over the last map and its ``LinearClsHead``,
a training step and a prediction (the start of the classification configs of issue 11)."""
import pytest
import torch

from tests.backbones.tiny_archs import TINY, backbone_type

mmpretrain = pytest.importorskip('mmpretrain')


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


def _train_and_predict(model, num_classes: int, train: bool = True) -> None:
    """One training step (the loss reaches the backbone) and a prediction, on two 64x64 images."""
    from mmpretrain.structures import DataSample

    images = torch.randn(2, 3, 64, 64)
    if train:
        samples = [DataSample().set_gt_label(label) for label in (1, 3)]
        model.train()
        losses = model.loss(images, samples)
        loss = sum(v for k, v in losses.items() if 'loss' in k)
        assert torch.isfinite(loss)
        loss.backward()
        grads = [p.grad for p in model.backbone.parameters() if p.requires_grad]
        assert any(g is not None and g.abs().sum() > 0 for g in grads)
    model.eval()
    with torch.no_grad():
        preds = model.predict(images)
    assert len(preds) == 2 and all(p.pred_score.shape == (num_classes,) for p in preds)


@pytest.mark.parametrize('name', sorted(TINY))
def test_cls_output_avg_featmap_feeds_a_linear_head_without_neck(name, mmpretrain_scope):
    """``cls_output='avg_featmap'``: the pooled feature is the backbone's last output, read by the head as
    ``feats[-1]``; no pooling neck."""
    from mmpretrain.registry import MODELS

    torch.manual_seed(0)
    backbone = dict(type=f'vit_backbones.{backbone_type(name)}', **TINY[name][0])
    backbone.update(out_indices=-1, cls_output='avg_featmap')
    channels = MODELS.build(backbone).out_channels[-1]
    model = MODELS.build(dict(type='ImageClassifier', backbone=backbone, neck=None,
                              head=dict(type='LinearClsHead', num_classes=5, in_channels=channels)))
    _train_and_predict(model, 5)


CLS_TOKEN_NAMES = ['CaiT', 'CeiT', 'CPVT', 'CvT', 'DeepViT', 'HybridVisionTransformer', 'PyramidVisionTransformer']


@pytest.mark.parametrize('name', CLS_TOKEN_NAMES)
def test_cls_output_cls_token_feeds_the_vit_head(name, mmpretrain_scope):
    """``cls_output='cls_token'``: mmpretrain's ``VisionTransformerClsHead`` reads the (B, C) token."""
    from mmpretrain.registry import MODELS

    torch.manual_seed(0)
    backbone = dict(type=f'vit_backbones.{backbone_type(name)}', **TINY[name][0])
    backbone.update(out_indices=-1, cls_output='cls_token')
    channels = MODELS.build(backbone).out_channels[-1]
    model = MODELS.build(dict(type='ImageClassifier', backbone=backbone, neck=None,
                              head=dict(type='VisionTransformerClsHead', num_classes=4, in_channels=channels)))
    _train_and_predict(model, 4)


def test_distilled_vit_feeds_the_deit_head(mmpretrain_scope):
    """A DeiT (``distilled=True``) with ``cls_output='cls_token'`` gives the (cls, distillation) pair that
    mmpretrain's ``DeiTClsHead`` averages the two classifiers over (it predicts; mmpretrain does not train it)."""
    from mmpretrain.registry import MODELS

    torch.manual_seed(0)
    backbone = dict(type='vit_backbones.VisionTransformer', **TINY['VisionTransformer'][0])
    backbone.update(out_indices=-1, cls_output='cls_token')
    assert backbone['distilled']
    channels = MODELS.build(backbone).out_channels[-1]
    model = MODELS.build(dict(type='ImageClassifier', backbone=backbone, neck=None,
                              head=dict(type='DeiTClsHead', num_classes=3, in_channels=channels))).eval()
    _train_and_predict(model, 3, train=False)
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        cls_token, dist_token = model.backbone(images)[-1]
        expected = (model.head.layers.head(cls_token) + model.head.layers.head_dist(dist_token)) / 2
        torch.testing.assert_close(model(images, mode='tensor'), expected)
