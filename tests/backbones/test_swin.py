"""Swin-specific behaviour beyond the shared contract."""
import pytest
import torch

from vit_backbones.backbones import SwinTransformer
from vit_backbones.backbones.swin import ARCHS
from vit_backbones.layers import DropPath, WindowAttention

TINY = dict(embed_dim=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4))


@pytest.mark.parametrize('size', [(224, 224), (100, 150), (45, 61)])
def test_fused_and_math_attention_agree_with_shift_mask(size):
    torch.manual_seed(0)
    model = SwinTransformer(TINY, window_size=7).eval()
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        fused = model(x)
        model.set_fused_attn(False)
        assert all(b.attn.fused_attn is False for stage in model.layers for b in stage.blocks)
        math = model(x)
    assert model.layers[0].shift_and_mask(torch.zeros(1, size[0] // 4, size[1] // 4, 1))[1].any()
    for a, b in zip(fused, math):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_shift_mask_follows_the_padded_size():
    stage = SwinTransformer(TINY).layers[0]
    shift, mask = stage.shift_and_mask(torch.zeros(1, 20, 30, 16))
    assert shift == (3, 3) and mask.shape == (3 * 5, 49, 49)  # padded to (21, 35)
    torch.testing.assert_close(stage.shift_and_mask(torch.zeros(2, 19, 29, 16))[1], mask)  # same padded size
    assert stage.shift_and_mask(torch.zeros(1, 27, 30, 16))[1].shape == (4 * 5, 49, 49)


def test_no_shift_along_an_axis_that_fits_one_window():
    stage = SwinTransformer(TINY).layers[0]
    shift, mask = stage.shift_and_mask(torch.zeros(1, 7, 7, 16))
    assert shift == (0, 0) and not mask.any()  # a zero shift is the identity with an all-zero mask
    shift, mask = stage.shift_and_mask(torch.zeros(1, 5, 20, 16))
    assert shift == (0, 3) and mask.shape == (3, 49, 49)


def test_relative_position_bias_follows_in_place_table_updates():
    attn = WindowAttention(8, 2, 7).eval()
    with torch.no_grad():
        first = attn.relative_position_bias()
        attn.relative_position_bias_table.data.add_(1.0)  # .data bumps no version counter
        second = attn.relative_position_bias()
    torch.testing.assert_close(second, first + 1.0)
    assert attn.relative_position_bias().requires_grad


def test_drop_path_is_linear_over_depth():
    model = SwinTransformer('tiny', drop_path_rate=0.3)
    rates = [0.0 if not isinstance(b.drop_path1, DropPath) else b.drop_path1.drop_prob
             for stage in model.layers for b in stage.blocks]
    torch.testing.assert_close(torch.tensor(rates), torch.linspace(0, 0.3, 12))


@pytest.mark.parametrize('arch', sorted(ARCHS))
def test_arch_presets_channels(arch):
    embed = ARCHS[arch]['embed_dim']
    model = SwinTransformer(arch, out_indices=(0,))  # later stages are not built
    assert model.out_channels == (embed,) and len(model.layers) == 1


def test_window_12_and_absolute_pos_embed_at_new_sizes():
    torch.manual_seed(0)
    model = SwinTransformer(TINY, window_size=12, use_abs_pos_embed=True, pretrain_img_size=96).eval()
    assert model.absolute_pos_embed.shape == (1, 16, 24, 24)
    assert model.layers[0].blocks[0].attn.relative_position_bias_table.shape == (23 * 23, 1)
    with torch.no_grad():
        for size in [(96, 96), (130, 70)]:
            outs = model(torch.randn(1, 3, *size))
            assert outs[0].shape[-2:] == (-(-size[0] // 4), -(-size[1] // 4))
    # the embedding is really used: changing it changes the output
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        before = model(x)[0]
        model.absolute_pos_embed.add_(1.0)
        assert not torch.allclose(before, model(x)[0])


def test_runs_under_inference_mode_then_training():
    model = SwinTransformer(TINY)
    with torch.inference_mode():
        model.eval()(torch.randn(1, 3, 64, 64))
    out = model.train()(torch.randn(1, 3, 64, 64))
    sum(o.sum() for o in out).backward()


def test_bad_custom_arch():
    with pytest.raises(ValueError, match='custom arch'):
        SwinTransformer(dict(embed_dim=16, depths=(1, 1)))
    with pytest.raises(ValueError, match='one entry per stage'):
        SwinTransformer(dict(embed_dim=16, depths=(1, 1), num_heads=(1,)))
