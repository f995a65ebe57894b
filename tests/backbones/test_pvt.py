"""PVT-specific behaviour beyond the shared contract."""
import pytest
import timm
import torch
import torch.nn.functional as F

from vit_backbones.backbones import PyramidVisionTransformer, PyramidVisionTransformerV2
from vit_backbones.backbones.pvt import V2_ARCHS, SpatialReductionAttention

TINY = dict(embed_dims=(16, 16, 32, 32), depths=(1, 1, 1, 1), num_heads=(1, 1, 2, 2), mlp_ratios=(2, 2, 2, 2),
            sr_ratios=(8, 4, 2, 1))


@pytest.mark.parametrize('cls,kwargs', [(PyramidVisionTransformer, {}),
                                        (PyramidVisionTransformerV2, {}),
                                        (PyramidVisionTransformerV2, {'linear': True})])
def test_fused_and_math_attention_agree(cls, kwargs):
    torch.manual_seed(0)
    model = cls(dict(TINY, **kwargs)).eval()
    x = torch.randn(2, 3, 100, 76)
    with torch.no_grad():
        fused = model(x)
        model.set_fused_attn(False)
        math = model(x)
    for a, b in zip(fused, math):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_linear_sra_pools_keys_to_7x7():
    attn = SpatialReductionAttention(16, 2, sr_ratio=8, linear=True)
    assert attn.reduce(torch.randn(2, 30 * 20, 16), (30, 20)).shape == (2, 49, 16)
    plain = SpatialReductionAttention(16, 2, sr_ratio=8)
    assert plain.reduce(torch.randn(2, 30 * 20, 16), (30, 20)).shape == (2, 3 * 2, 16)


@pytest.mark.parametrize('arch', sorted(V2_ARCHS))
def test_v2_presets_match_timm_shapes(arch):
    with torch.device('meta'):  # shapes only: no memory, no init cost
        ours = PyramidVisionTransformerV2(arch)
        ref = timm.create_model(f'pvt_v2_{arch}', pretrained=False, num_classes=0)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in ref.state_dict().items()}
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())


def test_v1_position_embedding_resized_at_run_time_and_on_load(tmp_path):
    torch.manual_seed(0)
    src = PyramidVisionTransformer(TINY, pretrain_img_size=64, drop_path_rate=0.0).eval()
    assert src.stages[0].pos_embed.shape == (1, 16, 16, 16)
    with torch.no_grad():
        out = src(torch.randn(1, 3, 96, 80))  # grids differ from the 16x16 embedding: resized bilinearly
    assert out[0].shape[-2:] == (24, 20)
    torch.save(src.state_dict(), tmp_path / 'v1.pth')
    model = PyramidVisionTransformer(TINY, pretrain_img_size=128, drop_path_rate=0.0,
                                     init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'v1.pth')))
    model.init_weights()
    expected = F.interpolate(src.stages[1].pos_embed, size=(16, 16), mode='bilinear', align_corners=False)
    torch.testing.assert_close(model.stages[1].pos_embed.data, expected)


def test_timm_v2_checkpoint_loads_through_init_cfg(tmp_path):
    torch.manual_seed(0)
    ref = timm.create_model('pvt_v2_b0', pretrained=False, num_classes=3).eval()
    torch.save({'state_dict': ref.state_dict()}, tmp_path / 'timm.pth')
    model = PyramidVisionTransformerV2('b0', drop_path_rate=0.0,
                                       init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'timm.pth')))
    model.init_weights()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(model.eval()(x), ref.forward_intermediates(x, intermediates_only=True)):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_bad_arch_dicts():
    with pytest.raises(ValueError, match='one entry per stage'):
        PyramidVisionTransformerV2(dict(TINY, depths=(1, 1, 1)))
    with pytest.raises(ValueError, match='custom arch'):
        PyramidVisionTransformer(dict(TINY, linear=True))  # linear SRA is a v2 option


def test_maps_smaller_than_the_reduction_kernel_reduce_to_one_token():
    """Stage 1 of a 16-pixel input is 4x4 under an 8x8 reduction: padded up to one kernel, not a conv error."""
    torch.manual_seed(0)
    v1 = PyramidVisionTransformer(TINY, out_indices=(0,)).eval()
    assert v1(torch.randn(1, 3, 16, 16))[0].shape == (1, 16, 4, 4)
    attn = v1.stages[0].blocks[0].attn
    assert attn.reduce(torch.randn(1, 16, 16), (4, 4)).shape == (1, 1, 16)
    x = torch.randn(1, 64, 16)  # an 8x8 map: exactly one kernel, reduced as the reference (no padding)
    reference = attn.norm(F.conv2d(x.transpose(1, 2).reshape(1, 16, 8, 8), attn.sr.weight, attn.sr.bias,
                                   stride=8).flatten(2).transpose(1, 2))
    torch.testing.assert_close(attn.reduce(x, (8, 8)), reference)


def test_dw_conv_mlp_activates_in_place_only_without_autograd():
    from vit_backbones.backbones.pvt import DwConvMlp
    torch.manual_seed(0)
    mlp = DwConvMlp(8, 16)
    x = torch.randn(2, 6 * 5, 8)
    with torch.no_grad():
        fast = mlp(x, (6, 5))
    slow = mlp(x.requires_grad_(), (6, 5))
    torch.testing.assert_close(fast, slow, rtol=0, atol=0)
    slow.sum().backward()
    assert x.grad is not None and mlp.fc1.weight.grad is not None
    calls = []
    mlp.act.register_forward_hook(lambda module, args, out: calls.append(out.shape))
    with torch.no_grad():
        hooked = mlp(x, (6, 5))
    assert calls == [(2, 30, 16)]  # a hook on the activation still sees it called
    torch.testing.assert_close(hooked, fast, rtol=0, atol=0)
