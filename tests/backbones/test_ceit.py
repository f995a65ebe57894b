"""CeiT specifics: the paper's parameter counts and FLOPs, I2T sizes, LeFF's locality and cls bypass, the LCA."""
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from vit_backbones.backbones import CeiT
from vit_backbones.backbones.ceit import LayerClassAttention, LeFF

TINY = dict(embed_dim=32, depth=4, num_heads=2, mlp_ratio=2.0)
# the paper's Table (ImageNet, 224x224): parameters (M) of the classifier, GFLOPs (multiply-accumulates)
PAPER = {'tiny': (6.4, 1.2), 'small': (24.2, 4.5)}


def _classifier_params(model: CeiT, num_classes: int = 1000) -> int:
    """Backbone with the LCA and its norm, plus a linear head on the cls token."""
    return sum(p.numel() for p in model.parameters()) + model.embed_dim * num_classes + num_classes


@pytest.mark.parametrize('arch', sorted(PAPER))
def test_parameter_counts_and_flops_match_the_paper(arch):
    params, gmacs = PAPER[arch]
    model = CeiT(arch, output_cls_token=True, fused_attn=False).eval()  # math path: attention products counted
    assert round(_classifier_params(model) / 1e6, 1) == params
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.randn(1, 3, 224, 224))
    flops = {str(op): n for op, n in counter.get_flop_counts()['Global'].items()}
    dim, depth, tokens = model.embed_dim, 12, 14 * 14 + 1
    # flop_counter counts 2 FLOPs per multiply-accumulate; the attention products are q k^T and attn v per block,
    # and the LCA's (one query over the ``depth`` cls tokens)
    assert flops['aten.bmm'] / 2 == depth * 2 * tokens * tokens * dim + 2 * depth * dim
    # the paper's numbers are the convolutions and linears alone (within 3%), as module-hook counters see them
    convs_and_linears = (flops['aten.convolution'] + flops['aten.addmm']) / 2e9
    assert abs(convs_and_linears - gmacs) / gmacs < 0.03, convs_and_linears


def test_a_32_channel_stem_would_miss_the_paper_count():
    model = CeiT('small', stem_channels=32, output_cls_token=True)
    assert round(_classifier_params(model) / 1e6, 1) != PAPER['small'][0]


@pytest.mark.parametrize('size', [(1, 1), (15, 17), (16, 16), (17, 33), (230, 197)])
def test_i2t_gives_a_ceil_h_over_16_grid(size):
    embed = CeiT(TINY, pretrain_img_size=64, stem_channels=8).patch_embed.eval()
    stem = embed.pool(embed.bn(embed.conv(torch.randn(1, 3, *size))))
    assert tuple(stem.shape[-2:]) == tuple(-(-s // 4) for s in size)  # conv /2 and pool /2 round up
    assert tuple(embed(torch.randn(1, 3, *size)).shape[1:3]) == tuple(-(-s // 16) for s in size)


def test_leff_passes_the_cls_token_and_mixes_only_a_3x3_neighbourhood():
    torch.manual_seed(0)
    leff = LeFF(8, 16).eval()
    h, w = 5, 6
    x = torch.randn(1, 1 + h * w, 8)
    y = leff(x, (h, w))
    torch.testing.assert_close(y[:, 0], x[:, 0])  # Concat(x_c, ...): the cls row is the input's
    x2 = x.clone()
    x2[:, 1 + 2 * w + 3] += 1.0  # perturb the patch at (2, 3)
    changed = (leff(x2, (h, w))[0, 1:] - y[0, 1:]).abs().amax(-1).reshape(h, w) > 0
    expected = torch.zeros(h, w, dtype=torch.bool)
    expected[1:4, 2:5] = True  # one depth-wise 3x3 conv: exactly the neighbours see it
    assert torch.equal(changed, expected)


def test_leff_out_act_is_the_paper_gelu_after_the_last_batchnorm():
    torch.manual_seed(0)
    paper, coeusguo = LeFF(8, 16, out_act=True).eval(), LeFF(8, 16, out_act=False).eval()
    coeusguo.load_state_dict(paper.state_dict())
    x = torch.randn(2, 1 + 12, 8)
    torch.testing.assert_close(paper(x, (3, 4))[:, 1:], torch.nn.functional.gelu(coeusguo(x, (3, 4))[:, 1:]))


def test_lca_queries_with_the_last_cls_token_over_all_blocks():
    torch.manual_seed(0)
    lca = LayerClassAttention(16, 4, 2, layer_embed=False).eval()
    x = torch.randn(2, 4, 16)
    out = lca(x)
    assert out.shape == (2, 1, 16)
    torch.testing.assert_close(lca(x[:, [2, 0, 1, 3]]), out)  # keys/values are a set; the last token queries
    assert not torch.allclose(lca(x[:, [0, 1, 3, 2]]), out)
    x2 = x.clone()
    x2[:, 0] += torch.randn(2, 16)  # the first block's cls token reaches the output through attention
    assert not torch.allclose(lca(x2), out)


def test_output_cls_token_builds_every_block_and_the_lca():
    model = CeiT(TINY, pretrain_img_size=64, stem_channels=8, out_indices=(1,), output_cls_token=True).eval()
    assert len(model.blocks) == 4 and model.lca is not None
    with torch.no_grad():
        outs = model(torch.randn(2, 3, 64, 80))
    assert [tuple(o.shape) for o in outs] == [(2, 32, 4, 5), (2, 32)]
    dense = CeiT(TINY, pretrain_img_size=64, stem_channels=8, out_indices=(1,))
    assert len(dense.blocks) == 2 and dense.lca is None and not any(k.startswith('lca.') for k in dense.state_dict())


def test_a_full_state_dict_loads_into_a_dense_model_leaving_out_what_it_does_not_build():
    full = CeiT(TINY, pretrain_img_size=64, stem_channels=8, out_indices=(0, 1, 2, 3), output_cls_token=True)
    dense = CeiT(TINY, pretrain_img_size=64, stem_channels=8, out_indices=(1,))
    converted = dense.convert_state_dict(full.state_dict(), dense.state_dict())
    assert set(converted.state_dict) == set(dense.state_dict())
    assert any(k.startswith('lca.') for k in converted.dropped) and 'norm.weight' in converted.dropped
    assert any(k.startswith('blocks.3.') for k in converted.dropped)
    dense.load_state_dict(full.state_dict(), strict=True)
    torch.testing.assert_close(dense.blocks[1].leff.conv2.weight, full.blocks[1].leff.conv2.weight)


def test_unknown_presets_are_refused():
    with pytest.raises(ValueError, match='arch'):
        CeiT('large')


def test_plain_vit_necks_work_unchanged():
    from vit_backbones.necks import SimpleFeaturePyramid
    model = CeiT(TINY, pretrain_img_size=64, stem_channels=8, out_indices=(1, 3)).eval()
    neck = SimpleFeaturePyramid.for_backbone(model, out_channels=16).eval()
    with torch.no_grad():
        outs = neck(model(torch.randn(1, 3, 96, 128))[-1:])
    assert [tuple(o.shape[-2:]) for o in outs] == [(24, 32), (12, 16), (6, 8), (3, 4), (2, 2)]
