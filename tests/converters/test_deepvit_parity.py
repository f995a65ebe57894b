"""Official DeepViT checkpoints -> ours give the official model's outputs: every block's patch-token map and the
final-normed cls token.

timm has no DeepViT, so the reference below is an independent plain-PyTorch transcription of the official
zhoudaquan/dvit_repo ``DeepVisionTransformer`` (``models/deep_vision_transformer.py``, ``models/layers.py``): its
module names (so its ``state_dict`` is the official key layout), its presets and its math (re-attention conv + BN on
the softmaxed map times ``reatten_scale``, the residual ``scale_adjustment``, the CNN patch stem). It imports neither
our code nor the official repository.

Each reference is random-initialised in every parameter and buffer (``randomise``: BatchNorm running statistics
too, eval mode), then its re-attention mixings are set to the identity plus a real mix and its qkv projections
scaled up, so that no head mixing or attention map is too flat to show a wrong mapping or a misplaced scale. Its
state dict (with the classifier) is converted on load (strict) and every output compared with ``allclose`` at 224
and at a non-square size, on the fused and the math attention paths.
"""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vit_backbones.backbones import DeepViT
from vit_backbones.converters import OURS, convert_to_ours, export_from_ours, identify

from .reference_init import randomise

pytestmark = pytest.mark.parity
TOL = dict(rtol=1e-4, atol=1e-4)


# ---- the reference: the official DeepVisionTransformer, transcribed -----------------------------------------
class RefReAttention(nn.Module):
    def __init__(self, dim, num_heads, qkv_bias, apply_transform, transform_scale):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.apply_transform = apply_transform
        if apply_transform:
            self.reatten_matrix = nn.Conv2d(num_heads, num_heads, 1, 1)
            self.var_norm = nn.BatchNorm2d(num_heads)
            self.reatten_scale = self.scale if transform_scale else 1.0
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        if self.apply_transform:
            attn = self.var_norm(self.reatten_matrix(attn)) * self.reatten_scale
        return self.proj((attn @ v).transpose(1, 2).reshape(B, N, C))


class RefMlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class RefBlock(nn.Module):
    """The official ``Block`` with ``re_atten=True`` (every DeepViT model)."""

    def __init__(self, dim, num_heads, mlp_ratio, apply_transform, transform_scale, scale_adjustment):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = RefReAttention(dim, num_heads, True, apply_transform, transform_scale)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = RefMlp(dim, int(dim * mlp_ratio))
        self.adjust_ratio = scale_adjustment

    def forward(self, x):
        x = x + self.attn(self.norm1(x * self.adjust_ratio)) / self.adjust_ratio
        return x + self.mlp(self.norm2(x * self.adjust_ratio)) / self.adjust_ratio


class RefPatchEmbed(nn.Module):
    def __init__(self, embed_dim, patch_size):
        super().__init__()
        self.proj = nn.Conv2d(3, embed_dim, patch_size, patch_size)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class RefPatchEmbedCNN(nn.Module):
    def __init__(self, embed_dim, patch_size):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.conv2 = nn.Conv2d(64, 64, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.proj = nn.Conv2d(64, embed_dim, kernel_size=patch_size // 2, stride=patch_size // 2)

    def forward(self, x):
        x = F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))
        return self.proj(x).flatten(2).transpose(1, 2)


class RefDeepViT(nn.Module):
    def __init__(self, img_size=(224, 224), patch_size=16, num_classes=1000, embed_dim=384, depth=16, num_heads=12,
                 mlp_ratio=3.0, apply_transform=None, transform_scale=False, use_cnn_embed=False,
                 scale_adjustment=1.0):
        super().__init__()
        embed = RefPatchEmbedCNN if use_cnn_embed else RefPatchEmbed
        self.patch_embed = embed(embed_dim, patch_size)
        grid = (img_size[0] // patch_size, img_size[1] // patch_size)
        self.grid = grid
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, grid[0] * grid[1] + 1, embed_dim))
        self.blocks = nn.ModuleList([
            RefBlock(embed_dim, num_heads, mlp_ratio, apply_transform[i], transform_scale, scale_adjustment)
            for i in range(depth)])
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()

    def forward_all(self, x):
        """Every block's patch-token map (NCHW; the last one through ``norm``) and the final-normed cls token."""
        B = x.shape[0]
        x = torch.cat((self.cls_token.expand(B, -1, -1), self.patch_embed(x)), dim=1) + self.pos_embed
        maps = []
        for i, blk in enumerate(self.blocks):
            x = blk(x)
            if i == len(self.blocks) - 1:
                x = self.norm(x)
            maps.append(x[:, 1:].transpose(1, 2).reshape(B, -1, *self.grid))  # (B, N, C) -> (B, C, h, w)
        return maps, x[:, 0]


def official_kwargs(name):
    """The official ``@register_model`` functions' arguments."""
    if name in ('16b', '24b', '32b'):
        depth = int(name[:2])
        return dict(embed_dim=384, depth=depth, num_heads=12, mlp_ratio=3, apply_transform=[True] * depth)
    if name == 's':  # deepvit_S
        return dict(embed_dim=396, depth=16, num_heads=12, mlp_ratio=3, apply_transform=[False] * 11 + [True] * 5,
                    transform_scale=True, use_cnn_embed=True, scale_adjustment=0.5)
    assert name == 'l'  # deepvit_L (deepvit_L_384: the same at img_size 384)
    return dict(embed_dim=420, depth=32, num_heads=12, mlp_ratio=3, apply_transform=[False] * 20 + [True] * 12,
                use_cnn_embed=True, scale_adjustment=0.5)


# small forms of the two official kinds of model: the S form (conv stem, plain then scaled re-attention blocks,
# residual factor 0.5) and the 16B form (patch conv, re-attention everywhere)
TINY_S = (dict(embed_dim=48, depth=4, num_heads=4, mlp_ratio=3, apply_transform=[False] * 2 + [True] * 2,
               transform_scale=True, use_cnn_embed=True, scale_adjustment=0.5),
          dict(embed_dim=48, depth=4, num_heads=4, mlp_ratio=3.0, re_attention_start=2, transform_scale=True,
               scale_adjustment=0.5, conv_stem=True))
TINY_B = (dict(embed_dim=48, depth=3, num_heads=4, mlp_ratio=3, apply_transform=[True] * 3),
          dict(embed_dim=48, depth=3, num_heads=4, mlp_ratio=3.0))
# case -> (reference kwargs, our arch, input sizes)
CASES = {
    'tiny_s': (*TINY_S, [(224, 224), (160, 256)]),
    'tiny_16b': (*TINY_B, [(224, 224), (160, 256)]),
    's': (official_kwargs('s'), 's', [(64, 96)]),  # real presets at small resolutions
    'l': (official_kwargs('l'), 'l', [(96, 64)]),
    '16b': (official_kwargs('16b'), '16b', [(64, 64)]),
}


def _reference(kwargs, img_size=(224, 224), seed=1, num_classes=10):
    """The official model with every parameter and buffer random, real head mixing and peaked attention."""
    ref = randomise(RefDeepViT(img_size=img_size, num_classes=num_classes, **kwargs), seed=seed)
    gen = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for pname, param in ref.named_parameters():
            if pname.endswith('attn.reatten_matrix.weight'):
                h = param.shape[0]
                param.copy_((torch.eye(h) + 0.3 * torch.randn(h, h, generator=gen)).view(h, h, 1, 1))
            elif pname.endswith('attn.qkv.weight'):
                param.mul_(5.0)
    return ref


@pytest.mark.parametrize('case,fused', [(case, True) for case in sorted(CASES)]
                         + [('tiny_s', False), ('tiny_16b', False)],
                         ids=lambda v: v if isinstance(v, str) else ('fused' if v else 'math'))
def test_official_blocks_and_cls_token_match(case, fused):
    ref_kwargs, arch, sizes = CASES[case]
    for size in sizes:
        ref = _reference(ref_kwargs, size)
        depth = len(ref.blocks)
        ours = DeepViT(arch, pretrain_img_size=size, out_indices=tuple(range(depth)), output_cls_token=True,
                       fused_attn=fused).eval()
        ours.load_state_dict(ref.state_dict(), strict=True)
        x = torch.randn(2, 3, *size)
        with torch.no_grad():
            outs = ours(x)
            maps, cls = ref.forward_all(x)
        assert len(outs) == depth + 1
        for i, (got, want) in enumerate(zip(outs[:depth], maps)):
            torch.testing.assert_close(got, want, **TOL, msg=f'{case} block {i} at {size}')
        torch.testing.assert_close(outs[-1], cls, **TOL, msg=f'{case} cls token at {size}')


# Parameter counts the official README states (with the 1000-class head): DeepViT-16/24/32 24.5M, 36.3M, 48.1M.
PUBLISHED_MILLIONS = {'16b': 24.5, '24b': 36.3, '32b': 48.1}


@pytest.mark.parametrize('name', ['16b', '24b', '32b', 's', 'l'])
def test_preset_parameter_counts_equal_the_official_models(name):
    """Ours (headless) plus the 1000-class classifier has exactly the official model's parameters and buffers,
    shape for shape; the README's published counts hold within rounding."""
    with torch.device('meta'):
        ref = RefDeepViT(**official_kwargs(name))
        ours = DeepViT(name)
    ref_shapes = {k: tuple(v.shape) for k, v in ref.state_dict().items() if not k.startswith('head.')}
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == ref_shapes
    total = sum(p.numel() for p in ref.parameters())
    assert sum(p.numel() for p in ours.parameters()) + ref.head.weight.numel() + ref.head.bias.numel() == total
    if name in PUBLISHED_MILLIONS:
        assert abs(total / 1e6 - PUBLISHED_MILLIONS[name]) < 0.1, total


def test_official_training_checkpoint_loads_through_init_cfg(tmp_path):
    """The timm training script's file: ``{'state_dict': ..., 'state_dict_ema': ..., 'epoch': ...}`` with the
    classifier; ``module.`` prefixes (a DDP-wrapped save) are removed too."""
    ref_kwargs, arch, _ = CASES['tiny_s']
    ref = _reference(ref_kwargs)
    sd = ref.state_dict()
    checkpoint = {'state_dict': {f'module.{k}': v for k, v in sd.items()}, 'epoch': 299, 'arch': 'deepvit_S'}
    torch.save(checkpoint, tmp_path / 'DViT_82_16b.pth.tar')
    ours = DeepViT(arch, out_indices=(1, 3), output_cls_token=True,
                   init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'DViT_82_16b.pth.tar')))
    ours.init_weights()
    ours.eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        outs = ours(x)
        maps, cls = ref.forward_all(x)
    torch.testing.assert_close(outs[0], maps[1], **TOL)
    torch.testing.assert_close(outs[1], maps[3], **TOL)
    torch.testing.assert_close(outs[2], cls, **TOL)
    assert convert_to_ours(sd, 'deepvit').dropped == {'head.weight': 'classification head',
                                                      'head.bias': 'classification head'}


def test_a_shallow_model_takes_a_full_checkpoint_strictly_and_reports_what_it_leaves_out():
    ref_kwargs, arch, _ = CASES['tiny_16b']
    ref = _reference(ref_kwargs)
    ours = DeepViT(arch, out_indices=(1,)).eval()  # blocks 0-1 only, no final norm
    ours.load_state_dict(ref.state_dict(), strict=True)
    dropped = ours.convert_state_dict(ref.state_dict(), ours.state_dict()).dropped
    assert {key.split('.')[0] + ('.' + key.split('.')[1] if key.startswith('blocks.') else '')
            for key in dropped} == {'head', 'blocks.2', 'norm'}
    assert all('out_indices' in why for key, why in dropped.items() if key.startswith('blocks.'))
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(ours(x)[0], ref.forward_all(x)[0][1], **TOL)


@pytest.mark.parametrize('case', ['tiny_s', 'tiny_16b'])
def test_export_to_the_official_layout_round_trips(case):
    ref_kwargs, arch, _ = CASES[case]
    ref = _reference(ref_kwargs)
    ours = DeepViT(arch, output_cls_token=True).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    exported = export_from_ours(ours.state_dict(), 'deepvit', 'official').state_dict
    headless = {k: v for k, v in ref.state_dict().items() if not k.startswith('head.')}
    assert set(exported) == set(headless)
    for key, value in headless.items():
        torch.testing.assert_close(exported[key], value, rtol=0, atol=0, msg=key)
    back = RefDeepViT(num_classes=0, **ref_kwargs).eval()
    back.load_state_dict(exported, strict=True)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(back.forward_all(x)[1], ours(x)[-1], **TOL)


def test_layouts_are_recognised_by_the_deepvit_family_only():
    for case in ('tiny_s', 'tiny_16b'):
        sd = _reference(CASES[case][0]).state_dict()
        assert identify(sd) == [('deepvit', 'official')]
        headless = {k: v for k, v in sd.items() if not k.startswith('head.')}
        assert identify(headless) == [('deepvit', OURS)]
    # a plain ViT (no re-attention, patch conv) is not a DeepViT checkpoint
    plain = RefDeepViT(embed_dim=48, depth=2, num_heads=4, apply_transform=[False, False]).state_dict()
    assert ('deepvit', 'official') not in identify(plain) and ('deepvit', OURS) not in identify(plain)
