"""The backbone contract, checked for every registered backbone with a tiny architecture."""
import copy

import pytest
import torch
from torch import nn

import vit_backbones  # noqa: F401
from vit_backbones.backbones import BaseBackbone
from vit_backbones.registry import MODELS

from .tiny_archs import TINY, backbone_type

NAMES = sorted(TINY)


def build(name: str, **overrides) -> BaseBackbone:
    kwargs = dict(TINY[name][0], **overrides)
    return MODELS.build(dict(type=f'vit_backbones.{backbone_type(name)}', **kwargs))  # scoped: any default scope


def test_every_registered_backbone_has_a_tiny_arch():
    registered = {name for name, cls in MODELS.module_dict.items() if issubclass(cls, BaseBackbone)}
    assert registered, 'no backbone registered'
    covered = {backbone_type(name) for name in TINY}
    assert registered <= covered, f'add tiny archs for {sorted(registered - covered)}'


@pytest.mark.parametrize('name', NAMES)
@pytest.mark.parametrize('size', [(224, 224), (230, 197), (112, 137), (31, 31)])
def test_outputs_channels_strides_and_exact_sizes(name, size):
    torch.manual_seed(0)
    model = build(name).eval()
    expected = TINY[name][1][size]
    if expected is None:
        with pytest.raises(ValueError, match='at least'):
            model(torch.randn(2, 3, *size))
        return
    with torch.no_grad():
        outs = model(torch.randn(2, 3, *size))
    assert isinstance(outs, tuple) and len(outs) == len(model.out_indices) == len(model.out_channels)
    for out, channels, index in zip(outs, model.out_channels, model.out_indices):
        assert out.shape == (2, channels, *expected[index])
        assert out.is_contiguous() and torch.isfinite(out).all()
    side = 4 * max(model.out_strides)  # a multiple of every stride (224 is not of LeViT's 64)
    strides = [side // out.shape[-1] for out in model(torch.randn(1, 3, side, side))]
    assert tuple(strides) == model.out_strides


@pytest.mark.parametrize('name', NAMES)
def test_negative_and_partial_out_indices(name):
    full = build(name)
    model = build(name, out_indices=(-1, 1))
    n = full.num_stages
    assert model.out_indices == (n - 1, 1)
    assert model.out_channels == (full.out_channels[n - 1], full.out_channels[1])
    outs = model(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == list(model.out_channels)


@pytest.mark.parametrize('name', NAMES)
@pytest.mark.parametrize('bad', [(4,), (-5,), (0, 0), (), (1.0,)])
def test_invalid_out_indices_raise(name, bad):
    with pytest.raises(ValueError, match='out_indices'):
        build(name, out_indices=bad)


@pytest.mark.parametrize('name', NAMES)
def test_unknown_arch_raises(name):
    with pytest.raises(ValueError, match='arch'):
        build(name, arch='gigantic')


@pytest.mark.parametrize('name', NAMES)
@pytest.mark.parametrize('shape', [(1, 1, 32, 32), (3, 32, 32), (1, 3, 1, 32, 32)])
def test_bad_input_raises_value_error(name, shape):
    model = build(name)
    with pytest.raises(ValueError, match='expects'):
        model(torch.randn(*shape))


@pytest.mark.parametrize('name', NAMES)
def test_backward_reaches_every_trainable_parameter(name):
    torch.manual_seed(0)
    model = build(name).train()
    outs = model(torch.randn(2, 3, 61, 75))
    sum(o.float().pow(2).mean() for o in outs).backward()
    for pname, param in model.named_parameters():
        assert param.grad is not None, f'{pname} got no gradient'
        assert torch.isfinite(param.grad).all(), f'{pname} has a non-finite gradient'


@pytest.mark.parametrize('name', NAMES)
def test_with_cp_matches_outputs_and_gradients(name):
    torch.manual_seed(0)
    plain = build(name, drop_path_rate=0.0).train()
    ckpt = build(name, drop_path_rate=0.0, with_cp=True).train()
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 64, 80)
    outs = [m(x) for m in (plain, ckpt)]
    for a, b in zip(*outs):
        torch.testing.assert_close(a, b)
    for model, out in zip((plain, ckpt), outs):
        sum(o.sum() for o in out).backward()
    for (pname, p), (_, q) in zip(plain.named_parameters(), ckpt.named_parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=pname)


@pytest.mark.parametrize('name', NAMES)
@pytest.mark.parametrize('frozen', [0, 1, 2])
def test_frozen_stages_stay_frozen(name, frozen):
    model = build(name, frozen_stages=frozen)
    frozen_parts = list(model.stem_parts())
    for index in range(frozen):
        frozen_parts.extend(model.stage_parts(index))
    frozen_ids = set()
    for part in frozen_parts:
        params = [part] if isinstance(part, nn.Parameter) else list(part.parameters())
        frozen_ids |= {id(p) for p in params}
    assert frozen_ids
    assert model.train() is model
    for pname, param in model.named_parameters():
        assert param.requires_grad == (id(param) not in frozen_ids), pname
    for part in frozen_parts:
        if isinstance(part, nn.Module):
            assert not any(m.training for m in part.modules())
    later = model.stage_parts(frozen)
    assert any(m.training for part in later if isinstance(part, nn.Module) for m in part.modules())
    # frozen weights do not move in a training step
    before = copy.deepcopy(model.state_dict())
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    sum(o.sum() for o in model(torch.randn(1, 3, 64, 64))).backward()
    opt.step()
    after = model.state_dict()
    for pname, param in model.named_parameters():
        if id(param) in frozen_ids:
            torch.testing.assert_close(before[pname], after[pname], rtol=0, atol=0)


@pytest.mark.parametrize('name', NAMES)
def test_frozen_stages_out_of_range(name):
    with pytest.raises(ValueError, match='frozen_stages'):
        build(name, frozen_stages=99)


@pytest.mark.parametrize('name', NAMES)
def test_strict_state_dict_round_trip(name):
    torch.manual_seed(0)
    a = build(name).eval()
    torch.manual_seed(1)
    b = build(name).eval()
    b.load_state_dict(a.state_dict(), strict=True)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for p, q in zip(a(x), b(x)):
            torch.testing.assert_close(p, q, rtol=0, atol=0)


@pytest.mark.parametrize('name', NAMES)
def test_init_weights_is_random_init_only(name):
    model = build(name)
    model.init_weights()
    own_init = set(model.own_init_parameters())  # e.g. ViT-Adapter's zero-initialised deformable offsets
    for pname, param in model.named_parameters():
        assert torch.isfinite(param).all(), pname
        zero_init = 'bias' in pname or pname.endswith(('.rel_pos_h', '.rel_pos_w')) or pname in own_init
        assert param.abs().sum() > 0 or zero_init, f'{pname} is all zeros after init'


@pytest.mark.parametrize('name', NAMES)
@pytest.mark.parametrize('with_cp', [False, True])
def test_with_cp_recomputes_every_block_in_backward(name, with_cp):
    """Checkpointed blocks run twice per step (forward, then recomputed in backward); plain blocks once."""
    model = build(name, with_cp=with_cp).train()
    calls = []
    blocks = model.block_modules()
    assert blocks
    for block in blocks:  # a block's first sub-module runs first in its forward, also when only that is recomputed
        first = next(block.children())
        first.register_forward_pre_hook(lambda module, args: calls.append(module))  # recompute may stop early
    outs = model(torch.randn(1, 3, 64, 64))
    assert len(calls) == len(blocks)
    sum(o.sum() for o in outs).backward()
    assert len(calls) == (2 if with_cp else 1) * len(blocks)
    assert all(stage.with_cp == with_cp for stage in model.stage_list())


@pytest.mark.parametrize('name', NAMES)
def test_with_cp_can_be_switched_after_construction(name):
    model = build(name)
    model.with_cp = True
    assert all(stage.with_cp for stage in model.stage_list())


@pytest.mark.parametrize('name', NAMES)
def test_random_init_has_the_documented_distributions(name):
    torch.manual_seed(0)
    model = build(name)
    for param in model.parameters():  # anything the init does not set would keep these values
        torch.nn.init.constant_(param, 7.0)
    model.init_weights()
    own_init = set(model.own_init_parameters())  # initialised by the family's own documented rule
    linears = [m for n, m in model.named_modules() if isinstance(m, nn.Linear) and f'{n}.weight' not in own_init]
    if linears:  # a family may initialise every linear its own way (LeViT: PyTorch's default, as timm)
        weights = torch.cat([m.weight.flatten() for m in linears])
        assert abs(weights.std().item() - 0.02) < 0.002 and abs(weights.mean().item()) < 0.002  # trunc_normal(0.02)
    assert all(torch.all(m.bias == 0) for m in linears if m.bias is not None)
    for module in model.modules():
        if isinstance(module, nn.LayerNorm):
            assert torch.all(module.weight == 1) and torch.all(module.bias == 0)
    for pname, param in model.named_parameters():
        assert not torch.any(param == 7.0), f'{pname} was not initialised'


def _neck_inputs(name):
    model = build(name).eval()
    with torch.no_grad():
        feats = model(torch.randn(1, 3, 96, 128))
    return model, feats


@pytest.mark.parametrize('name', NAMES)
def test_mmdet_fpn_builds_from_the_backbone_contract(name):
    from mmdet.registry import MODELS as DET_MODELS
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    model, feats = _neck_inputs(name)
    neck = DET_MODELS.build(dict(type='FPN', in_channels=list(model.out_channels), out_channels=8,
                                 num_outs=len(model.out_channels) + 1)).eval()
    with torch.no_grad():
        outs = neck(feats)
    assert len(outs) == len(model.out_channels) + 1 and all(o.shape[1] == 8 for o in outs)
    for out, feat, stride in zip(outs, feats, model.out_strides):
        assert out.shape[-2:] == feat.shape[-2:] and feat.shape[-1] == -(-128 // stride)


@pytest.mark.parametrize('name', NAMES)
def test_mmseg_multi_level_neck_builds_from_the_backbone_contract(name):
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS as SEG_MODELS
    init_default_scope('mmseg')
    model, feats = _neck_inputs(name)
    scales = [2 ** i for i in range(len(model.out_channels))]
    neck = SEG_MODELS.build(dict(type='MultiLevelNeck', in_channels=list(model.out_channels), out_channels=8,
                                 scales=scales)).eval()
    with torch.no_grad():
        outs = neck(list(feats))
    assert len(outs) == len(scales) and all(o.shape[1] == 8 for o in outs)
    for out, feat, scale in zip(outs, feats, scales):
        assert out.shape[-2:] == (feat.shape[-2] * scale, feat.shape[-1] * scale)


def _layout(t: torch.Tensor) -> str:
    """'nchw', 'nhwc' or 'other' for a 4-d tensor (a tensor that is both, e.g. 1x1 spatial, counts as 'nchw')."""
    if t.is_contiguous():
        return 'nchw'
    return 'nhwc' if t.is_contiguous(memory_format=torch.channels_last) else 'other'


@pytest.mark.parametrize('name', NAMES)
@pytest.mark.parametrize('batch', [1, 2])
def test_convolutions_get_maps_in_their_weights_layout(name, batch):
    """A convolution whose map and weight differ in memory layout (NCHW vs channels-last) has one of them reordered
    by oneDNN at every call; every dense convolution with a k x k kernel (k > 1) reads its map in its weight's
    layout (depth-wise and 1x1 weights are in both layouts)."""
    torch.manual_seed(0)
    model = build(name).eval()
    model.load_state_dict(build(name).state_dict())  # loading a checkpoint keeps the layout
    seen: dict[str, tuple[str, str]] = {}

    def record(conv_name):
        def hook(module, args):
            seen[conv_name] = (_layout(args[0]), _layout(module.weight))
        return hook

    for conv_name, module in model.named_modules():
        if isinstance(module, nn.Conv2d) and module.groups == 1 and module.weight[0, 0].numel() > 1:
            module.register_forward_pre_hook(record(conv_name))
    with torch.no_grad():
        model(torch.randn(batch, 3, 96, 128))
    mismatched = {k: v for k, v in seen.items() if v[0] != v[1]}
    assert not mismatched, mismatched
