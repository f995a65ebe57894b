"""CeiT -> ours against an independent reference: every block's patch-token map and the LCA's cls token.

CeiT has no official code and no public weights, so the reference below is written here in plain PyTorch from the
paper (arXiv:2103.11816), with the module names of the most used implementation (coeusguo/ceit ``ceit_model.py``)
so that its state dict goes through our ``coeusguo`` layout. It imports nothing from vit_backbones. Every
parameter and BatchNorm statistic is random (``randomise``, eval mode), the query/key projections are scaled up
so that attention is peaked, the state dict is loaded strictly through the converter and the outputs are compared
with ``allclose`` at 224x224 and 160x256, on the fused and the math attention path, in the paper's LeFF (GELU after
the last BatchNorm) and coeusguo's (none).
"""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vit_backbones.backbones import CeiT
from vit_backbones.converters import OURS, convert_to_ours, export_from_ours, identify

from .reference_init import randomise

pytestmark = pytest.mark.parity
TOL = dict(rtol=1e-4, atol=1e-4)
SMALL = dict(embed_dim=64, depth=4, num_heads=4)


class RefAttention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, last_query: bool = False) -> torch.Tensor:
        B, N, C = x.shape
        d = C // self.heads
        q, k, v = self.qkv(x).reshape(B, N, 3, self.heads, d).permute(2, 0, 3, 1, 4)
        if last_query:
            q = q[:, :, -1:]
        attn = (q @ k.transpose(-2, -1) / math.sqrt(d)).softmax(-1)
        out = (attn @ v).transpose(1, 2).reshape(B, q.shape[2], C)
        return self.proj(out)


class RefLeFF(nn.Module):
    def __init__(self, dim: int, hidden: int, out_act: bool) -> None:
        super().__init__()
        self.out_act = out_act
        self.conv1, self.bn1 = nn.Conv2d(dim, hidden, 1), nn.BatchNorm2d(hidden)
        self.conv2, self.bn2 = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden), nn.BatchNorm2d(hidden)
        self.conv3, self.bn3 = nn.Conv2d(hidden, dim, 1), nn.BatchNorm2d(dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        cls, p = x[:, :1], x[:, 1:]
        p = p.permute(0, 2, 1).reshape(x.shape[0], -1, h, w)
        p = F.gelu(self.bn1(self.conv1(p)))
        p = F.gelu(self.bn2(self.conv2(p)))
        p = self.bn3(self.conv3(p))
        p = F.gelu(p) if self.out_act else p
        return torch.cat([cls, p.flatten(2).permute(0, 2, 1)], dim=1)


class RefBlock(nn.Module):
    def __init__(self, dim: int, heads: int, out_act: bool) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.attn = RefAttention(dim, heads)
        self.leff = RefLeFF(dim, 4 * dim, out_act)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.leff(self.norm2(x), h, w)


class RefFeedForward(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class RefLCA(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.attn = RefAttention(dim, heads)
        self.feedforward = RefFeedForward(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x[:, -1:] + self.attn(self.norm1(x), last_query=True)
        return c + self.feedforward(self.norm2(c))


class RefI2TStem(nn.Module):
    def __init__(self, stem: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, stem, 7, 2, 3, bias=False)
        self.bn = nn.BatchNorm2d(stem)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(self.bn(self.conv(x)), 3, 2, 1)


class RefI2T(nn.Module):
    def __init__(self, dim: int, stem: int) -> None:
        super().__init__()
        self.backbone = RefI2TStem(stem)
        self.proj = nn.Conv2d(stem, dim, 4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.backbone(x))


class RefCeiT(nn.Module):
    """The paper's CeiT with coeusguo/ceit's names, for one input size ``size`` (H, W)."""

    def __init__(self, embed_dim: int, depth: int, num_heads: int, size: tuple[int, int], out_act: bool,
                 stem: int = 64) -> None:
        super().__init__()
        self.grid = (size[0] // 16, size[1] // 16)
        self.i2t = RefI2T(embed_dim, stem)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.grid[0] * self.grid[1], embed_dim))
        self.blocks = nn.ModuleList([RefBlock(embed_dim, num_heads, out_act) for _ in range(depth)])
        self.lca = RefLCA(embed_dim, num_heads)
        self.pos_layer_embed = nn.Parameter(torch.zeros(1, depth, embed_dim))
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.head = nn.Linear(embed_dim, 10)

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        t = self.i2t(x).flatten(2).transpose(1, 2)
        h, w = self.grid
        t = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), t], dim=1) + self.pos_embed
        maps, cls = [], []
        for block in self.blocks:
            t = block(t, h, w)
            maps.append(t[:, 1:].transpose(1, 2).reshape(x.shape[0], -1, h, w))
            cls.append(t[:, 0])
        return maps, self.norm(self.lca(torch.stack(cls, dim=1) + self.pos_layer_embed))[:, 0]


def _reference(arch: dict, size: tuple[int, int], out_act: bool, seed: int = 1) -> RefCeiT:
    ref = randomise(RefCeiT(**arch, size=size, out_act=out_act), seed=seed)
    with torch.no_grad():
        for name, param in ref.named_parameters():
            if name.endswith('attn.qkv.weight'):
                param.mul_(5.0)  # peaked attention: a wrong query or key mapping shows
    return ref


@pytest.mark.parametrize('fused', [True, False], ids=['fused', 'math'])
@pytest.mark.parametrize('out_act', [True, False], ids=['paper', 'coeusguo'])
def test_reference_maps_and_lca_token_match(fused, out_act):
    for size in [(224, 224), (160, 256)]:
        ref = _reference(SMALL, size, out_act)
        ours = CeiT(SMALL, pretrain_img_size=size, leff_out_act=out_act, out_indices=(0, 1, 2, 3),
                    output_cls_token=True, fused_attn=fused).eval()
        ours.load_state_dict(ref.state_dict(), strict=True)
        x = torch.randn(2, 3, *size)
        with torch.no_grad():
            outs = ours(x)
            maps, cls = ref(x)
        assert len(outs) == 5
        for i, (got, want) in enumerate(zip(outs[:4], maps)):
            torch.testing.assert_close(got, want, **TOL, msg=f'block {i} at {size}')
        torch.testing.assert_close(outs[4], cls, **TOL, msg=f'LCA cls token at {size}')


def test_a_real_preset_matches_at_a_small_resolution():
    arch = dict(embed_dim=192, depth=12, num_heads=3)  # CeiT-T
    ref = _reference(arch, (96, 128), out_act=True)
    ours = CeiT('tiny', pretrain_img_size=(96, 128), out_indices=(3, 11), output_cls_token=True).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        outs = ours(x)
        maps, cls = ref(x)
    torch.testing.assert_close(outs[0], maps[3], **TOL)
    torch.testing.assert_close(outs[1], maps[11], **TOL)
    torch.testing.assert_close(outs[2], cls, **TOL)


def test_layouts_are_recognised_and_export_round_trips():
    ref = _reference(SMALL, (224, 224), out_act=False)
    sd = ref.state_dict()
    assert identify(sd) == [('ceit', 'coeusguo')]
    converted = convert_to_ours(sd, 'ceit')
    assert converted.dropped == {'head.weight': 'classification head', 'head.bias': 'classification head'}
    ours = CeiT(SMALL, leff_out_act=False, out_indices=(0, 1, 2, 3), output_cls_token=True)
    assert identify(ours.state_dict()) == [('ceit', OURS)]
    assert set(converted.state_dict) == set(ours.state_dict())
    exported = export_from_ours(converted.state_dict, 'ceit', 'coeusguo').state_dict
    assert set(exported) == set(sd) - {'head.weight', 'head.bias'}
    for key, value in exported.items():
        assert torch.equal(value, sd[key]), key
