"""ViT-Adapter modules against the independent reference (``tests/converters/vit_adapter_reference.py``).

Each reference module is random-initialised in the official layout, its state dict loaded strictly into ours, and
the outputs compared; the deformable attention at value ratios 0.5 and 1.0, with gradients.
"""
import math

import pytest
import torch
from torch import nn

from vit_backbones.backbones.vit_adapter import (
    ConvFFN,
    DeformInputs,
    Extractor,
    Injector,
    InteractionBlock,
    MSDeformAttn,
    SpatialPriorModule,
    deform_inputs,
    init_adapter_weights,
    shape_tensors,
)

from ..converters.reference_init import randomise
from ..converters.vit_adapter_reference import (
    RefBlock,
    RefConvFFN,
    RefExtractor,
    RefInjector,
    RefInteractionBlock,
    RefMSDeformAttn,
    RefSpatialPriorModule,
    liven,
    official_grid_bias,
    ref_deform_inputs,
)

TOL = dict(rtol=1e-5, atol=1e-5)
DIM, HEADS, POINTS = 32, 4, 4
IMAGE = (2, 3, 64, 96)  # a 4 x 6 ViT grid: 1/8, 1/16, 1/32 levels of 8x12, 4x6, 2x3


def _load(ours: nn.Module, ref: nn.Module) -> nn.Module:
    ours.load_state_dict(ref.state_dict(), strict=True)
    return ours.eval()


def _inputs(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(*IMAGE, generator=gen)
    (r1, s1, _), (r2, s2, _) = ref_deform_inputs(x)
    h, w = x.shape[-2:]
    n = h * w // 256
    tokens = torch.randn(2, n, DIM, generator=gen)  # ViT tokens
    prior = torch.randn(2, n * 21 // 4, DIM, generator=gen)  # 1/8 + 1/16 + 1/32 tokens
    return x, tokens, prior, DeformInputs(r1, tuple(map(tuple, s1.tolist()))), \
        DeformInputs(r2, tuple(map(tuple, s2.tolist())))


def test_deform_inputs_are_the_official_ones():
    x = torch.zeros(*IMAGE)
    for ours, ref in zip(deform_inputs(64, 96, x.device), ref_deform_inputs(x)):
        for a, b in zip([ours.reference_points, *shape_tensors(ours.shapes, x.device)], ref):
            assert a.dtype == b.dtype
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    inject, extract = deform_inputs(64, 96, x.device)
    assert inject.reference_points.shape == (1, 24, 1, 2) and inject.shapes == ((8, 12), (4, 6), (2, 3))
    assert extract.reference_points.shape == (1, 126, 1, 2) and extract.shapes == ((4, 6),)


@pytest.mark.parametrize('ratio', [0.5, 1.0])
@pytest.mark.parametrize('per_level_points', [False, True])
def test_deformable_attention_matches_the_reference(ratio, per_level_points):
    ref = liven(randomise(RefMSDeformAttn(DIM, 3, HEADS, POINTS, ratio), seed=1))
    ours = _load(MSDeformAttn(DIM, HEADS, 3, POINTS, ratio), ref)
    assert ours.value_proj.weight.shape == (int(DIM * ratio), DIM) and ours.output_proj.in_features == int(DIM * ratio)
    _, _, prior, inject, _ = _inputs()
    gen = torch.Generator().manual_seed(3)
    query = torch.randn(2, 24, DIM, generator=gen, requires_grad=True)
    points = torch.rand(2, 24, 3, 2, generator=gen) if per_level_points else inject.reference_points
    value = prior.clone().requires_grad_(True)
    out = ours(query, points, value, inject.shapes)
    expected = ref(query, points, value, *shape_tensors(inject.shapes, value.device))
    assert out.shape == (2, 24, DIM) and expected.abs().max() > 0.1
    torch.testing.assert_close(out, expected, **TOL)
    grads = torch.autograd.grad(out.square().sum(), [query, value, *ours.parameters()])
    ref_grads = torch.autograd.grad(expected.square().sum(), [query, value, *ref.parameters()])
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_deformable_attention_has_no_residual_and_the_official_init():
    attn = MSDeformAttn(DIM, HEADS, 3, POINTS, 0.5)
    assert not hasattr(attn, 'dropout')
    assert torch.all(attn.sampling_offsets.weight == 0)
    torch.testing.assert_close(attn.sampling_offsets.bias.data, official_grid_bias(HEADS, 3, POINTS))
    assert torch.all(attn.attention_weights.weight == 0) and torch.all(attn.attention_weights.bias == 0)
    for proj in (attn.value_proj, attn.output_proj):
        bound = math.sqrt(6 / sum(proj.weight.shape))  # Xavier-uniform
        assert proj.weight.abs().max() <= bound and proj.weight.std() > bound / 3 and torch.all(proj.bias == 0)
    # zero values give a zero output: nothing of the query is added back
    _, _, prior, inject, _ = _inputs()
    with torch.no_grad():
        attn.value_proj.bias.zero_()
        attn.output_proj.bias.zero_()
        out = attn(torch.randn(2, 24, DIM), inject.reference_points, torch.zeros_like(prior), inject.shapes)
    assert torch.all(out == 0)


def test_deformable_attention_checks_the_ratio():
    with pytest.raises(ValueError, match='deform_ratio'):
        MSDeformAttn(DIM, 6, 1, POINTS, 0.5)  # 16 value channels over 6 heads


def test_deformable_attention_samples_in_float32_under_autocast():
    ref = liven(randomise(RefMSDeformAttn(DIM, 3, HEADS, POINTS, 0.5), seed=1))
    ours = _load(MSDeformAttn(DIM, HEADS, 3, POINTS, 0.5), ref)
    torch.manual_seed(0)
    _, _, prior, inject, _ = _inputs()
    query = torch.randn(2, 24, DIM)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = ours(query, inject.reference_points, prior, inject.shapes)
    assert out.dtype == torch.bfloat16
    expected = ref(query, inject.reference_points, prior, *shape_tensors(inject.shapes, prior.device))
    # bf16 projections around float32 sampling: errors of a few bf16 ulps (2**-8) of the output's scale
    assert (out.float() - expected).abs().max() <= 0.05 * expected.abs().max()


def test_spatial_prior_module_matches_the_reference():
    ref = randomise(RefSpatialPriorModule(8, DIM), seed=2)
    ours = _load(SpatialPriorModule(3, 8, DIM), ref)
    x = _inputs()[0]
    with torch.no_grad():
        outs, expected = ours(x), ref(x)
    assert outs[0].shape == (2, DIM, 16, 24) and [o.shape[1] for o in outs[1:]] == [96, 24, 6]
    for a, b in zip(outs, expected):
        torch.testing.assert_close(a, b, **TOL)


def test_spatial_prior_norm_is_configurable():
    spm = SpatialPriorModule(3, 8, DIM, norm_cfg=dict(type='SyncBN'))
    assert sum(isinstance(m, nn.SyncBatchNorm) for m in spm.modules()) == 6
    assert sum(type(m) is nn.BatchNorm2d for m in SpatialPriorModule(3, 8, DIM).modules()) == 6


def test_conv_ffn_matches_the_reference():
    ref = randomise(RefConvFFN(DIM, 8), seed=3)
    ours = _load(ConvFFN(DIM, 8), ref)
    prior = _inputs()[2]
    with torch.no_grad():
        torch.testing.assert_close(ours(prior, [(8, 12), (4, 6), (2, 3)]), ref(prior, 4, 6), **TOL)


def test_injector_matches_the_reference():
    ref = liven(randomise(RefInjector(DIM, HEADS, POINTS, 0.5), seed=4))
    ours = _load(Injector(DIM, HEADS, POINTS, 3, 0.5), ref)
    _, tokens, prior, inject, _ = _inputs()
    with torch.no_grad():
        out = ours(tokens, prior, inject)
        expected = ref(tokens, inject.reference_points, prior, *shape_tensors(inject.shapes, prior.device))
    assert (out - tokens).abs().max() > 0.1
    torch.testing.assert_close(out, expected, **TOL)


@pytest.mark.parametrize('with_cffn', [True, False])
def test_extractor_matches_the_reference(with_cffn):
    ref = liven(randomise(RefExtractor(DIM, HEADS, POINTS, 1.0, with_cffn), seed=5))
    ours = _load(Extractor(DIM, HEADS, POINTS, 1, 1.0, with_cffn=with_cffn, drop_path=0.3), ref)
    _, tokens, prior, _, extract = _inputs()
    with torch.no_grad():
        out = ours(prior, tokens, extract, [(8, 12), (4, 6), (2, 3)])
        expected = ref(prior, extract.reference_points, tokens, *shape_tensors(extract.shapes, prior.device), 4, 6)
    torch.testing.assert_close(out, expected, **TOL)


def test_interaction_block_matches_the_reference():
    ref = liven(randomise(RefInteractionBlock(DIM, HEADS, POINTS, 0.5, extra_extractor=True), seed=6))
    ours = _load(InteractionBlock(DIM, HEADS, POINTS, deform_ratio=0.5, extra_extractor=True), ref)
    blocks = randomise(nn.ModuleList([RefBlock(DIM, 2, 2.0, True, None) for _ in range(2)]), seed=7)
    _, tokens, prior, inject, extract = _inputs()

    def run_blocks(x):
        for block in blocks:
            x = block(x, 4, 6)
        return x

    with torch.no_grad():
        x, c = ours(tokens, prior, run_blocks, inject, extract, [(8, 12), (4, 6), (2, 3)])
        official = [[d.reference_points, *shape_tensors(d.shapes, prior.device)] for d in (inject, extract)]
        ex, ec = ref(tokens, prior, blocks, *official, 4, 6)
    torch.testing.assert_close(x, ex, **TOL)
    torch.testing.assert_close(c, ec, **TOL)


@pytest.mark.parametrize('module', ['injector', 'extractor'])
def test_with_cp_gives_the_same_outputs_and_gradients(module):
    torch.manual_seed(0)
    _, tokens, prior, inject, extract = _inputs()
    shapes = [(8, 12), (4, 6), (2, 3)]
    results = []
    for with_cp in (False, True):
        torch.manual_seed(0)
        layer = Injector(DIM, HEADS, POINTS, 3, 0.5, init_values=0.5, with_cp=with_cp) if module == 'injector' \
            else Extractor(DIM, HEADS, POINTS, 1, 0.5, with_cp=with_cp)
        x, c = tokens.clone().requires_grad_(True), prior.clone().requires_grad_(True)
        out = layer(x, c, inject) if module == 'injector' else layer(c, x, extract, shapes)
        grads = torch.autograd.grad(out.square().sum(), [x, c, *layer.parameters()])
        results.append((out, grads))
    torch.testing.assert_close(results[0][0], results[1][0])
    for a, b in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(a, b)


def test_official_random_init_of_the_adapter():
    block = InteractionBlock(DIM, HEADS, POINTS, init_values=1e-6, extra_extractor=True)
    for param in block.parameters():
        nn.init.constant_(param, 7.0)
    block.apply(init_adapter_weights)
    assert not any(torch.any(p == 7.0) for p in block.parameters())
    for attn in [m for m in block.modules() if isinstance(m, MSDeformAttn)]:
        assert torch.all(attn.sampling_offsets.weight == 0) and torch.all(attn.attention_weights.weight == 0)
        torch.testing.assert_close(attn.sampling_offsets.bias.data, official_grid_bias(HEADS, attn.num_levels, POINTS))
    ffn = block.extractor.ffn
    assert abs(ffn.fc1.weight.std().item() - 0.02) < 0.005 and torch.all(ffn.fc1.bias == 0)
    dw = ffn.dwconv.dwconv.weight
    assert abs(dw.std().item() - math.sqrt(2 / 9)) < 0.1 and torch.all(ffn.dwconv.dwconv.bias == 0)
    assert torch.all(block.injector.gamma == 1e-6)
    assert torch.all(block.extractor.query_norm.weight == 1) and torch.all(block.extractor.query_norm.bias == 0)


def test_backbone_switches_with_cp_everywhere_and_builds_with_sync_bn():
    from vit_backbones.backbones import ViTAdapter
    model = ViTAdapter(dict(embed_dim=32, depth=4, num_heads=2), pretrain_img_size=64, conv_inplane=8,
                       deform_num_heads=2, norm_cfg=dict(type='SyncBN'))
    adapters = [m for m in model.interactions.modules() if isinstance(m, (Injector, Extractor))]
    assert len(adapters) == 4 + 4 + 2 and not any(m.with_cp for m in adapters)
    model.with_cp = True
    assert all(m.with_cp for m in adapters) and all(block.with_cp for block in model.blocks)
    assert isinstance(model.norm1, nn.SyncBatchNorm) and isinstance(model.spm.stem[1], nn.SyncBatchNorm)
    assert model.interaction_indexes == [(0, 0), (1, 1), (2, 2), (3, 3)]
    assert [type(m).__name__ for m in model.interactions[-1].extra_extractors] == ['Extractor'] * 2
    assert model.interactions[0].extra_extractors is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA (mmcv compiled kernel)')
@pytest.mark.parametrize('ratio', [0.5, 1.0])
def test_cuda_kernel_matches_the_reference(ratio):
    ref = liven(randomise(RefMSDeformAttn(DIM, 3, HEADS, POINTS, ratio), seed=1))
    ours = _load(MSDeformAttn(DIM, HEADS, 3, POINTS, ratio), ref).cuda()
    _, _, prior, inject, _ = _inputs()
    query = torch.randn(2, 24, DIM, requires_grad=True)
    expected = ref(query, inject.reference_points, prior, *shape_tensors(inject.shapes, prior.device))
    q = query.detach().cuda().requires_grad_(True)
    out = ours(q, inject.reference_points.cuda(), prior.cuda(), inject.shapes)
    torch.testing.assert_close(out.cpu(), expected, **TOL)
    grad, = torch.autograd.grad(out.square().sum(), q)
    ref_grad, = torch.autograd.grad(expected.square().sum(), query)
    torch.testing.assert_close(grad.cpu(), ref_grad, rtol=1e-4, atol=1e-4)
    with torch.autocast('cuda', dtype=torch.float16):
        half = ours(q, inject.reference_points.cuda(), prior.cuda(), inject.shapes)
    assert half.dtype == torch.float16
    torch.testing.assert_close(half.float().cpu(), expected, rtol=0.02, atol=0.02)
