"""mmpretrain classification checkpoints -> our dense backbones give the features of mmpretrain's own backbones.

Each reference is built from its mmpretrain class (no registry, so no default scope), every parameter is
randomised, and its state dict is saved as a whole ``ImageClassifier`` checkpoint (``backbone.*`` beside a
classification head). Ours reads it through ``init_cfg=dict(type='Pretrained', ..., prefix='backbone.')`` (mmengine
strips the prefix, our load pre-hook converts) or without a prefix (the hook finds ``backbone.*`` itself).

Known behavioural differences that the inputs are chosen around:
    * Swin: mmpretrain (``pad_small_map=False``, its default) shifts the windows of a stage on both axes unless the
      map's shorter side equals the window (7), and refuses maps smaller than the window; ours decides per axis
      (no shift along an axis that fits in one window). They agree when every stage map is larger than the window
      on both sides or exactly 7x7: 224x224 (last stage 7x7) and 288x256 (last stage 9x8). At 160x224 mmpretrain
      refuses the 5x7 last stage; at 224x256 (last stage 7x8) it shifts along neither axis, ours along the 8.
    * ViT: mmpretrain resizes the position embedding bicubically without antialiasing, so ours is built with
      ``interpolate_antialias=False`` for the smaller 160x192 input (timm, and our default, antialias).
    * LeViT: mmpretrain fixes its grids (square) at ``img_size`` and runs only at that size; each size is compared
      with mmpretrain built for it and ours with the same ``pretrain_img_size``.
    * Twins-PCPVT: mmpretrain builds its block norms with eps 1e-5, the official Twins (and ours) 1e-6; the
      reference's are set to 1e-6 (``official_eps``) so that the test checks the mapping. Its classification
      models' ``norm_after_stage3`` (timm's final norm) is left out by the converter; the dense maps have none.
    * mmpretrain 1.2 has no PVT backbone (PVT reads the mmdet, official and timm layouts).
"""
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from vit_backbones.backbones import CPVT, LeViT, SwinTransformer, VisionTransformer
from vit_backbones.converters import FAMILIES, CheckpointMismatchError, convert_to_ours, export_from_ours

from .reference_init import randomise

mmpretrain_backbones = pytest.importorskip('mmpretrain.models.backbones')

pytestmark = pytest.mark.parity

SIZES = {'swin': [(224, 224), (288, 256)], 'vit': [(224, 224), (160, 192)], 'levit': [224, 160],
         'pcpvt': [(224, 224), (160, 192)]}
TOL = dict(rtol=1e-4, atol=1e-5)


def reference(model: nn.Module, seed: int) -> nn.Module:
    """``model`` randomised, in eval mode (mmpretrain's Swin ``train()`` returns None, so not chained)."""
    randomise(model, seed)
    return model.eval() or model


def classifier_checkpoint(ref: nn.Module, path: Path, head: dict[str, Tensor]) -> Path:
    """Save ``ref`` as the backbone of an mmpretrain ImageClassifier checkpoint with the classifier ``head``."""
    state = {f'backbone.{k}': v for k, v in ref.state_dict().items()}
    state.update({f'head.{k}': v for k, v in head.items()})
    torch.save({'state_dict': state, 'meta': {'mmpretrain_version': '1.2.0', 'epoch': 1}}, path)
    return path


def linear_head(dim: int, names: tuple[str, ...] = ('fc',)) -> dict[str, Tensor]:
    return {f'{n}.{p}': torch.randn(5, dim) if p == 'weight' else torch.randn(5) for n in names
            for p in ('weight', 'bias')}


def pretrained(cls: type, path: Path, prefix: bool = True, **kwargs: Any) -> nn.Module:
    init_cfg = dict(type='Pretrained', checkpoint=str(path))
    if prefix:
        init_cfg['prefix'] = 'backbone.'
    model = cls(init_cfg=init_cfg, drop_path_rate=0.0, **kwargs)
    model.init_weights()
    return model.eval()


def run(model: nn.Module, size: tuple[int, int]) -> tuple[Any, ...]:
    torch.manual_seed(3)
    with torch.no_grad():
        return model(torch.randn(2, 3, *size))


@pytest.fixture(scope='module')
def swin_t(tmp_path_factory) -> tuple[nn.Module, Path]:
    ref = reference(mmpretrain_backbones.SwinTransformer('tiny', out_indices=(0, 1, 2, 3), drop_path_rate=0.0), 1)
    path = tmp_path_factory.mktemp('mmpretrain') / 'swin-t_in1k.pth'
    return ref, classifier_checkpoint(ref, path, linear_head(768))


@pytest.mark.parametrize('size', SIZES['swin'], ids=lambda s: f'{s[0]}x{s[1]}')
def test_swin_t_four_stages(swin_t, size):
    ref, path = swin_t
    assert FAMILIES['swin'].detect(ref.state_dict()).name == 'mm'
    ours = pretrained(SwinTransformer, path, arch='tiny', out_indices=(0, 1, 2, 3))
    expected, actual = run(ref, size), run(ours, size)
    assert len(expected) == len(actual) == 4
    for e, a in zip(expected, actual):
        torch.testing.assert_close(a, e, **TOL)


def test_swin_before_version_2_norm_and_masks():
    """mmpretrain's old Swin state dicts: the last output norm is ``norm``, and ``attn_mask`` buffers are saved."""
    ref = reference(mmpretrain_backbones.SwinTransformer(
        dict(embed_dims=32, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 4)), out_indices=(3,), drop_path_rate=0.0), 2)
    state = {('norm.' + k[len('norm3.'):] if k.startswith('norm3.') else k): v for k, v in ref.state_dict().items()}
    state['stages.0.blocks.1.attn_mask'] = torch.zeros(64, 49, 49)
    converted = convert_to_ours(state, 'swin')
    assert {'stages.0.blocks.1.attn_mask'} <= set(converted.dropped)
    ours = SwinTransformer(dict(embed_dim=32, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 4)), out_indices=(3,),
                           drop_path_rate=0.0).eval()
    ours.load_state_dict(converted.state_dict, strict=True)
    torch.testing.assert_close(run(ours, (224, 224))[0], run(ref, (224, 224))[0], **TOL)


@pytest.fixture(scope='module')
def deit_s(tmp_path_factory) -> tuple[nn.Module, Path]:
    ref = reference(mmpretrain_backbones.VisionTransformer('deit-small', out_type='featmap', out_indices=[5, 11]), 3)
    path = tmp_path_factory.mktemp('mmpretrain') / 'deit-small_in1k.pth'
    return ref, classifier_checkpoint(ref, path, linear_head(384, ('layers.head',)))


@pytest.mark.parametrize('size', SIZES['vit'], ids=lambda s: f'{s[0]}x{s[1]}')
def test_deit_s_maps_and_cls_token(deit_s, size):
    ref, path = deit_s
    assert FAMILIES['vit'].detect(ref.state_dict()).name == 'mmpretrain'
    ours = pretrained(VisionTransformer, path, arch='small', out_indices=(5, 11), output_cls_token=True,
                      interpolate_antialias=False)
    *maps, cls_token = run(ours, size)
    ref.out_type = 'featmap'
    expected_maps = run(ref, size)
    ref.out_type = 'cls_token'
    expected_cls = run(ref, size)[-1]  # the last block's cls token, after the final norm ``ln1``
    assert len(maps) == len(expected_maps) == 2
    for e, a in zip(expected_maps, maps):
        torch.testing.assert_close(a, e, **TOL)
    torch.testing.assert_close(cls_token, expected_cls, **TOL)


def deit_tiny_distilled(seed: int = 4, **kwargs: Any) -> nn.Module:
    return reference(mmpretrain_backbones.DistilledVisionTransformer('deit-tiny', out_type='cls_token', **kwargs),
                     seed)


@pytest.mark.parametrize('prefix', [True, False], ids=['prefix', 'whole-checkpoint'])
def test_distilled_deit_tiny_tokens(tmp_path, prefix):
    """DeiT's (cls, distillation) pair; without a prefix the hook picks ``backbone.*`` out of the classifier."""
    ref = deit_tiny_distilled()
    head = {**linear_head(192, ('layers.head', 'layers.head_dist'))}
    path = classifier_checkpoint(ref, tmp_path / 'deit-tiny-distilled.pth', head)
    ours = pretrained(VisionTransformer, path, prefix=prefix, arch='tiny', distilled=True, output_cls_token=True,
                      interpolate_antialias=False)
    for size in SIZES['vit']:
        *_, cls_token, dist_token = run(ours, size)
        expected_cls, expected_dist = run(ref, size)[0]
        torch.testing.assert_close(cls_token, expected_cls, **TOL)
        torch.testing.assert_close(dist_token, expected_dist, **TOL)


def test_layer_scale_and_export_round_trip():
    """LayerScale (``attn.gamma1`` / ``ffn.gamma2``) loads, and ours -> mmpretrain loads strictly into mmpretrain."""
    ref = reference(mmpretrain_backbones.VisionTransformer(
        dict(embed_dims=64, num_layers=2, num_heads=2, feedforward_channels=256), img_size=64, patch_size=16,
        out_type='featmap', layer_scale_init_value=0.1), 5)
    converted = convert_to_ours(ref.state_dict(), 'vit')
    assert converted.source == 'mmpretrain' and converted.dropped == {}
    ours = VisionTransformer(dict(embed_dim=64, depth=2, num_heads=2), pretrain_img_size=64,
                             layer_scale_init_value=0.1).eval()
    ours.load_state_dict(converted.state_dict, strict=True)
    torch.testing.assert_close(run(ours, (64, 64))[0], run(ref, (64, 64))[0], **TOL)
    exported = export_from_ours(ours.state_dict(), 'vit', 'mmpretrain').state_dict
    back = reference(mmpretrain_backbones.VisionTransformer(
        dict(embed_dims=64, num_layers=2, num_heads=2, feedforward_channels=256), img_size=64, patch_size=16,
        out_type='featmap', layer_scale_init_value=0.1), 6)
    back.load_state_dict(exported, strict=True)
    ref_state = ref.state_dict()
    assert exported.keys() == ref_state.keys() and all(torch.equal(exported[k], ref_state[k]) for k in ref_state)


def test_wrong_family_fails_naming_what_it_is(swin_t, deit_s):
    _, swin_path = swin_t
    with pytest.raises(CheckpointMismatchError, match=r'not a vit checkpoint.*looks like a .*swin \(mm layout\)'):
        pretrained(VisionTransformer, swin_path, arch='small')
    _, vit_path = deit_s
    with pytest.raises(CheckpointMismatchError, match=r'not a swin checkpoint.*like a .*vit \(mmpretrain layout\)'):
        pretrained(SwinTransformer, vit_path, arch='tiny')


def test_clip_style_pre_norm_is_refused():
    ref = mmpretrain_backbones.VisionTransformer(
        dict(embed_dims=64, num_layers=2, num_heads=2, feedforward_channels=256), img_size=64, pre_norm=True)
    with pytest.raises(CheckpointMismatchError, match='pre_norm'):
        convert_to_ours(ref.state_dict(), 'vit')


@pytest.mark.parametrize('size', SIZES['levit'])
def test_levit_128s_stage_maps(tmp_path, size):
    ref = reference(mmpretrain_backbones.LeViT('128s', img_size=size, out_indices=(0, 1, 2)), 7)
    gen = torch.Generator().manual_seed(8)
    with torch.no_grad():  # unit-scale attention biases, so that they weigh in the softmax as trained ones do
        for name, param in ref.named_parameters():
            if name.endswith('attention_biases'):
                param.copy_(torch.randn(param.shape, generator=gen))
    ref.eval()  # mmpretrain caches the gathered biases when switched to eval
    path = classifier_checkpoint(ref, tmp_path / 'levit-128s.pth', linear_head(384, ('head.linear',)))
    ours = pretrained(LeViT, path, arch='128s', pretrain_img_size=size)
    expected, actual = run(ref, (size, size)), run(ours, (size, size))
    assert len(expected) == len(actual) == 3
    for e, a in zip(expected, actual):
        torch.testing.assert_close(a, e, **TOL)
    exported = export_from_ours(ours.state_dict(), 'levit', 'mmpretrain').state_dict
    missing, unexpected = mmpretrain_backbones.LeViT('128s', img_size=size).load_state_dict(exported, strict=False)
    assert unexpected == [] and missing and all(k.endswith('attention_bias_idxs') for k in missing)


def official_eps(model: nn.Module) -> nn.Module:
    """mmpretrain PCPVT's block norms (``stages.i.j.norm{1,2}``) at the official eps, 1e-6 (see the docstring)."""
    for name, module in model.named_modules():
        if isinstance(module, nn.LayerNorm) and name.endswith(('.norm1', '.norm2')):
            module.eps = 1e-6
    return model


@pytest.fixture(scope='module')
def pcpvt_small(tmp_path_factory) -> tuple[nn.Module, Path]:
    ref = reference(mmpretrain_backbones.PCPVT('small', qkv_bias=True, out_indices=(0, 1, 2, 3),
                                               norm_after_stage=[False, False, False, True]), 9)
    path = tmp_path_factory.mktemp('mmpretrain') / 'twins-pcpvt-small.pth'
    classifier_checkpoint(ref, path, linear_head(512))
    ref.norm_after_stage3 = nn.Identity()  # the dense maps: left out by the converter (see the docstring)
    return official_eps(ref), path


@pytest.mark.parametrize('size', SIZES['pcpvt'], ids=lambda s: f'{s[0]}x{s[1]}')
def test_twins_pcpvt_small_four_stages(pcpvt_small, size):
    ref, path = pcpvt_small
    ours = pretrained(CPVT, path, arch='pcpvt_small', out_indices=(0, 1, 2, 3))
    expected, actual = run(ref, size), run(ours, size)
    assert len(expected) == len(actual) == 4
    for e, a in zip(expected, actual):
        torch.testing.assert_close(a, e, **TOL)


def test_twins_pcpvt_export_round_trip(pcpvt_small):
    ref, _ = pcpvt_small
    state = dict(ref.state_dict())
    converted = convert_to_ours(state, 'cpvt')
    assert converted.source == 'mmpretrain' and converted.dropped == {}
    back = export_from_ours(converted.state_dict, 'cpvt', 'mmpretrain').state_dict
    assert back.keys() == state.keys() and all(torch.equal(back[k], state[k]) for k in state)
