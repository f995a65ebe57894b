"""timm / official PVT checkpoints -> ours give the same features (random-init reference models)."""
import re

import pytest
import timm
import torch
from timm.models.pvt_v2 import checkpoint_filter_fn

from vit_backbones.backbones import PyramidVisionTransformer, PyramidVisionTransformerV2
from vit_backbones.converters import FAMILIES, convert_to_ours
from vit_backbones.converters.pvt import pvt_official_to_ours, pvt_ours_to_timm, pvt_timm_to_ours

pytestmark = pytest.mark.parity
TOL = dict(rtol=1e-5, atol=1e-5)


def timm_pvt(arch: str, **kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    model = timm.create_model(f'pvt_v2_{arch}', pretrained=False, **kwargs).eval()
    with torch.no_grad():  # non-trivial norms and biases
        for name, param in model.named_parameters():
            if 'norm' in name or name.endswith('bias'):
                param.add_(0.1 * torch.randn_like(param))
    return model


def timm_to_official_v2(sd: dict) -> dict:
    """Rebuild the official PVT v2 key layout from timm's."""
    out = {}
    for key, value in sd.items():
        key = key.replace('patch_embed.', 'patch_embed1.')
        key = re.sub(r'^stages\.(\d)\.downsample\.', lambda m: f'patch_embed{int(m.group(1)) + 1}.', key)
        key = re.sub(r'^stages\.(\d)\.blocks\.(\d+)\.', lambda m: f'block{int(m.group(1)) + 1}.{m.group(2)}.', key)
        key = re.sub(r'^stages\.(\d)\.norm\.', lambda m: f'norm{int(m.group(1)) + 1}.', key)
        out[key.replace('.mlp.dwconv.', '.mlp.dwconv.dwconv.')] = value
    return out


@pytest.mark.parametrize('arch', ['b0', 'b1', 'b2', 'b2_li'])
def test_timm_v2_parity_all_stages(arch):
    ref = timm_pvt(arch, num_classes=7)
    converted = convert_to_ours(ref.state_dict(), 'pvt')
    assert converted.source == 'timm' and set(converted.dropped) == {'head.weight', 'head.bias'}
    ours = PyramidVisionTransformerV2(arch, drop_path_rate=0.0).eval()
    ours.load_state_dict(converted.state_dict, strict=True)
    for size in [(224, 224), (150, 101)]:
        x = torch.randn(1, 3, *size)
        with torch.no_grad():
            expected = ref.forward_intermediates(x, intermediates_only=True)
            for a, b in zip(ours(x), expected):
                torch.testing.assert_close(a, b, **TOL)


def test_official_v2_layout_matches_timm_reading_and_ours():
    ref = timm_pvt('b1', num_classes=4)
    official = timm_to_official_v2(ref.state_dict())
    assert set(checkpoint_filter_fn(dict(official), ref)) == set(ref.state_dict())  # timm reads it back
    assert FAMILIES['pvt'].detect(official).name == 'official'
    converted = pvt_official_to_ours(official)
    ours = PyramidVisionTransformerV2('b1', drop_path_rate=0.0).eval()
    ours.load_state_dict(converted.state_dict, strict=True)
    x = torch.randn(1, 3, 128, 96)
    with torch.no_grad():
        for a, b in zip(ours(x), ref.forward_intermediates(x, intermediates_only=True)):
            torch.testing.assert_close(a, b, **TOL)


def ours_to_official_v1(model: PyramidVisionTransformer, cls: bool) -> dict:
    """Rebuild an official PVT v1 classification state dict (cls token, cls pos row, final norm, head)."""
    out = {}
    for key, value in model.state_dict().items():
        key = key.replace('patch_embed.', 'patch_embed1.')
        key = re.sub(r'^stages\.(\d)\.downsample\.', lambda m: f'patch_embed{int(m.group(1)) + 1}.', key)
        key = re.sub(r'^stages\.(\d)\.blocks\.(\d+)\.', lambda m: f'block{int(m.group(1)) + 1}.{m.group(2)}.', key)
        if m := re.match(r'^stages\.(\d)\.pos_embed$', key):
            key = f'pos_embed{int(m.group(1)) + 1}'
            value = value.flatten(2).transpose(1, 2)  # (1, C, h, w) -> (1, N, C)
        out[key] = value
    if cls:
        out['pos_embed4'] = torch.cat([torch.randn(1, 1, out['pos_embed4'].shape[-1]), out['pos_embed4']], 1)
        out['cls_token'] = torch.zeros(1, 1, 512)
        out['norm.weight'], out['norm.bias'] = torch.ones(512), torch.zeros(512)
        out['head.weight'], out['head.bias'] = torch.zeros(10, 512), torch.zeros(10)
    return out


@pytest.mark.parametrize('cls', [True, False])
def test_official_v1_round_trip(cls):
    torch.manual_seed(0)
    ours = PyramidVisionTransformer('tiny').eval()
    official = ours_to_official_v1(ours, cls)
    converted = convert_to_ours(official, 'pvt')
    assert converted.source == 'official'
    assert set(converted.dropped) == ({'head.weight', 'head.bias'} if cls else set())
    own = ours.state_dict()
    cls_keys = {'stages.3.cls_token', 'stages.3.cls_pos_embed', 'norm.weight', 'norm.bias'} if cls else set()
    assert converted.state_dict.keys() == own.keys() | cls_keys  # the classifier's parts, kept for cls_output
    assert all(torch.equal(converted.state_dict[k], own[k]) for k in own)
    if cls:  # the cls position row of pos_embed4 and the token land in the last stage
        assert torch.equal(converted.state_dict['stages.3.cls_pos_embed'], official['pos_embed4'][:, :1])
        assert torch.equal(converted.state_dict['stages.3.cls_token'], official['cls_token'])
    # a dense model leaves the classifier's parts out (and says why); a cls_output model loads all of it strictly
    dense = PyramidVisionTransformer('tiny')
    result = dense.convert_state_dict(official, dense.state_dict())
    assert set(result.dropped) == {'head.weight', 'head.bias'} | cls_keys if cls else set(result.dropped) == set()
    dense.load_state_dict(official, strict=True)
    if cls:
        classifier = PyramidVisionTransformer('tiny', cls_output='cls_token')
        classifier.load_state_dict(official, strict=True)
        assert torch.equal(classifier.stages[3].cls_token, official['cls_token'])
        assert torch.equal(classifier.norm.weight, official['norm.weight'])


def test_export_v2_to_timm_round_trip_and_v1_refused():
    torch.manual_seed(0)
    ours = PyramidVisionTransformerV2('b0').eval()
    exported = pvt_ours_to_timm(ours.state_dict()).state_dict
    ref = timm.create_model('pvt_v2_b0', pretrained=False, num_classes=0).eval()
    ref.load_state_dict(exported, strict=True)
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        for a, b in zip(ours(x), ref.forward_intermediates(x, intermediates_only=True)):
            torch.testing.assert_close(a, b, **TOL)
    back = pvt_timm_to_ours(exported).state_dict
    assert all(torch.equal(back[k], v) for k, v in ours.state_dict().items())
    with pytest.raises(ValueError, match='PVT v1'):
        pvt_ours_to_timm(PyramidVisionTransformer('tiny').state_dict())
