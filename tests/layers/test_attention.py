"""The shared attention layer: fused and math paths agree for every bias/mask/hook, the switch really switches,
capture leaves outputs alone; position-embedding resampling matches timm's numbers; layout helpers."""
import itertools

import pytest
import torch
import torch.nn.functional as F
from timm.layers import resample_abs_pos_embed as timm_resample

from vit_backbones.layers import (
    Attention,
    capture_attention,
    fused_attn_enabled,
    nchw_to_nhwc,
    nchw_to_nlc,
    nhwc_to_nchw,
    nhwc_to_nlc,
    nlc_to_nchw,
    nlc_to_nhwc,
    resample_abs_pos_embed,
    set_fused_attn,
    split_prefix,
)
from vit_backbones.layers import attention as attention_module

B, N, M, C, H = 2, 10, 6, 16, 4


def _bias(kind):
    if kind == 'none':
        return None
    shape = {'heads': (H, N, N), 'full': (B, H, N, N)}[kind]
    return torch.randn(shape)


def _mask(kind):
    if kind == 'none':
        return None
    keep = torch.rand(B, 1, N, N) > 0.3
    keep[..., 0] = True  # every query keeps at least one key
    return keep if kind == 'bool' else torch.where(keep, 0.0, -100.0)


@pytest.mark.parametrize('bias,mask,hooks', list(itertools.product(
    ['none', 'heads', 'full'], ['none', 'float', 'bool'], ['none', 'talking_heads', 're_attention'])))
def test_fused_and_math_agree(bias, mask, hooks):
    torch.manual_seed(0)
    attn = Attention(C, H, talking_heads=hooks == 'talking_heads', re_attention=hooks == 're_attention').eval()
    if hooks == 're_attention':  # a non-trivial BatchNorm state, so the norm really acts
        attn.var_norm.running_mean.uniform_(-0.1, 0.1)
        attn.var_norm.running_var.uniform_(0.5, 2.0)
    x, b, m = torch.randn(B, N, C), _bias(bias), _mask(mask)
    with torch.no_grad():
        attn.fused_attn = True
        fused = attn(x, b, m)
        attn.fused_attn = False
        math = attn(x, b, m)
    torch.testing.assert_close(fused, math, rtol=1e-5, atol=1e-5)
    assert torch.isfinite(fused).all()


def test_bias_and_masks_change_the_output():
    torch.manual_seed(0)
    attn = Attention(C, H).eval()
    x = torch.randn(B, N, C)
    plain = attn(x)
    assert not torch.allclose(plain, attn(x, bias=_bias('heads')))
    assert not torch.allclose(plain, attn(x, mask=_mask('bool')))
    # a boolean mask and the equivalent additive one are the same attention
    keep = _mask('bool')
    torch.testing.assert_close(attn(x, mask=keep), attn(x, mask=torch.where(keep, 0.0, float('-inf'))))


def _math_reference(attn, x, kv=None, bias=None):
    """softmax(q k^T / sqrt(d) + bias) v written out from the module's weights."""
    q, k, v = attn.project(x, kv)
    logits = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5
    if bias is not None:
        logits = logits + bias
    return attn.out(logits.softmax(-1) @ v)


@pytest.mark.parametrize('layout', ['qkv', 'q_kv', 'q_k_v'])
def test_each_projection_layout_is_attention(layout):
    torch.manual_seed(0)
    attn = Attention(C, H, qkv_layout=layout).eval()
    x = torch.randn(B, N, C)
    kv = None if layout == 'qkv' else torch.randn(B, M, C)
    with torch.no_grad():
        out = attn.out(attn.attend(*attn.project(x, kv)))
        torch.testing.assert_close(out, _math_reference(attn, x, kv), rtol=1e-5, atol=1e-5)
    names = {n.split('.')[0] for n, _ in attn.named_parameters()}
    assert names == {'qkv': {'qkv', 'proj'}, 'q_kv': {'q', 'kv', 'proj'}, 'q_k_v': {'q', 'k', 'v', 'proj'}}[layout]


def test_hooks_are_used():
    torch.manual_seed(0)
    x = torch.randn(B, N, C)
    talking = Attention(C, H, talking_heads=True).eval()
    before = talking(x)
    with torch.no_grad():
        talking.proj_w.weight.mul_(2.0)
    assert not torch.allclose(before, talking(x))
    reatt = Attention(C, H, re_attention=True).eval()
    before = reatt(x)
    with torch.no_grad():
        reatt.reatten_matrix.weight.mul_(-1.0)
    assert not torch.allclose(before, reatt(x))


def test_switch_decides_which_path_runs(monkeypatch):
    calls = []
    sdpa = F.scaled_dot_product_attention
    monkeypatch.setattr(attention_module.F, 'scaled_dot_product_attention',
                        lambda *a, **k: calls.append(1) or sdpa(*a, **k))
    attn = Attention(C, H).eval()
    x = torch.randn(B, N, C)
    try:
        set_fused_attn(False)
        attn(x)
        assert calls == [] and not fused_attn_enabled()
        attn.fused_attn = True  # the module's own setting wins over the package default
        attn(x)
        assert calls == [1]
        set_fused_attn(True)
        attn.fused_attn = None
        attn(x)
        assert calls == [1, 1]
        attn.fused_attn = False
        attn(x)
        assert calls == [1, 1]
        Attention(C, H, talking_heads=True, fused_attn=True).eval()(x)  # math-only hooks force the math path
        assert calls == [1, 1]
        set_fused_attn(None)  # by device, CPU ISA and attention size
        attn.fused_attn = None
        attn(x)  # N x N = 16 tokens squared: short attention
        avx512 = torch.backends.cpu.get_cpu_capability().startswith('AVX512')
        assert calls == ([1, 1, 1] if avx512 else [1, 1])
        assert fused_attn_enabled(None, torch.device('cuda'), 49 * 49)
        assert fused_attn_enabled(None, torch.device('cpu'), 49 * 49) == avx512  # windows: math without AVX-512
        assert fused_attn_enabled(None, None, 197 * 197) and fused_attn_enabled(None)  # global attention: fused
    finally:
        set_fused_attn(None)


@pytest.mark.parametrize('fused', [True, False])
def test_capture_returns_maps_without_changing_outputs(fused):
    torch.manual_seed(0)
    model = torch.nn.Sequential(Attention(C, H, fused_attn=fused), Attention(C, H, fused_attn=fused)).eval()
    x = torch.randn(B, N, C)
    with torch.no_grad():
        plain = model(x)
        with capture_attention(model) as maps:
            captured = model(x)
        after = model(x)
    torch.testing.assert_close(captured, plain, rtol=0, atol=0)
    assert set(maps) == {'0', '1'} and all(len(v) == 1 for v in maps.values())
    first = maps['0'][0]
    assert first.shape == (B, H, N, N)
    torch.testing.assert_close(first.sum(-1), torch.ones(B, H, N))
    # the map is the attention that was applied: rebuild the first module's output from it
    with torch.no_grad():
        _, _, v = model[0].project(x)
        torch.testing.assert_close(model[0].out(first @ v), model[0](x), rtol=1e-5, atol=1e-5)
    assert len(maps['0']) == 1  # recording stops when the context closes
    torch.testing.assert_close(after, plain, rtol=0, atol=0)


@pytest.mark.parametrize('old,new,prefix', [(14, (14, 14), 1), (14, (20, 9), 1), (14, (7, 7), 2), (16, (24, 24), 0)])
def test_resample_abs_pos_embed_matches_timm(old, new, prefix):
    torch.manual_seed(0)
    pos = torch.randn(1, prefix + old * old, 32)
    ours = resample_abs_pos_embed(pos, new, num_prefix_tokens=prefix)
    ref = timm_resample(pos, list(new), num_prefix_tokens=prefix)
    assert ours.shape == (1, prefix + new[0] * new[1], 32)
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-6)
    torch.testing.assert_close(ours[:, :prefix], pos[:, :prefix], rtol=0, atol=0)  # prefix rows untouched


def test_resample_rejects_a_non_square_source_without_old_size():
    with pytest.raises(ValueError, match='old_size'):
        resample_abs_pos_embed(torch.randn(1, 1 + 15, 8), (4, 4))
    assert resample_abs_pos_embed(torch.randn(1, 1 + 15, 8), (5, 3), old_size=(3, 5)).shape == (1, 16, 8)


def test_layout_helpers_round_trip():
    x = torch.randn(2, 5, 3, 4)  # (B, C, H, W)
    tokens = nchw_to_nlc(x)
    assert tokens.shape == (2, 12, 5)
    torch.testing.assert_close(nlc_to_nchw(tokens, (3, 4)), x)
    nhwc = nchw_to_nhwc(x)
    torch.testing.assert_close(nhwc_to_nlc(nhwc), tokens)
    torch.testing.assert_close(nlc_to_nhwc(tokens, (3, 4)), nhwc)
    torch.testing.assert_close(nhwc_to_nchw(nhwc), x)
    prefix, grid = split_prefix(torch.cat([torch.zeros(2, 1, 5), tokens], 1), 1)
    assert prefix.shape == (2, 1, 5)
    torch.testing.assert_close(grid, tokens)


@pytest.mark.parametrize('fused', [True, False])
def test_a_tiled_bias_is_the_bias_repeated_over_the_batch(fused):
    torch.manual_seed(0)
    attn = Attention(C, H, fused_attn=fused).eval()
    q, k, v = attn.project(torch.randn(2 * 3, N, C))  # 2 images x 3 windows
    bias = torch.randn(3, H, N, N)
    with torch.no_grad():
        tiled = attn.attend(q, k, v, bias=bias, tile=3)
        repeated = attn.attend(q, k, v, bias=bias.repeat(2, 1, 1, 1))
    torch.testing.assert_close(tiled, repeated, rtol=1e-5, atol=1e-5)
