"""CvT behaviour beyond the shared contract: the cls token beside the maps, stochastic depth, attention scale."""
import pytest
import torch

from vit_backbones.backbones import CvT
from vit_backbones.backbones.cvt import ConvAttention
from vit_backbones.layers import DropPath, QuickGELU

from .tiny_archs import TINY

ARCH = TINY['CvT'][0]['arch']


def test_cls_token_is_returned_beside_the_maps_only_when_asked():
    torch.manual_seed(0)
    model = CvT(ARCH, output_cls_token=True).eval()
    x = torch.randn(2, 3, 64, 48)
    with torch.no_grad():
        outs = model(x)
        feats, cls = model.forward_tokens(x)
    assert [tuple(o.shape) for o in outs] == [(2, 16, 16, 12), (2, 32, 8, 6), (2, 32, 4, 3), (2, 32)]
    torch.testing.assert_close(outs[-1], model.norms[2](cls[:, 0]))
    model.output_cls_token = False
    with torch.no_grad():
        maps = model(x)
    assert len(maps) == 3 and all(torch.equal(a, b) for a, b in zip(maps, outs[:3]))


def test_only_the_last_stage_has_a_cls_token_and_stochastic_depth():
    model = CvT('cvt-13', drop_path_rate=0.2)
    assert [s.cls_token is not None for s in model.stages] == [False, False, True]
    rates = [[b.drop_path.drop_prob if isinstance(b.drop_path, DropPath) else 0.0 for b in s.blocks]
             for s in model.stages]
    assert rates[:2] == [[0.0], [0.0, 0.0]]
    torch.testing.assert_close(torch.tensor(rates[2]), torch.linspace(0, 0.2, 10))


def test_attention_scale_is_the_stage_width_and_activation_the_official_one():
    model = CvT('cvt-13')
    scales = {m.scale for s in model.stages[1:] for m in s.modules() if isinstance(m, ConvAttention)}
    assert scales == {192 ** -0.5, 384 ** -0.5}  # not the head width 64
    assert isinstance(model.stages[0].blocks[0].mlp.act, QuickGELU)
    assert isinstance(CvT('cvt-13', act='gelu').stages[0].blocks[0].mlp.act, torch.nn.GELU)


def test_keys_and_values_are_strided_queries_are_not():
    attn = CvT(ARCH).stages[0].blocks[0].attn
    fmap = torch.randn(1, 16, 9, 7)
    assert attn.conv_proj_q(fmap).shape == (1, 63, 16) and attn.conv_proj_k(fmap).shape == (1, 20, 16)


@pytest.mark.parametrize('size', [(224, 224), (230, 197)])
def test_sizes_not_divisible_by_four_round_up(size):
    model = CvT(ARCH, out_indices=(0,)).eval()
    assert tuple(model(torch.randn(1, 3, *size))[0].shape[-2:]) == tuple(-(-s // 4) for s in size)
