"""timm hybrid ViT checkpoints -> ours give timm's outputs: the ResNet stages' maps and every block's.

Each reference is random-initialised (every parameter, so that no zero bias or unit norm hides a wrong mapping),
its state dict loaded strictly into ours through the load hook, and the maps compared at two input sizes, one of
them odd so that every 'SAME' padding takes its other branch and the position embedding is resized. timm runs with
``dynamic_img_size`` (position embedding resampled to the grid) and ``dynamic_img_pad`` (the R+Ti's 8x8 patches pad
the stem map at the bottom/right, as ours do).
"""
import pytest
import timm
import torch
from timm.layers import StdConv2dSame
from timm.layers.pool2d_same import MaxPool2dSame

from vit_backbones.backbones import HybridVisionTransformer
from vit_backbones.backbones.vit_hybrid import StdConv2d, pad_same
from vit_backbones.converters import FAMILIES, convert_to_ours, export_from_ours
from vit_backbones.engine.checkpoint_convert import convert_checkpoint_file

from .reference_init import randomise

pytestmark = pytest.mark.parity
TOL64 = dict(rtol=1e-9, atol=1e-9)

# case -> (timm name, timm kwargs, our kwargs, input sizes, ResNet stages compared)
CASES = {
    # R50+ViT-B/16 as vit_base_r50_s16_384 (the full ResNet-50 stages 3-4-9), two ViT-B blocks, learned at 128
    'base_r50_s16@depth2': ('vit_base_r50_s16_384', dict(img_size=128, depth=2),
                            dict(arch=dict(embed_dim=768, depth=2, num_heads=12, cnn_depths=(3, 4, 9)),
                                 pretrain_img_size=128), [(128, 128), (97, 150)], (0, 1, 2)),
    # the real presets at small sizes
    'tiny_r_s16_p8': ('vit_tiny_r_s16_p8_224', {}, dict(arch='tiny_r_s16_p8'), [(224, 224), (97, 150)], ()),
    'small_r26_s32': ('vit_small_r26_s32_224', {}, dict(arch='small_r26_s32'), [(96, 128), (131, 65)], (0, 1, 3)),
}


def _timm(name: str, seed: int, **kwargs) -> torch.nn.Module:
    model = timm.create_model(name, pretrained=False, num_classes=0, dynamic_img_size=True, dynamic_img_pad=True,
                              **kwargs)
    return randomise(model, seed=seed)


def _reference_maps(ref: torch.nn.Module, x: torch.Tensor, stride: int) -> tuple[list, list, torch.Tensor]:
    """timm's ResNet stage maps, its blocks' (B, C, h, w) maps (the last after the final norm), its cls token."""
    backbone = ref.patch_embed.backbone
    stages = []
    if hasattr(backbone, 'stages'):
        y = backbone.stem(x)
        for stage in backbone.stages:
            y = stage(y)
            stages.append(y)
    B, _, H, W = x.shape
    h, w = -(-H // stride), -(-W // stride)
    depth = len(ref.blocks)
    tokens = ref.forward_intermediates(x, indices=depth, norm=False, output_fmt='NLC', intermediates_only=True)
    final = ref.forward_features(x)  # (B, 1 + N, C) after the final norm
    tokens = [*tokens[:-1], final[:, 1:]]
    blocks = [t.reshape(B, h, w, -1).permute(0, 3, 1, 2) for t in tokens]  # (B, N, C) -> (B, C, h, w)
    return stages, blocks, final[:, 0]


@pytest.mark.parametrize('case,fused', [(c, True) for c in sorted(CASES)] + [(c, False) for c in sorted(CASES)
                                                                               if c != 'small_r26_s32'],
                         ids=lambda v: v if isinstance(v, str) else ('fused' if v else 'math'))
def test_timm_hybrid_resnet_maps_and_blocks_match(case, fused):
    name, timm_kwargs, ours_kwargs, sizes, cnn = CASES[case]
    ref = _timm(name, seed=len(case), **timm_kwargs)
    depth = len(ref.blocks)
    ours = HybridVisionTransformer(**ours_kwargs, out_indices=tuple(range(depth)), cnn_out_indices=cnn,
                                   output_cls_token=True, fused_attn=fused).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    # float64: in float32 the 16 weight-standardised ResNet-50 blocks accumulate rounding to ~4e-5 of the scale,
    # which would hide a real mismatch of that size; in float64 the two agree to ~1e-12
    ref, ours = ref.double(), ours.double()
    stride = ours.out_strides[-1]
    assert stride == ref.patch_embed.feat_ratio()
    for size in sizes:
        x = torch.randn(2, 3, *size, dtype=torch.float64)
        with torch.no_grad():
            outs = ours(x)
            stages, blocks, cls = _reference_maps(ref, x, stride)
        assert len(outs) == len(cnn) + depth + 1
        for got, index in zip(outs, cnn):
            torch.testing.assert_close(got, stages[index], **TOL64, msg=f'{case} ResNet stage {index} at {size}')
        for i, (got, want) in enumerate(zip(outs[len(cnn):-1], blocks)):
            torch.testing.assert_close(got, want, **TOL64, msg=f'{case} block {i} at {size}')
        torch.testing.assert_close(outs[-1], cls, **TOL64)


@pytest.mark.parametrize('kernel,stride', [(7, 2), (3, 2), (1, 2), (3, 1), (1, 1)])
def test_same_padded_standardised_conv_and_pool_match_timm_at_every_size(kernel, stride):
    torch.manual_seed(0)
    ours = StdConv2d(4, 6, kernel, stride=stride)
    ref = StdConv2dSame(4, 6, kernel, stride=stride, eps=1e-8)
    ref.load_state_dict(ours.state_dict())
    pool = MaxPool2dSame(3, 2)
    for H, W in [(1, 1), (2, 3), (5, 8), (9, 12), (16, 17)]:
        x = torch.randn(1, 4, H, W)
        torch.testing.assert_close(ours(x), ref(x), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(torch.nn.functional.max_pool2d(pad_same(x, 3, 2, float('-inf')), 3, 2), pool(x),
                                   rtol=0, atol=0)


@pytest.mark.parametrize('name,arch', [('vit_tiny_r_s16_p8_224', 'tiny_r_s16_p8'),
                                       ('vit_small_r26_s32_224', 'small_r26_s32')])
def test_timm_checkpoints_load_through_init_cfg_offline_and_export_back(name, arch, tmp_path):
    """A timm file with its classifier loads through ``init_cfg`` and through the offline converter; our state dict
    exports back to timm's keys (the stem-only R+Ti's stem moves back out of ``stem.``) and loads strictly."""
    ref = randomise(timm.create_model(name, pretrained=False), seed=5)
    sd = ref.state_dict()
    assert {'head.weight', 'head.bias'} <= set(sd)
    converted = convert_to_ours(sd, 'vit_hybrid')
    assert converted.source == 'timm' and set(converted.dropped) == {'head.weight', 'head.bias'}
    torch.save(sd, tmp_path / 'timm.pth')
    model = HybridVisionTransformer(arch, init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'timm.pth')))
    model.init_weights()
    for key, value in converted.state_dict.items():
        torch.testing.assert_close(model.state_dict()[key], value, rtol=0, atol=0, msg=key)
    convert_checkpoint_file(tmp_path / 'timm.pth', tmp_path / 'ours.pth', 'vit_hybrid')
    HybridVisionTransformer(arch).load_state_dict(torch.load(tmp_path / 'ours.pth', weights_only=True), strict=True)
    back = export_from_ours(model.state_dict(), 'vit_hybrid', 'timm').state_dict
    headless = timm.create_model(name, pretrained=False, num_classes=0)
    headless.load_state_dict(back, strict=True)
    for key, value in headless.state_dict().items():
        torch.testing.assert_close(value, sd[key], rtol=0, atol=0, msg=key)
    assert set(FAMILIES['vit_hybrid'].exporters()) == {'timm'}
