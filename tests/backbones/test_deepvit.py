"""DeepViT-specific behaviour: the presets' structure, re-attention (its dropout order, its math-path-only rule),
the residual scale adjustment and the BatchNorms under ``norm_eval``. Parity with the official model is in
``tests/converters/test_deepvit_parity.py``; the shared contract in ``test_contract.py``."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vit_backbones.backbones import DeepViT
from vit_backbones.backbones.deepvit import ConvPatchEmbed
from vit_backbones.layers import Attention

from .tiny_archs import TINY

TINY_S = TINY['DeepViT'][0]['arch']  # conv stem, re-attention from block 2, transform_scale, r = 0.5


# name -> (embed_dim, depth, re-attention blocks, reatten_scale, scale_adjustment, conv stem): the official
# deepvit_patch16_224_re_attn_{16,24,32}b, deepvit_S and deepvit_L
PRESETS = {
    '16b': (384, 16, range(16), 1.0, 1.0, False),
    '24b': (384, 24, range(24), 1.0, 1.0, False),
    '32b': (384, 32, range(32), 1.0, 1.0, False),
    's': (396, 16, range(11, 16), 33 ** -0.5, 0.5, True),
    'l': (420, 32, range(20, 32), 1.0, 0.5, True),
}


@pytest.mark.parametrize('name', sorted(PRESETS))
def test_presets_follow_the_official_models(name):
    dim, depth, re_blocks, scale, r, conv_stem = PRESETS[name]
    with torch.device('meta'):
        model = DeepViT(name)
    assert model.embed_dim == dim and len(model.blocks) == depth
    assert [i for i, b in enumerate(model.blocks) if b.attn.re_attention] == list(re_blocks)
    for block in model.blocks:
        assert block.attn.num_heads == 12 and block.mlp.fc1.out_features == 3 * dim
        assert block.scale_adjustment == r and block.norm1.eps == 1e-6
        if block.attn.re_attention:
            assert block.attn.reatten_scale == pytest.approx(scale)
    assert isinstance(model.patch_embed, ConvPatchEmbed) == conv_stem
    assert model.out_strides == (16,) and tuple(model.pos_embed.shape) == (1, 1 + 14 * 14, dim)


def test_l_at_384_is_the_official_deepvit_l_384():
    with torch.device('meta'):
        model = DeepViT('l', pretrain_img_size=384)
    assert tuple(model.pos_embed.shape) == (1, 1 + 24 * 24, 420)


def test_attention_dropout_acts_on_the_softmaxed_map_before_the_re_attention_mixing():
    """The official ReAttention drops the softmaxed weights, then mixes and normalises them (training mode)."""
    torch.manual_seed(0)
    attn = Attention(16, 2, re_attention=True, reatten_scale=0.5, attn_drop=0.5).train()
    with torch.no_grad():
        attn.reatten_matrix.weight.copy_(torch.eye(2).view(2, 2, 1, 1) + 0.5 * torch.randn(2, 2, 1, 1))
    x = torch.randn(2, 5, 16)

    def manual(drop_first):
        q, k, v = attn.project(x)
        a = (q @ k.transpose(-2, -1) * attn.scale).softmax(-1)
        if drop_first:
            a = F.dropout(a, 0.5, True)
        a = attn.var_norm(attn.reatten_matrix(a)) * 0.5
        if not drop_first:
            a = F.dropout(a, 0.5, True)
        return attn.out(a @ v)

    with torch.no_grad():
        torch.manual_seed(1)
        got = attn(x)
        torch.manual_seed(1)
        before = manual(True)
        torch.manual_seed(1)
        after = manual(False)
    torch.testing.assert_close(got, before)
    assert not torch.allclose(got, after)


def test_re_attention_blocks_take_the_math_path_and_the_plain_ones_follow_fused_attn(monkeypatch):
    torch.manual_seed(0)
    fused = DeepViT(TINY_S, pretrain_img_size=64, fused_attn=True).eval()
    math = DeepViT(TINY_S, pretrain_img_size=64, fused_attn=False).eval()
    math.load_state_dict(fused.state_dict(), strict=True)
    calls = []
    sdpa = F.scaled_dot_product_attention
    monkeypatch.setattr('vit_backbones.layers.attention.F.scaled_dot_product_attention',
                        lambda *a, **k: calls.append(1) or sdpa(*a, **k))
    x = torch.randn(2, 3, 64, 80)
    with torch.no_grad():
        want = math(x)
        assert not calls
        got = fused(x)
    assert len(calls) == TINY_S['re_attention_start']  # blocks 0-1 fused, 2-3 (re-attention) on the math path
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_scale_adjustment_changes_the_block_as_the_reference_does():
    """``r != 1`` is ``x + attn(norm1(r x)) / r``, then ``x + mlp(norm2(r x)) / r``: not the plain block."""
    torch.manual_seed(0)
    model = DeepViT(TINY_S, pretrain_img_size=64, out_indices=(0,)).eval()
    block = model.blocks[0]
    x = torch.randn(2, 1 + 16, TINY_S['embed_dim']) * 3
    with torch.no_grad():
        r = block.scale_adjustment
        mid = x + block.attn(block.norm1(x * r), (4, 4)) / r
        want = mid + block.mlp(block.norm2(mid * r)) / r
        got = block(x, (4, 4))
        block.scale_adjustment = 1.0
        plain = block(x, (4, 4))
    torch.testing.assert_close(got, want)
    assert not torch.allclose(got, plain, atol=1e-4)


def test_norm_eval_keeps_the_stem_and_re_attention_batchnorms_in_eval():
    model = DeepViT(TINY_S, pretrain_img_size=64, norm_eval=True).train()
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 2 + (TINY_S['depth'] - TINY_S['re_attention_start'])  # stem bn1, bn2 + one per block
    assert all(not bn.training for bn in bns)
    before = [bn.running_mean.clone() for bn in bns]
    model(torch.randn(2, 3, 64, 64))
    assert all(torch.equal(bn.running_mean, b) for bn, b in zip(bns, before))
    assert all(bn.training for bn in DeepViT(TINY_S, pretrain_img_size=64).train().modules()
               if isinstance(bn, nn.BatchNorm2d))


def test_conv_stem_matches_the_unpadded_reference_where_patches_tile_the_image():
    """At a multiple of 16 the padding is empty: tokens are the official ``PatchEmbed_CNN``'s; elsewhere the grid
    rounds up instead of flooring, and the tokens the floor keeps are unchanged away from the padded border."""
    torch.manual_seed(0)
    stem = ConvPatchEmbed(3, 8, 16).eval()
    x = torch.randn(1, 3, 48, 64)
    with torch.no_grad():
        y = F.relu(stem.bn2(stem.conv2(F.relu(stem.bn1(stem.conv1(x))))))
        want = stem.proj(y).permute(0, 2, 3, 1)  # (B, C, h, w) -> (B, h, w, C)
        torch.testing.assert_close(stem(x), want)
        odd = stem(torch.nn.functional.pad(x, (0, 3, 0, 5)))  # 53 x 67: padded to 54 x 68 at stride 2
    assert odd.shape[1:3] == (4, 5)
    torch.testing.assert_close(odd[:, :2, :2], want[:, :2, :2])  # tokens whose receptive field misses the padding


def test_bad_re_attention_start_is_named():
    with pytest.raises(ValueError, match='re_attention_start'):
        DeepViT(dict(TINY_S, re_attention_start=9))
