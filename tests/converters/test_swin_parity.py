"""timm / official Swin checkpoints -> ours give the same features (random-init reference models)."""
import re

import pytest
import timm
import torch
import torch.nn.functional as F
from timm.models.swin_transformer import checkpoint_filter_fn

from vit_backbones.backbones import SwinTransformer
from vit_backbones.converters import FAMILIES, convert_to_ours
from vit_backbones.converters.swin import swin_official_to_ours, swin_ours_to_timm, swin_timm_to_ours

pytestmark = pytest.mark.parity

TIMM_NAMES = {'tiny': 'swin_tiny_patch4_window7_224', 'small': 'swin_small_patch4_window7_224',
              'base': 'swin_base_patch4_window7_224'}


def timm_swin(arch: str, **kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    model = timm.create_model(TIMM_NAMES[arch], pretrained=False, **kwargs).eval()
    with torch.no_grad():  # random, non-trivial values everywhere (LN affine and biases included)
        for name, param in model.named_parameters():
            if 'norm' in name or name.endswith('bias'):
                param.add_(0.1 * torch.randn_like(param))
    return model


def timm_to_official(sd: dict) -> dict:
    """Rebuild the official key layout (downsample at the end of a stage, plain ``head``, buffers)."""
    out = {}
    for key, value in sd.items():
        key = re.sub(r'^layers\.(\d+)\.downsample', lambda m: f'layers.{int(m.group(1)) - 1}.downsample', key)
        out[key.replace('head.fc.', 'head.')] = value
    n = 49
    for key in list(out):
        if key.endswith('relative_position_bias_table'):
            out[key.replace('bias_table', 'index')] = torch.zeros(n, n, dtype=torch.long)
        if re.match(r'layers\.\d+\.blocks\.1\.norm1\.weight', key):
            out[key.replace('norm1.weight', 'attn_mask')] = torch.zeros(4, n, n)
    return out


@pytest.mark.parametrize('arch', ['tiny', 'small', 'base'])
def test_timm_parity_all_stages(arch):
    ref = timm_swin(arch, num_classes=0)
    x = torch.randn(1, 3, 224, 224)
    converted = swin_timm_to_ours(ref.state_dict())
    assert converted.source == 'timm' and converted.dropped == {}

    last = SwinTransformer(arch, out_indices=(3,), drop_path_rate=0.0).eval()
    last.load_state_dict(converted.state_dict, strict=True)

    full = SwinTransformer(arch, drop_path_rate=0.0).eval()
    missing, unexpected = full.load_state_dict(converted.state_dict, strict=False)
    assert unexpected == []
    # timm has no norms on intermediate outputs: only our fresh (identity-affine) ones are missing
    assert sorted(missing) == sorted(f'norms.{i}.{p}' for i in range(3) for p in ('weight', 'bias'))
    with torch.no_grad():
        feats = ref.forward_intermediates(x, intermediates_only=True, norm=False)
        final = ref.forward_features(x).permute(0, 3, 1, 2)  # (B, H, W, C) -> (B, C, H, W)
        ours = full(x)
        torch.testing.assert_close(last(x)[0], final, rtol=0, atol=1e-5)
    for i in range(3):
        expected = F.layer_norm(feats[i].permute(0, 2, 3, 1), feats[i].shape[1:2]).permute(0, 3, 1, 2)
        torch.testing.assert_close(ours[i], expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(ours[3], final, rtol=0, atol=1e-5)


def test_timm_checkpoint_with_head_drops_only_the_head():
    sd = timm_swin('tiny', num_classes=10).state_dict()
    converted = convert_to_ours(sd, 'swin')
    assert converted.source == 'timm'
    assert set(converted.dropped) == {'head.fc.weight', 'head.fc.bias'}
    SwinTransformer('tiny', out_indices=(3,)).load_state_dict(converted.state_dict, strict=True)


def test_official_layout_matches_timm_reading_and_ours():
    ref = timm_swin('tiny', num_classes=10)
    official = timm_to_official(ref.state_dict())
    # timm's own filter reads our synthetic official dict back to its keys: the layout is right
    back = checkpoint_filter_fn(dict(official), ref)
    assert set(back) == set(ref.state_dict())
    assert FAMILIES['swin'].detect(official).name == 'official'
    converted = swin_official_to_ours(official)
    buffers = {k for k in official if 'attn_mask' in k or 'index' in k}
    assert {k for k in converted.dropped if 'head' not in k} == buffers
    ours = SwinTransformer('tiny', out_indices=(3,), drop_path_rate=0.0).eval()
    ours.load_state_dict(converted.state_dict, strict=True)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(ours(x)[0], ref.forward_features(x).permute(0, 3, 1, 2), rtol=0, atol=1e-5)


def test_official_absolute_pos_embed_is_reshaped_to_a_grid():
    official = timm_to_official(timm_swin('tiny', num_classes=0).state_dict())
    pos = torch.randn(1, 56 * 56, 96)
    official['absolute_pos_embed'] = pos
    converted = swin_official_to_ours(official)
    grid = converted.state_dict['absolute_pos_embed']
    assert grid.shape == (1, 96, 56, 56)
    torch.testing.assert_close(grid[0, :, 1, 2], pos[0, 1 * 56 + 2])


def test_round_trip_ours_timm_ours_is_exact_and_timm_loads_it():
    torch.manual_seed(0)
    ours = SwinTransformer('tiny', out_indices=(3,), drop_path_rate=0.0).eval()
    to_timm = swin_ours_to_timm(ours.state_dict())
    assert to_timm.dropped == {}
    ref = timm.create_model(TIMM_NAMES['tiny'], pretrained=False, num_classes=0).eval()
    ref.load_state_dict(to_timm.state_dict, strict=True)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(ref.forward_features(x).permute(0, 3, 1, 2), ours(x)[0], rtol=0, atol=1e-5)
    back = swin_timm_to_ours(to_timm.state_dict).state_dict
    own = ours.state_dict()
    assert back.keys() == own.keys()
    assert all(torch.equal(back[k], own[k]) for k in own)


def test_export_reports_what_timm_cannot_hold():
    model = SwinTransformer(dict(embed_dim=16, depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1)),
                            use_abs_pos_embed=True)
    dropped = swin_ours_to_timm(model.state_dict()).dropped
    assert set(dropped) == {'absolute_pos_embed'} | {f'norms.{i}.{p}' for i in range(3) for p in ('weight', 'bias')}
