"""``cls_output``: the classification feature every backbone appends after its maps (issue 11).

For every tiny backbone: ``'avg_featmap'`` appends the last stage's map averaged over space and leaves the maps as
they were; ``'cls_token'`` (families with a cls token) appends the final-normed cls token, the one
``output_cls_token`` returns, or a DeiT's (cls, distillation) pair; the other families refuse it by name.
"""
import pytest
import torch

import vit_backbones  # noqa: F401
from vit_backbones.backbones import BaseBackbone
from vit_backbones.registry import MODELS

from .tiny_archs import TINY, backbone_type

NAMES = sorted(TINY)
# Families (variants) with a cls token; every other tiny backbone must refuse cls_output='cls_token'.
CLS_TOKEN_NAMES = {'VisionTransformer', 'HybridVisionTransformer', 'HybridVisionTransformer@p8', 'CaiT', 'CeiT',
                   'CvT', 'CPVT', 'DeepViT', 'DeepViT@16b', 'PyramidVisionTransformer'}
# Families whose cls token exists only with cls_output='cls_token' / output_cls_token and does not touch the maps
# (PVT v1's token joins the last stage's attention, so its last map changes: tested in test_pvt.py).
SAME_MAPS_WITH_TOKEN = CLS_TOKEN_NAMES - {'PyramidVisionTransformer'}


def build(name: str, **overrides) -> BaseBackbone:
    kwargs = dict(TINY[name][0], **overrides)
    return MODELS.build(dict(type=f'vit_backbones.{backbone_type(name)}', **kwargs))


def with_last_stage(name: str) -> tuple[int, ...]:
    """The tiny arch's outputs plus the last stage (``cls_output`` reads it)."""
    dense = build(name)
    last = dense.num_stages - 1
    return dense.out_indices if last in dense.out_indices else (*dense.out_indices, last)


def test_every_cls_token_family_is_listed():
    """The list above names exactly the registered families that declare 'cls_token'."""
    declared = {backbone_type(n) for n in NAMES if 'cls_token' in MODELS.get(backbone_type(n)).cls_outputs}
    assert {backbone_type(n) for n in CLS_TOKEN_NAMES} == declared


@pytest.mark.parametrize('name', NAMES)
def test_avg_featmap_appends_the_pooled_last_map_and_keeps_the_maps(name):
    torch.manual_seed(0)
    out_indices = with_last_stage(name)
    dense = build(name, out_indices=out_indices).eval()
    model = build(name, out_indices=out_indices, cls_output='avg_featmap').eval()
    model.load_state_dict(dense.state_dict(), strict=True)  # no parameter of its own
    x = torch.randn(2, 3, 64, 80)
    with torch.no_grad():
        maps, outs = dense(x), model(x)
    assert len(outs) == len(maps) + 1
    for a, b in zip(outs, maps):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    last = maps[out_indices.index(model.num_stages - 1)]
    assert outs[-1].shape == (2, last.shape[1])
    torch.testing.assert_close(outs[-1], last.mean(dim=(2, 3)))


@pytest.mark.parametrize('name', sorted(CLS_TOKEN_NAMES))
def test_cls_token_is_the_final_normed_token(name):
    torch.manual_seed(0)
    out_indices = with_last_stage(name)
    model = build(name, out_indices=out_indices, cls_output='cls_token').eval()
    x = torch.randn(2, 3, 64, 80)
    with torch.no_grad():
        outs = model(x)
    assert len(outs) == len(out_indices) + 1
    token = outs[-1]
    dim = model.out_channels[out_indices.index(model.num_stages - 1)]
    if getattr(model, 'dist_token', None) is not None:  # DeiT: the (cls, distillation) pair DeiTClsHead reads
        assert isinstance(token, tuple) and len(token) == 2 and all(t.shape == (2, dim) for t in token)
    else:
        assert isinstance(token, torch.Tensor) and token.shape == (2, dim)
    if name in SAME_MAPS_WITH_TOKEN:  # the same network as output_cls_token=True, which returns each token
        reference = build(name, out_indices=out_indices, output_cls_token=True).eval()
        reference.load_state_dict(model.state_dict(), strict=True)
        with torch.no_grad():
            expected = reference(x)
        tokens = expected[len(out_indices):]
        for a, b in zip(outs[:len(out_indices)], expected[:len(out_indices)]):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
        got = token if isinstance(token, tuple) else (token,)
        assert len(got) == len(tokens)
        for a, b in zip(got, tokens):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
        # and the maps are those of the dense model with the same weights
        dense = build(name, out_indices=out_indices).eval()
        dense.load_state_dict(model.state_dict(), strict=False)
        with torch.no_grad():
            for a, b in zip(dense(x), outs):
                torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize('name', sorted(set(NAMES) - CLS_TOKEN_NAMES))
def test_families_without_a_cls_token_refuse_it_by_name(name):
    with pytest.raises(ValueError, match='cls'):
        build(name, out_indices=with_last_stage(name), cls_output='cls_token')


@pytest.mark.parametrize('name', NAMES)
def test_cls_output_checks(name):
    with pytest.raises(ValueError, match="cls_output must be None or one of .*'avg_featmap'"):
        build(name, cls_output='gap')
    first_only = 0
    with pytest.raises(ValueError, match='last (stage|level)'):
        build(name, out_indices=(first_only,), cls_output='avg_featmap')


@pytest.mark.parametrize('name', NAMES)
def test_cls_output_trains(name):
    """The appended feature carries gradients to the backbone (a linear probe on it learns through it)."""
    torch.manual_seed(0)
    model = build(name, out_indices=-1, cls_output='avg_featmap').train()
    feat = model(torch.randn(2, 3, 64, 64))[-1]
    feat.square().sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
