"""Layer-wise learning-rate decay: BEiT's depth convention over our backbones, and the optimizer groups it builds."""
import pytest
from mmengine.optim import build_optim_wrapper
from torch import nn

from tests.backbones.tiny_archs import TINY, backbone_type
from vit_backbones.backbones import CvT, SwinTransformer
from vit_backbones.engine.layer_decay import LayerDecayOptimWrapperConstructor
from vit_backbones.registry import MODELS

SWIN_TINY = TINY['SwinTransformer'][0]


def test_swin_depths_follow_the_beit_convention():
    model = SwinTransformer(**SWIN_TINY)  # depths (2, 2, 2, 2): 8 blocks
    assert model.num_layers() == 8
    depth = {name: model.get_layer_depth(name) for name, _ in model.named_parameters()}
    assert depth['patch_embed.proj.weight'] == (0, 9)
    assert depth['absolute_pos_embed'] == (0, 9)
    assert depth['layers.0.blocks.0.attn.qkv.weight'] == (1, 9)
    assert depth['layers.0.blocks.1.mlp.fc2.bias'] == (2, 9)
    assert depth['layers.1.downsample.reduction.weight'] == (3, 9)  # with the stage's first block
    assert depth['layers.3.blocks.1.norm2.weight'] == (8, 9)
    assert depth['norms.3.weight'] == (9, 9)
    with pytest.raises(ValueError, match='no parameter'):
        model.get_layer_depth('layers.9.blocks.0.attn.qkv.weight')


def test_cvt_stem_is_the_first_token_embedding_and_the_cls_token_joins_its_stage():
    model = CvT(**TINY['CvT'][0])  # depths (1, 1, 2)
    assert model.get_layer_depth('stages.0.patch_embed.proj.weight') == (0, 5)
    assert model.get_layer_depth('stages.1.patch_embed.proj.weight') == (2, 5)
    assert model.get_layer_depth('stages.2.cls_token') == (3, 5)
    assert model.get_layer_depth('stages.2.blocks.1.attn.q.weight') == (4, 5)


@pytest.mark.parametrize('name', sorted(TINY))
def test_every_backbone_gives_every_parameter_a_depth(name):
    model = MODELS.build(dict(type=f'vit_backbones.{backbone_type(name)}', **TINY[name][0]))
    top = model.num_layers() + 1
    depths = [model.get_layer_depth(n)[0] for n, _ in model.named_parameters()]
    assert min(depths) == 0 and set(range(1, top)) <= set(depths) and max(depths) <= top


class Segmentor(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = SwinTransformer(**SWIN_TINY)
        self.head = nn.Linear(64, 3)


def test_groups_scale_the_learning_rate_by_depth_and_spare_norms_biases_and_tables():
    model = Segmentor()
    optim = build_optim_wrapper(model, dict(
        type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
        constructor='vit_backbones.LayerDecayOptimWrapperConstructor', paramwise_cfg=dict(layer_decay_rate=0.5)))
    seen = {}
    for group in optim.optimizer.param_groups:
        for name, param in zip(group['param_names'], group['params']):
            seen[name] = (group['lr'], group['weight_decay'])
    assert set(seen) == {n for n, _ in model.named_parameters()}
    top = model.backbone.num_layers() + 1
    for name, param in model.named_parameters():
        depth = model.backbone.get_layer_depth(name[len('backbone.'):])[0] if name.startswith('backbone.') else top
        no_decay = param.ndim == 1 or name.endswith(('relative_position_bias_table', 'absolute_pos_embed'))
        assert seen[name] == (pytest.approx(1e-3 * 0.5 ** (top - depth)), 0.0 if no_decay else 0.05), name
    assert seen['head.weight'] == (1e-3, 0.05) and seen['backbone.patch_embed.proj.weight'][0] == 1e-3 * 0.5 ** 9


def test_frozen_parameters_are_left_out_and_bad_settings_are_refused():
    model = SwinTransformer(**SWIN_TINY, frozen_stages=1)
    optim = build_optim_wrapper(model, dict(
        optimizer=dict(type='SGD', lr=0.1), constructor='vit_backbones.LayerDecayOptimWrapperConstructor',
        paramwise_cfg=dict(layer_decay_rate=0.9)))
    names = {n for g in optim.optimizer.param_groups for n in g['param_names']}
    assert names == {n for n, p in model.named_parameters() if p.requires_grad}
    assert 'patch_embed.proj.weight' not in names
    for bad in [dict(), dict(layer_decay_rate=0.0), dict(layer_decay_rate=1.5), dict(layer_decay_rate=0.7, x=1)]:
        with pytest.raises(ValueError, match='layer_decay_rate'):
            LayerDecayOptimWrapperConstructor(dict(optimizer=dict(type='SGD', lr=0.1)), bad)
    with pytest.raises(TypeError, match='our backbones'):
        LayerDecayOptimWrapperConstructor(dict(optimizer=dict(type='SGD', lr=0.1)),
                                          dict(layer_decay_rate=0.9))(nn.Linear(2, 2))
