"""SimpleFeaturePyramid: parity with ViTDet's math written out here (weights in detectron2's layout), output
sizes/strides/channels, building from a backbone's contract and from mmdet's registry, input checks, gradients."""
import math

import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import DefaultScope
from torch import nn

import vit_backbones  # noqa: F401  (registers the backbones and necks)
from vit_backbones.backbones import SwinTransformer
from vit_backbones.necks import LayerNorm2d, SimpleFeaturePyramid

DIM, OUT = 32, 16
LATERAL_INDEX = {4.0: 4, 2.0: 1, 1.0: 0, 0.5: 1}  # index of the 1x1 conv in detectron2's nn.Sequential per scale


# ---- independent reference: detectron2's SimpleFeaturePyramid as functions over a detectron2 state dict ----
def d2_params(scales, norm: bool, dim: int = DIM, out: int = OUT) -> dict:
    """Random float64 weights named as detectron2 names them (``simfp_{log2 stride}.{index}...``)."""
    p = {}

    def conv(name, cin, cout, k, transposed=False):
        p[f'{name}.weight'] = torch.randn((cin, cout, k, k) if transposed else (cout, cin, k, k)) / math.sqrt(cin * k)
        if transposed or not norm:
            p[f'{name}.bias'] = 0.1 * torch.randn(cout)

    def ln(name, c):
        if norm:
            p[f'{name}.weight'], p[f'{name}.bias'] = 1 + 0.2 * torch.randn(c), 0.2 * torch.randn(c)

    for scale in scales:
        key, i, width = f'simfp_{int(math.log2(16 / scale))}', LATERAL_INDEX[scale], dim
        if scale == 4.0:
            conv(f'{key}.0', dim, dim // 2, 2, transposed=True)
            ln(f'{key}.1', dim // 2)
            conv(f'{key}.3', dim // 2, dim // 4, 2, transposed=True)
            width = dim // 4
        elif scale == 2.0:
            conv(f'{key}.0', dim, dim // 2, 2, transposed=True)
            width = dim // 2
        conv(f'{key}.{i}', width, out, 1)
        ln(f'{key}.{i}.norm', out)
        conv(f'{key}.{i + 1}', out, out, 3)
        ln(f'{key}.{i + 1}.norm', out)
    return {k: v.double() for k, v in p.items()}


def d2_forward(x, p, scales, norm: bool) -> list:
    """ViTDet's pyramid: per scale resample, 1x1 conv + LN, 3x3 conv + LN; then LastLevelMaxPool on the last."""
    def ln(y, name):  # detectron2's LayerNorm: normalise over channels, eps 1e-6
        if not norm:
            return y
        u = y.mean(1, keepdim=True)
        s = (y - u).pow(2).mean(1, keepdim=True)
        return p[f'{name}.weight'][:, None, None] * (y - u) / torch.sqrt(s + 1e-6) + p[f'{name}.bias'][:, None, None]

    def up(y, name):
        return F.conv_transpose2d(y, p[f'{name}.weight'], p[f'{name}.bias'], stride=2)

    outs = []
    for scale in sorted(scales, reverse=True):
        key, i = f'simfp_{int(math.log2(16 / scale))}', LATERAL_INDEX[scale]
        if scale == 4.0:
            y = up(F.gelu(ln(up(x, f'{key}.0'), f'{key}.1')), f'{key}.3')
        elif scale == 2.0:
            y = up(x, f'{key}.0')
        elif scale == 1.0:
            y = x
        else:  # 2x2 max pool, stride 2, floor: crop to even sizes and take block maxima
            b, c, h, w = x.shape
            y = x[:, :, :h // 2 * 2, :w // 2 * 2]
            y = y.reshape(b, c, h // 2, 2, w // 2, 2)  # (B, C, H', W') -> (B, C, H' / 2, 2, W' / 2, 2)
            y = y.amax(dim=(3, 5))
        y = ln(F.conv2d(y, p[f'{key}.{i}.weight'], p.get(f'{key}.{i}.bias')), f'{key}.{i}.norm')
        y = ln(F.conv2d(y, p[f'{key}.{i + 1}.weight'], p.get(f'{key}.{i + 1}.bias'), padding=1), f'{key}.{i + 1}.norm')
        outs.append(y)
    return outs + [outs[-1][:, :, ::2, ::2]]  # a 1x1 max pool with stride 2 keeps every other position


def d2_to_ours(key: str) -> str:
    """``simfp_2.4.norm.weight`` -> ``levels.stride4.lateral_norm.weight``."""
    stage, index, param = key.split('.', 2)
    stride, index = 2 ** int(stage.removeprefix('simfp_')), int(index)
    lateral = LATERAL_INDEX[16 / stride]
    kind = 'norm' if param.startswith('norm.') else 'conv'
    if index in (lateral, lateral + 1):
        part = f"{'lateral' if index == lateral else 'output'}_{kind}"
    else:
        part = {0: 'resample.deconv1' if stride == 4 else 'resample', 1: 'resample.norm', 3: 'resample.deconv2'}[index]
    return f"levels.stride{stride}.{part}.{param.removeprefix('norm.')}"


@pytest.mark.parity
@pytest.mark.parametrize('norm', [True, False])
@pytest.mark.parametrize('scales', [(4.0, 2.0, 1.0, 0.5), (0.5, 2.0)])
def test_parity_with_detectron2_math(norm, scales):
    torch.manual_seed(0)
    ref = d2_params(scales, norm)
    neck = SimpleFeaturePyramid(DIM, OUT, scales, norm_cfg=dict(type='LN2d') if norm else None).double().eval()
    neck.load_state_dict({d2_to_ours(k): v for k, v in ref.items()}, strict=True)
    x = torch.randn(2, DIM, 7, 9, dtype=torch.float64)  # odd sizes
    with torch.no_grad():
        outs = neck((torch.randn(2, 8, 28, 36, dtype=torch.float64), x))  # only the last map is used
    expected = d2_forward(x, ref, scales, norm)
    assert len(outs) == len(expected) == len(scales) + 1
    for out, exp in zip(outs, expected):
        assert out.shape == exp.shape
        assert torch.allclose(out, exp, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize('add_p6', [True, False])
@pytest.mark.parametrize('scales,strides,sizes', [
    ((4.0, 2.0, 1.0, 0.5), (4, 8, 16, 32), [(28, 36), (14, 18), (7, 9), (3, 4)]),
    ((1, 4, 0.5), (4, 16, 32), [(28, 36), (7, 9), (3, 4)]),  # any order in, finest first out
    ((2.0, 1.0), (8, 16), [(14, 18), (7, 9)]),
    ((1.0,), (16,), [(7, 9)]),
    ((0.5,), (32,), [(3, 4)]),
])
def test_output_sizes_strides_channels(scales, strides, sizes, add_p6):
    neck = SimpleFeaturePyramid(DIM, OUT, scales, add_p6=add_p6)
    if add_p6:
        strides, sizes = strides + (strides[-1] * 2,), sizes + [tuple(math.ceil(s / 2) for s in sizes[-1])]
    assert neck.out_strides == strides and neck.out_channels == OUT and neck.in_stride == 16
    outs = neck([torch.randn(2, DIM, 7, 9)])
    assert [tuple(o.shape) for o in outs] == [(2, OUT, *size) for size in sizes]


@pytest.mark.parametrize('out_index,channels,stride', [(3, 128, 32), (2, 64, 16)])
def test_for_backbone_reads_the_swin_contract(out_index, channels, stride):
    swin = SwinTransformer(arch=dict(embed_dim=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4)),
                           out_indices=(out_index,)).eval()
    neck = SimpleFeaturePyramid.for_backbone(swin, out_channels=OUT, add_p6=False)
    assert (neck.in_channels, neck.in_stride) == (channels, stride)
    assert neck.out_strides == (stride // 4, stride // 2, stride, stride * 2)
    image = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        outs = neck(swin(image))
    assert [tuple(o.shape[1:]) for o in outs] == [(OUT, 64 // s, 96 // s) for s in neck.out_strides]


@pytest.mark.parametrize('kwargs,match', [
    (dict(scale_factors=(3.0,)), 'scale_factors must be'),
    (dict(scale_factors=()), 'scale_factors must be'),
    (dict(scale_factors=(2.0, 2)), 'distinct'),
    (dict(scale_factors='4'), 'scale_factors must be'),
    (dict(in_stride=2), 'expected an integer >= 1'),
    (dict(in_stride=6, scale_factors=(4.0, 1.0)), 'in_stride divisible by 4'),
    (dict(in_channels=0), 'in_channels must be an integer >= 1'),
    (dict(in_channels=2), 'expected in_channels >= 4'),
    (dict(out_channels=0), 'out_channels must be an integer >= 1'),
    (dict(norm_cfg='LN'), 'norm_cfg must be None or an mmcv norm config'),
    (dict(norm_cfg=dict(type='NoSuchNorm')), "'NoSuchNorm' is not a registered norm layer"),
])
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SimpleFeaturePyramid(**{'in_channels': DIM, **kwargs})


@pytest.mark.parametrize('inputs,match', [
    (torch.randn(1, DIM, 7, 9), 'expects the non-empty tuple'),
    ((), 'expects the non-empty tuple'),
    ((torch.randn(DIM, 7, 9),), r'expects 4-D \(B, C, H, W\) tensors'),
    ((torch.randn(1, DIM + 1, 7, 9),), 'in_channels=32 channels'),
])
def test_bad_inputs_raise(inputs, match):
    with pytest.raises(ValueError, match=match):
        SimpleFeaturePyramid(DIM, OUT)(inputs)


def test_for_backbone_checks():
    swin = SwinTransformer(arch=dict(embed_dim=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4)), out_indices=(3,))
    with pytest.raises(ValueError, match='reads in_channels and in_stride from the backbone'):
        SimpleFeaturePyramid.for_backbone(swin, in_channels=128)
    with pytest.raises(ValueError, match='exposing non-empty out_channels and out_strides'):
        SimpleFeaturePyramid.for_backbone(nn.Conv2d(3, 8, 1))


@pytest.mark.parametrize('scope', [None, 'mmdet'])
@pytest.mark.parametrize('norm_cfg,norm_type', [
    (None, nn.Identity), (dict(type='LN2d'), LayerNorm2d), (dict(type='BN'), nn.BatchNorm2d),
    (dict(type='SyncBN'), nn.SyncBatchNorm), (dict(type='GN', num_groups=4), nn.GroupNorm)])
def test_builds_from_mmdet_registry(norm_cfg, norm_type, scope):
    from mmdet.registry import MODELS as MMDET_MODELS
    cfg = dict(type='vit_backbones.SimpleFeaturePyramid', in_channels=DIM, out_channels=OUT, norm_cfg=norm_cfg)
    with DefaultScope.overwrite_default_scope(scope):
        neck = MMDET_MODELS.build(cfg)
    assert type(neck) is SimpleFeaturePyramid
    for level in neck.levels.values():
        assert isinstance(level.lateral_norm, norm_type) and isinstance(level.output_norm, norm_type)
        assert (level.lateral_conv.bias is None) == (norm_cfg is not None)
    assert isinstance(neck.levels['stride4'].resample.norm, norm_type)
    if norm_type is not nn.SyncBatchNorm:  # SyncBN runs only under torch.distributed on GPUs
        assert len(neck((torch.randn(2, DIM, 5, 6),))) == 5


def test_ln2d_registered_once_with_detectron2_eps():
    assert MMENGINE_MODELS.get('LN2d') is LayerNorm2d
    neck = SimpleFeaturePyramid(DIM, OUT)
    assert {m.eps for m in neck.modules() if isinstance(m, LayerNorm2d)} == {1e-6}
    assert neck.levels['stride8'].output_norm.eps == 1e-6
    neck = SimpleFeaturePyramid(DIM, OUT, norm_cfg=dict(type='LN2d', eps=1e-5))
    assert neck.levels['stride8'].output_norm.eps == 1e-5


@pytest.mark.parametrize('norm_cfg', [dict(type='LN2d'), dict(type='BN'), None])
def test_backward_reaches_every_parameter(norm_cfg):
    torch.manual_seed(0)
    neck = SimpleFeaturePyramid(DIM, OUT, norm_cfg=norm_cfg).train()
    x = torch.randn(2, DIM, 7, 9, requires_grad=True)
    outs = neck((x,))
    sum((o * torch.randn_like(o)).sum() for o in outs).backward()
    for name, param in neck.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_random_init_is_c2_msra_fill():
    torch.manual_seed(0)
    neck = SimpleFeaturePyramid(DIM, 64, norm_cfg=None)
    level = neck.levels['stride16']
    for conv in (level.lateral_conv, level.output_conv):
        assert torch.count_nonzero(conv.bias) == 0
    fan_out = 64 * 3 * 3
    assert abs(level.output_conv.weight.std().item() / math.sqrt(2 / fan_out) - 1) < 0.05
    with torch.no_grad():
        level.output_conv.weight.fill_(1.0)
        level.output_conv.bias.fill_(1.0)
    neck.init_weights()
    assert level.output_conv.weight.std() > 0 and torch.count_nonzero(level.output_conv.bias) == 0
