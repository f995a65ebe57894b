"""CPVT parity: timm Twins-PCPVT checkpoints -> our pyramid form give timm's four stage maps; the plain form gives
the maps of an independent implementation of the paper's Algorithm 1 (no timm model exists for plain CPVT).

Every reference is random-initialised in every parameter (``randomise``), with its PEG kernels and query/key(-value)
projections scaled up so that neither the PEG nor an attention map is too weak or too flat to show a wrong mapping.
State dicts are loaded strictly (through the load hook) and outputs compared with ``allclose`` at 224x224 and at a
non-square size divisible by 32 (where timm's flooring patch embeddings and our zero-padding ones agree), on the
fused and the math attention paths.
"""
from functools import partial

import pytest
import timm
import timm.layers
import torch
from timm.models.vision_transformer import Block
from torch import nn

from vit_backbones.backbones import CPVT
from vit_backbones.converters import OURS, convert_to_ours, export_from_ours, identify
from vit_backbones.converters.cpvt import cpvt_ours_to_timm

from .reference_init import randomise

pytestmark = pytest.mark.parity
TOL = dict(rtol=1e-4, atol=1e-4)
# The pyramid's last stages sit 13 blocks deep with maps of std ~2: float32 rounding of fused vs timm's kernels
# reaches ~1.3e-4 there (the plain form matches its reference exactly).
PYRAMID_TOL = dict(rtol=1e-4, atol=3e-4)
SIZES = [(224, 224), (160, 256)]


def _sharpen(model: nn.Module, seed: int) -> nn.Module:
    """Order-one PEG kernels and scaled-up query/key projections on a randomised model."""
    gen = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if 'pos_block' in name and name.endswith('weight'):
                param.copy_(torch.randn(param.shape, generator=gen) * 0.3)
            elif name.endswith(('attn.qkv.weight', 'attn.q.weight', 'attn.kv.weight')):
                param.mul_(5.0)
    return model


def timm_pcpvt(name: str = 'twins_pcpvt_small', seed: int = 0) -> nn.Module:
    return _sharpen(randomise(timm.create_model(name, pretrained=False, num_classes=0), seed=seed), seed)


def timm_maps(ref: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    with torch.no_grad():
        return ref.forward_intermediates(x, intermediates_only=True)


@pytest.mark.parametrize('fused', [True, False], ids=['fused', 'math'])
def test_timm_pcpvt_small_parity_all_stages(fused):
    ref = timm_pcpvt()
    for module in ref.modules():
        if hasattr(module, 'fused_attn'):
            module.fused_attn = fused
    ours = CPVT('pcpvt_small', fused_attn=fused).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)  # converted by the load hook
    torch.manual_seed(0)
    for size in SIZES:
        x = torch.randn(2, 3, *size)
        with torch.no_grad():
            got = ours(x)
        want = timm_maps(ref, x)
        assert [tuple(g.shape) for g in got] == [tuple(w.shape) for w in want]
        for g, w in zip(got, want):
            torch.testing.assert_close(g, w, **PYRAMID_TOL)


@pytest.mark.parametrize('arch', ['pcpvt_small', 'pcpvt_base', 'pcpvt_large'])
def test_every_pcpvt_preset_takes_its_timm_checkpoint_strictly(arch):
    ref = timm.create_model(f'twins_{arch}', pretrained=False, num_classes=5)
    converted = convert_to_ours(ref.state_dict(), 'cpvt')
    assert converted.source == 'timm'
    assert set(converted.dropped) == {'norm.weight', 'norm.bias', 'head.weight', 'head.bias'}
    ours = CPVT(arch)
    own = ours.state_dict()
    assert converted.state_dict.keys() == own.keys()
    assert all(converted.state_dict[k].shape == v.shape for k, v in own.items())


def test_pretrained_init_cfg_loads_an_offline_timm_file(tmp_path):
    ref = timm_pcpvt(seed=3)
    torch.save({'state_dict': ref.state_dict()}, tmp_path / 'twins_pcpvt_small.pth')
    ours = CPVT('pcpvt_small', init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'twins_pcpvt_small.pth')))
    ours.init_weights()
    x = torch.randn(1, 3, 96, 128)
    for g, w in zip(ours.eval()(x), timm_maps(ref, x)):
        torch.testing.assert_close(g, w, **PYRAMID_TOL)


def test_export_to_timm_round_trip_and_plain_refused():
    torch.manual_seed(0)
    ours = CPVT('pcpvt_small').eval()
    for module in ours.modules():  # non-trivial norms and biases
        for name, param in module.named_parameters(recurse=False):
            if name == 'bias' or isinstance(module, nn.LayerNorm):
                param.data.add_(0.1 * torch.randn_like(param))
    exported = export_from_ours(ours.state_dict(), 'cpvt', 'timm').state_dict
    ref = timm.create_model('twins_pcpvt_small', pretrained=False, num_classes=0).eval()
    result = ref.load_state_dict(exported, strict=False)
    assert set(result.missing_keys) == {'norm.weight', 'norm.bias'} and not result.unexpected_keys
    x = torch.randn(1, 3, 128, 96)
    with torch.no_grad():
        for g, w in zip(ours(x), timm_maps(ref, x)):
            torch.testing.assert_close(g, w, **PYRAMID_TOL)
    back = convert_to_ours(dict(exported, **{'norm.weight': torch.ones(512), 'norm.bias': torch.zeros(512)}), 'cpvt')
    assert back.state_dict.keys() == ours.state_dict().keys()
    assert all(torch.equal(back.state_dict[k], v) for k, v in ours.state_dict().items())
    with pytest.raises(ValueError, match='plain CPVT'):
        cpvt_ours_to_timm(CPVT(dict(embed_dim=32, depth=2, num_heads=2)).state_dict())


def test_layouts_are_recognised_by_this_family_only():
    pyramid = timm.create_model('twins_pcpvt_small', pretrained=False, num_classes=3).state_dict()
    assert identify(pyramid) == [('cpvt', 'timm')]
    svt = timm.create_model('twins_svt_small', pretrained=False, num_classes=3).state_dict()
    assert ('cpvt', 'timm') not in identify(svt)  # grouped attention: not a PCPVT
    for arch in ('small', 'pcpvt_small'):
        assert identify(CPVT(arch).state_dict()) == [('cpvt', OURS)]


# ---- plain form: an independent implementation of the paper's Algorithm 1 on timm's DeiT pieces ----------------
class PaperPEG(nn.Module):
    """Algorithm 1's PEG: the cls token is split off, the patch tokens go through ``proj(feat) + feat``."""

    def __init__(self, dim: int, cls: bool) -> None:
        super().__init__()
        self.proj = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)
        self.cls = cls

    def forward(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:
        B, N, C = x.shape
        cls_token, feat_token = (x[:, :1], x[:, 1:]) if self.cls else (x[:, :0], x)
        cnn_feat = feat_token.transpose(1, 2).view(B, C, H, W)
        x = (self.proj(cnn_feat) + cnn_feat).flatten(2).transpose(1, 2)
        return torch.cat((cls_token, x), dim=1)


class PaperCPVT(nn.Module):
    """CPVT / CPVT-GAP as the paper's Algorithm 1: DeiT without position embedding, the PEG after block 0; returns
    every block's patch-token map (the last after the final norm)."""

    def __init__(self, dim: int, depth: int, heads: int, cls: bool) -> None:
        super().__init__()
        self.patch_embed = timm.layers.PatchEmbed(224, 16, 3, dim, strict_img_size=False)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if cls else None
        self.blocks = nn.ModuleList([Block(dim, heads, 4.0, qkv_bias=True,
                                           norm_layer=partial(nn.LayerNorm, eps=1e-6)) for _ in range(depth)])
        self.pos_block = PaperPEG(dim, cls)
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        B, _, H, W = x.shape
        h, w = H // 16, W // 16
        x = self.patch_embed(x)
        if self.cls_token is not None:
            x = torch.cat((self.cls_token.expand(B, -1, -1), x), dim=1)
        outs = []
        for i, blk in enumerate(self.blocks):
            x = blk(x)
            if i == 0:
                x = self.pos_block(x, h, w)
            y = self.norm(x) if i == len(self.blocks) - 1 else x
            y = y[:, 1:] if self.cls_token is not None else y
            outs.append(y.transpose(1, 2).reshape(B, -1, h, w))  # (B, N, C) -> (B, C, h, w)
        return outs


def paper_to_ours(sd: dict) -> dict:
    """Algorithm 1's names are DeiT's plus a top-level ``pos_block``; ours nests the PEG in the block it follows."""
    return {k.replace('pos_block.', 'blocks.0.pos_block.') if k.startswith('pos_block.') else k: v
            for k, v in sd.items()}


@pytest.mark.parametrize('cls', [True, False], ids=['cls', 'gap'])
@pytest.mark.parametrize('fused', [True, False], ids=['fused', 'math'])
def test_plain_cpvt_ti_matches_the_paper_algorithm(cls, fused):
    ref = _sharpen(randomise(PaperCPVT(192, 12, 3, cls), seed=1), seed=1)
    for block in ref.blocks:
        block.attn.fused_attn = fused
    ours = CPVT('tiny', with_cls_token=cls, out_indices=tuple(range(12)), fused_attn=fused).eval()
    ours.load_state_dict(paper_to_ours(ref.state_dict()), strict=True)
    for size in SIZES:
        x = torch.randn(2, 3, *size)
        with torch.no_grad():
            got, want = ours(x), ref(x)
        assert len(got) == len(want) == 12
        for g, w in zip(got, want):
            torch.testing.assert_close(g, w, **TOL)


def test_deit_checkpoint_initialises_the_plain_form():
    """A DeiT checkpoint fills everything but the PEG; with an identity PEG and DeiT's position embedding zeroed,
    the two models compute the same maps."""
    deit = randomise(timm.create_model('deit_tiny_patch16_224', pretrained=False, num_classes=7,
                                         dynamic_img_size=True), seed=2)
    with torch.no_grad():
        deit.pos_embed.zero_()
    converted = convert_to_ours(deit.state_dict(), 'cpvt')
    assert converted.source == 'deit'
    assert set(converted.dropped) == {'pos_embed', 'head.weight', 'head.bias'}
    ours = CPVT('tiny', out_indices=(3, 11)).eval()
    result = ours.load_state_dict(deit.state_dict(), strict=False)
    assert set(result.missing_keys) == {'blocks.0.pos_block.proj.weight', 'blocks.0.pos_block.proj.bias'}
    assert not result.unexpected_keys
    with torch.no_grad():
        ours.blocks[0].pos_block.proj.weight.zero_()
        ours.blocks[0].pos_block.proj.bias.zero_()
    x = torch.randn(1, 3, 160, 256)
    with torch.no_grad():
        want = deit.forward_intermediates(x, indices=[3, 11], norm=True, intermediates_only=True)
        got = ours(x)
    # timm normalises every intermediate with norm=True; ours only the last block's map (the final norm)
    torch.testing.assert_close(got[1], want[1], **TOL)
    with torch.no_grad():
        raw = deit.forward_intermediates(x, indices=[3], norm=False, intermediates_only=True)
    torch.testing.assert_close(got[0], raw[0], **TOL)
