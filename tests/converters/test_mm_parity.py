"""mmdet / mmseg checkpoints -> ours give the features of mmdet's / mmseg's own backbones (random-init references).

Known behavioural differences that the inputs and references below are chosen around:
    * Swin: ours does not shift the windows along an axis where a stage's map fits in one window (as the
      classification reference); mmdet/mmseg always shift. Every input keeps every stage larger than the window
      (7) along both axes: 256x256 ends at 8x8, 260x230 (not divisible by 32) at 9x8.
    * Swin: mmdet/mmseg add ``absolute_pos_embed`` without resizing, so it is only compared at the size it was
      built for.
    * PVT: mmdet builds every LayerNorm with ``eps=1e-6``; the official PVT (and ours) use torch's default 1e-5 in
      the patch-embedding and spatial-reduction norms. The parity tests set those two to 1e-5 on the mmdet model
      (``official_eps``) so that they check the mapping; ``test_mmdet_pvt_layer_norm_eps_is_the_only_difference``
      measures the stock difference.
    * PVT v2 ``b2_li`` (linear SRA) has no mmdet counterpart.
"""
import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import Sequence

import pytest
import torch
from mmdet.models.backbones import PyramidVisionTransformer as MMDetPvt
from mmdet.models.backbones import PyramidVisionTransformerV2 as MMDetPvtV2
from mmdet.models.backbones import SwinTransformer as MMDetSwin
from mmdet.models.layers import PatchMerging as MMDetPatchMerging
from mmseg.models.backbones import SwinTransformer as MMSegSwin
from torch import Tensor, nn

from vit_backbones.backbones import PyramidVisionTransformer, PyramidVisionTransformerV2, SwinTransformer
from vit_backbones.converters import FAMILIES, convert_to_ours
from vit_backbones.converters.swin import merge_channels_unfold_to_official, swin_mm_to_ours, swin_ours_to_mm
from vit_backbones.layers import PatchMerging

pytestmark = pytest.mark.parity

ROOT = Path(__file__).resolve().parents[2]
SWIN_T = dict(embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24))
SWIN_SMALL = dict(embed_dim=32, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 4))
# mmdet PVT: stage widths are embed_dims * num_heads[i] with num_heads (1, 2, 5, 8), as in our presets.
PVT = {'v1-tiny': (MMDetPvt, dict(embed_dims=64, num_layers=[2, 2, 2, 2]), PyramidVisionTransformer, 'tiny'),
       'v2-b0': (MMDetPvtV2, dict(embed_dims=32, num_layers=[2, 2, 2, 2]), PyramidVisionTransformerV2, 'b0')}


def perturb(model: nn.Module, seed: int = 1) -> nn.Module:
    """Give LN affines, biases, relative-position tables and position embeddings random non-trivial values."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if 'norm' in name or name.endswith('bias'):
                param.add_(0.1 * torch.randn_like(param))
            elif 'relative_position_bias_table' in name or 'pos_embed' in name:
                param.add_(0.5 * torch.randn_like(param))
    model.eval()  # mmdet's train() returns None
    return model


def mm_swin(impl: type, arch: dict, **kwargs) -> nn.Module:
    torch.manual_seed(0)
    return perturb(impl(embed_dims=arch['embed_dim'], depths=arch['depths'], num_heads=arch['num_heads'],
                        drop_path_rate=0.0, **kwargs))


def official_eps(model: nn.Module) -> nn.Module:
    """Set mmdet PVT's patch-embedding and spatial-reduction norms to the official eps (1e-5); see the docstring."""
    for name, module in model.named_modules():
        if isinstance(module, nn.LayerNorm) and (name.endswith('.0.norm') or name.endswith('.attn.norm')):
            module.eps = 1e-5
    return model


def mm_pvt(name: str, stock_eps: bool = False) -> nn.Module:
    impl, kwargs, _, _ = PVT[name]
    torch.manual_seed(0)
    model = perturb(impl(drop_path_rate=0.0, **kwargs))
    return model if stock_eps else official_eps(model)


def our_pvt(name: str, **kwargs) -> nn.Module:
    _, _, impl, arch = PVT[name]
    return impl(arch, drop_path_rate=0.0, **kwargs).eval()


def features(ref: nn.Module, ours: nn.Module, size: Sequence[int]) -> list[tuple[Tensor, Tensor]]:
    """(reference, ours) output pairs for one random image of ``size``; four stages each."""
    torch.manual_seed(2)
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        expected, actual = ref(x), ours(x)
    assert len(expected) == len(actual) == 4
    return list(zip(expected, actual))


def assert_same_features(ref: nn.Module, ours: nn.Module, size: Sequence[int]) -> None:
    for expected, actual in features(ref, ours, size):
        torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)


def max_diffs(ref: nn.Module, ours: nn.Module, size: Sequence[int]) -> list[float]:
    return [(a - e).abs().max().item() for e, a in features(ref, ours, size)]


@pytest.mark.parametrize('impl, arch, size, abs_pos', [
    (MMDetSwin, SWIN_T, (256, 256), False),
    (MMDetSwin, SWIN_SMALL, (260, 230), False),
    (MMDetSwin, SWIN_SMALL, (256, 256), True),
    (MMSegSwin, SWIN_SMALL, (260, 230), False),
    (MMSegSwin, SWIN_SMALL, (256, 256), True),
], ids=['mmdet-T-256', 'mmdet-small-260x230', 'mmdet-small-abs-256', 'mmseg-small-260x230', 'mmseg-small-abs-256'])
def test_mm_swin_parity(impl, arch, size, abs_pos):
    ref = mm_swin(impl, arch, use_abs_pos_embed=abs_pos, pretrain_img_size=size[0])
    state = ref.state_dict()
    assert FAMILIES['swin'].detect(state).name == 'mm'
    converted = convert_to_ours(state, 'swin')
    assert converted.source == 'mm'
    assert set(converted.dropped) == {k for k in state if k.endswith('relative_position_index')}
    ours = SwinTransformer(arch, drop_path_rate=0.0, use_abs_pos_embed=abs_pos, pretrain_img_size=size[0]).eval()
    ours.load_state_dict(converted.state_dict, strict=True)
    assert_same_features(ref, ours, size)


def test_patch_merging_channel_order_on_an_odd_map():
    torch.manual_seed(0)
    ref = perturb(MMDetPatchMerging(8, 16))
    ours = PatchMerging(8, 16).eval()
    state = {k: merge_channels_unfold_to_official(v) for k, v in ref.state_dict().items()}
    ours.load_state_dict(state, strict=True)
    x = torch.randn(2, 5, 7, 8)  # (B, H, W, C), padded to 6x8 by both
    with torch.no_grad():
        expected, hw = ref(x.flatten(1, 2), (5, 7))  # (B, H*W, C) -> (B, 3*4, 16)
        torch.testing.assert_close(ours(x), expected.reshape(2, *hw, 16), rtol=0, atol=1e-6)


def test_swin_ours_to_mm_round_trip():
    torch.manual_seed(0)
    ours = SwinTransformer(SWIN_SMALL, drop_path_rate=0.0, use_abs_pos_embed=True, pretrain_img_size=256).eval()
    perturb(ours)
    to_mm = swin_ours_to_mm(ours.state_dict()).state_dict
    ref = MMDetSwin(embed_dims=32, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 4), drop_path_rate=0.0,
                    use_abs_pos_embed=True, pretrain_img_size=256)
    missing, unexpected = ref.load_state_dict(to_mm, strict=False)
    assert unexpected == [] and all(k.endswith('relative_position_index') for k in missing)
    ref.eval()
    assert_same_features(ref, ours, (256, 256))
    back = swin_mm_to_ours(to_mm).state_dict
    own = ours.state_dict()
    assert back.keys() == own.keys() and all(torch.equal(back[k], own[k]) for k in own)


@pytest.mark.parametrize('name', ['v2-b0', 'v1-tiny'])
@pytest.mark.parametrize('size', [(224, 224), (230, 197)], ids=['224', '230x197'])
def test_mmdet_pvt_parity(name, size):
    ref = mm_pvt(name)
    state = ref.state_dict()
    assert FAMILIES['pvt'].detect(state).name == 'mm'
    converted = convert_to_ours(state, 'pvt')
    assert converted.source == 'mm' and converted.dropped == {}
    ours = our_pvt(name)
    ours.load_state_dict(converted.state_dict, strict=True)
    assert_same_features(ref, ours, size)


def test_mmdet_pvt_layer_norm_eps_is_the_only_difference():
    converted = convert_to_ours(mm_pvt('v2-b0', stock_eps=True).state_dict(), 'pvt').state_dict
    ours = our_pvt('v2-b0')
    ours.load_state_dict(converted, strict=True)
    stock = max_diffs(mm_pvt('v2-b0', stock_eps=True), ours, (224, 224))
    aligned = max_diffs(mm_pvt('v2-b0'), ours, (224, 224))
    assert max(aligned) < 1e-5 < max(stock) < 1e-3, (stock, aligned)


@pytest.mark.parametrize('family', ['swin', 'pvt'])
def test_whole_mmdet_detector_checkpoint_through_init_cfg(tmp_path, family):
    if family == 'swin':
        ref, size = mm_swin(MMDetSwin, SWIN_SMALL), (256, 256)
        build = partial(SwinTransformer, SWIN_SMALL, drop_path_rate=0.0)
    else:
        ref, size = mm_pvt('v2-b0'), (224, 224)
        build = partial(our_pvt, 'v2-b0')
    state = {f'backbone.{k}': v for k, v in ref.state_dict().items()}
    # read only once the loader strips ``backbone.``, never half-converted
    assert FAMILIES[family].detect(state) is None
    state['neck.lateral_convs.0.conv.weight'] = torch.zeros(8, 32, 1, 1)
    state['rpn_head.rpn_conv.weight'] = torch.zeros(8, 8, 3, 3)
    torch.save({'meta': {'mmdet_version': '3.3.0'}, 'state_dict': state}, tmp_path / 'detector.pth')
    ours = build(init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'detector.pth')))
    ours.init_weights()
    assert_same_features(ref, ours.eval(), size)


@pytest.mark.parametrize('family', ['swin', 'pvt'])
@pytest.mark.parametrize('whole_model', [False, True])
def test_convert_checkpoint_cli_reads_mm_layout(tmp_path, family, whole_model):
    ref = mm_swin(MMDetSwin, SWIN_SMALL) if family == 'swin' else mm_pvt('v1-tiny')
    state = ref.state_dict()
    if whole_model:  # a detector checkpoint: only its backbone.* part is converted
        state = {f'backbone.{k}': v for k, v in state.items()}
        state['neck.lateral_convs.0.conv.weight'] = torch.zeros(8, 32, 1, 1)
    torch.save({'state_dict': state}, tmp_path / 'mm.pth')
    out = subprocess.run([sys.executable, str(ROOT / 'tools/convert_checkpoint.py'), family,
                          str(tmp_path / 'mm.pth'), str(tmp_path / 'ours.pth')],
                         capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert f'read a {family} checkpoint in the mm layout' in out.stdout
    ours = SwinTransformer(SWIN_SMALL, drop_path_rate=0.0) if family == 'swin' else our_pvt('v1-tiny')
    ours.load_state_dict(torch.load(tmp_path / 'ours.pth', weights_only=True), strict=True)
    assert_same_features(ref, ours.eval(), (256, 256) if family == 'swin' else (224, 224))


@pytest.mark.parametrize('size', [(224, 224), (230, 197)], ids=['224', '230x197'])
def test_pvt_v1_cls_token_follows_the_official_classifier(size):
    """PVT v1 with cls_output='cls_token' = the official classifier: mmdet's stages with the cls token (plus its
    position row) prepended to the last stage's tokens after the position embedding, then the final norm on it."""
    ref = mm_pvt('v1-tiny')
    ours = our_pvt('v1-tiny', cls_output='cls_token')
    missing, unexpected = ours.load_state_dict(convert_to_ours(ref.state_dict(), 'pvt').state_dict, strict=False)
    assert sorted(missing) == ['norm.bias', 'norm.weight', 'stages.3.cls_pos_embed', 'stages.3.cls_token']
    assert unexpected == []
    torch.manual_seed(3)
    with torch.no_grad():  # random cls token, cls position row and final norm
        for param in (ours.stages[3].cls_token, ours.stages[3].cls_pos_embed, ours.norm.weight, ours.norm.bias):
            param.copy_(torch.randn_like(param))
    torch.manual_seed(2)
    image = torch.randn(2, 3, *size)
    with torch.no_grad():
        expected, x = [], image
        for i, layer in enumerate(ref.layers):
            x, hw = layer[0](x)
            x = layer[1][0](x, hw)  # the absolute position embedding, resized to hw
            if i == 3:
                stage = ours.stages[3]
                x = torch.cat([(stage.cls_token + stage.cls_pos_embed).expand(x.shape[0], -1, -1), x], dim=1)
            for block in layer[1][1:]:
                # the token sequence as a (1 + N) x 1 column for mmdet's 1x1-conv MLP (per token, as a linear);
                # the last stage's attention has no spatial reduction, so it ignores the grid
                x = block(x, (x.shape[1], 1) if i == 3 else hw)
            x = layer[2](x)
            if i == 3:
                cls, x = ours.norm(x[:, 0]), x[:, 1:]
            x = x.transpose(1, 2).reshape(x.shape[0], -1, *hw)  # (B, N, C) -> (B, C, h, w)
            expected.append(x)
        actual = ours(image)
    assert len(actual) == 5
    for a, e in zip(actual, [*expected, cls]):
        torch.testing.assert_close(a, e, rtol=1e-5, atol=1e-5)
