"""CPVT-specific behaviour: the PEG's math, where it sits, the cls / GAP variants and the two forms' structure."""
import pytest
import torch
import torch.nn.functional as F

from vit_backbones.backbones import CPVT
from vit_backbones.backbones.cpvt import PEG

PLAIN = dict(embed_dim=32, depth=4, num_heads=2, mlp_ratio=2.0)
PYRAMID = dict(embed_dims=(16, 16, 32, 32), depths=(2, 2, 1, 1), num_heads=(1, 1, 2, 2), mlp_ratios=(2, 2, 2, 2),
               sr_ratios=(8, 4, 2, 1))


def test_peg_is_its_input_plus_a_depthwise_conv_and_leaves_the_cls_token_alone():
    torch.manual_seed(0)
    peg = PEG(8)
    tokens = torch.randn(2, 1 + 5 * 7, 8)
    out = peg(tokens, (5, 7), num_prefix=1)
    grid = tokens[:, 1:].transpose(1, 2).reshape(2, 8, 5, 7)  # (B, N, C) -> (B, C, h, w)
    want = grid + F.conv2d(grid, peg.proj.weight, peg.proj.bias, padding=1, groups=8)
    torch.testing.assert_close(out[:, 1:], want.flatten(2).transpose(1, 2))
    assert torch.equal(out[:, :1], tokens[:, :1])
    assert peg.proj.weight.shape == (8, 1, 3, 3) and peg.proj.bias is not None


@pytest.mark.parametrize('arch', [PLAIN, PYRAMID], ids=['plain', 'pyramid'])
def test_no_position_table_and_the_peg_encodes_position_from_the_border(arch):
    """A constant image gives identical tokens everywhere except through the PEG's zero padding: the border tokens
    differ from the interior ones, and interior tokens far from the border stay equal (translation equivariance)."""
    torch.manual_seed(0)
    model = CPVT(arch, out_indices=0).eval()
    assert not any('pos_embed' in name for name in model.state_dict())
    with torch.no_grad():
        out = model(torch.ones(1, 3, 256, 256))[0][0]  # (C, h, w)
    h, w = out.shape[-2:]
    assert not torch.allclose(out[:, 0, 0], out[:, h // 2, w // 2], atol=1e-4)
    torch.testing.assert_close(out[:, h // 2, w // 2], out[:, h // 2 - 1, w // 2 + 1], rtol=1e-4, atol=1e-4)


def test_peg_sits_after_the_chosen_blocks_and_belongs_to_them():
    model = CPVT(PLAIN, peg_blocks=(0, 3), out_indices=(0, 1, 2, 3))
    assert [block.pos_block is not None for block in model.blocks] == [True, False, False, True]
    assert model.get_layer_depth('blocks.0.pos_block.proj.weight') == (1, 5)
    assert model.get_layer_depth('blocks.3.pos_block.proj.bias') == (4, 5)
    assert model.get_layer_depth('cls_token') == (0, 5)
    frozen = CPVT(PLAIN, peg_blocks=(0, 3), out_indices=(0, 1, 2, 3), frozen_stages=1).train()
    assert not any(p.requires_grad for p in frozen.blocks[0].parameters()) and not frozen.cls_token.requires_grad
    assert all(p.requires_grad for p in frozen.blocks[3].pos_block.parameters())


def test_peg_changes_the_output_of_its_block_only():
    torch.manual_seed(0)
    model = CPVT(PLAIN, out_indices=(0, 1)).eval()
    x = torch.randn(1, 3, 64, 80)
    with torch.no_grad():
        before = model(x)
        model.blocks[0].pos_block.proj.weight.zero_()
        model.blocks[0].pos_block.proj.bias.zero_()
        tokens = model.forward_tokens(x)[0][0]  # block 0 with an identity PEG
        after = model(x)
    assert not torch.allclose(before[0], after[0]) and not torch.allclose(before[1], after[1])
    torch.testing.assert_close(after[0], tokens.permute(0, 3, 1, 2))


def test_cls_and_gap_variants():
    torch.manual_seed(0)
    cls = CPVT(PLAIN, output_cls_token=True, out_indices=(1, 3)).eval()
    gap = CPVT(PLAIN, with_cls_token=False, out_indices=(1, 3)).eval()
    assert cls.cls_token.shape == (1, 1, 32) and gap.cls_token is None
    assert 'cls_token' not in gap.state_dict()
    x = torch.randn(2, 3, 48, 64)
    with torch.no_grad():
        outs = cls(x)
        feats, prefix = cls.forward_tokens(x)
    assert len(outs) == 3 and outs[2].shape == (2, 32)
    torch.testing.assert_close(outs[2], prefix[:, 0])
    assert [o.shape for o in gap(x)] == [(2, 32, 3, 4)] * 2


@pytest.mark.parametrize('arch', [PLAIN, PYRAMID], ids=['plain', 'pyramid'])
def test_fused_and_math_attention_agree(arch):
    torch.manual_seed(0)
    fused = CPVT(arch, out_indices=(0, 1, 2, 3), fused_attn=True).eval()
    math = CPVT(arch, out_indices=(0, 1, 2, 3), fused_attn=False).eval()
    math.load_state_dict(fused.state_dict())
    x = torch.randn(2, 3, 97, 131)
    with torch.no_grad():
        for a, b in zip(fused(x), math(x)):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_presets():
    small = CPVT('small', out_indices=(2, 5, 8, 11))
    assert (small.embed_dim, len(small.blocks), small.blocks[0].attn.num_heads) == (384, 12, 6)
    assert small.out_channels == (384,) * 4 and small.out_strides == (16,) * 4
    assert isinstance(small.norm, torch.nn.LayerNorm) and small.norm.eps == 1e-6  # on block 11, the last
    assert isinstance(CPVT('small', out_indices=(2, 5, 8, 10)).norm, torch.nn.Identity)  # the last is not built
    assert isinstance(CPVT('small', final_norm=False).norm, torch.nn.Identity) and CPVT('base').embed_dim == 768
    for arch, depths in [('pcpvt_small', (3, 4, 6, 3)), ('pcpvt_base', (3, 4, 18, 3)), ('pcpvt_large', (3, 8, 27, 3))]:
        model = CPVT(arch)
        assert tuple(len(s.blocks) for s in model.stages) == depths
        assert model.out_channels == (64, 128, 320, 512) and model.out_strides == (4, 8, 16, 32)
        assert [s.blocks[0].attn.sr_ratio for s in model.stages] == [8, 4, 2, 1]


def test_pyramid_pads_each_embedding_to_its_stride():
    """At a size the strides divide, padding changes nothing; elsewhere the stages round up."""
    torch.manual_seed(0)
    model = CPVT(PYRAMID).eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        outs = model(x)
        padded = model(F.pad(x[..., :61, :93], (0, 3, 0, 3)))  # zero bottom/right border: the padding rule
        cropped = model(x[..., :61, :93])
    assert [tuple(o.shape[-2:]) for o in outs] == [(16, 24), (8, 12), (4, 6), (2, 3)]
    assert [tuple(o.shape[-2:]) for o in cropped] == [(16, 24), (8, 12), (4, 6), (2, 3)]
    torch.testing.assert_close(cropped[0], padded[0])  # stage 0 pads the image itself
