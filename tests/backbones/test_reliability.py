"""What a demanding user breaks, run over every registered backbone (tiny archs), so each new family meets it.

Sizes from 1x1 to 1023x65 (or the family's documented minimum with a clear error), batch 0, channels-last and
non-contiguous inputs, NaN isolation across the batch, weights changed in place, ONNX export with dynamic H/W
against onnxruntime, ``torch.compile`` without graph breaks or needless recompiles, constructor validation and
stem adaptation to other input channels.
"""
import warnings

import numpy as np
import pytest
import torch
from mmengine.model import ExponentialMovingAverage

from vit_backbones.backbones import BaseBackbone
from vit_backbones.registry import MODELS

from .tiny_archs import BAD_ARGS, COMMON_BAD_ARGS, SIZE_RULES, TINY, backbone_type, tiny_arch_with

NAMES = sorted(TINY)
SIZES = [(1, 1), (7, 7), (28, 28), (31, 31), (33, 517), (1023, 65), (200, 28), (1, 64)]


# The TorchScript exporter has no antialiased bicubic resize: ViTs export with mmseg's resizing there, LeViT with
# plain bicubic bias tables (the dynamo exporter takes the default; test_vit.py / test_levit.py check the clear error).
LEGACY_ONNX_ARGS = {'VisionTransformer': dict(interpolate_antialias=False),
                    'HybridVisionTransformer': dict(interpolate_antialias=False),
                    'LeViT': dict(interpolate_antialias=False),
                    'CaiT': dict(interpolate_antialias=False),
                    'CeiT': dict(interpolate_antialias=False),
                    'DeepViT': dict(interpolate_antialias=False)}


def build(name: str, **overrides) -> BaseBackbone:
    kwargs = dict(TINY[name][0], **overrides)
    return MODELS.build(dict(type=f'vit_backbones.{backbone_type(name)}', **kwargs))  # scoped: any default scope


def stage_sizes(name: str, hw: tuple[int, int], strides) -> list[tuple[int, int]]:
    """Output sizes of an (H, W) input: ceil or floor of (H / stride, W / stride) for each output stride."""
    rule, _ = SIZE_RULES[name]
    div = (lambda a, s: -(-a // s)) if rule == 'ceil' else (lambda a, s: a // s)
    return [(div(hw[0], s), div(hw[1], s)) for s in strides]


def test_every_backbone_has_a_size_rule_and_bad_args():
    assert set(SIZE_RULES) == set(TINY) == set(BAD_ARGS)


@pytest.mark.parametrize('name', NAMES)
@pytest.mark.parametrize('size', SIZES, ids=lambda s: f'{s[0]}x{s[1]}')
def test_any_size_or_the_documented_minimum(name, size):
    model = build(name).eval()
    x = torch.randn(1, 3, *size)
    if min(size) < SIZE_RULES[name][1]:
        with pytest.raises(ValueError, match=f'at least {SIZE_RULES[name][1]}'):
            model(x)
        return
    with torch.no_grad():
        outs = model(x)
    assert [tuple(o.shape[-2:]) for o in outs] == stage_sizes(name, size, model.out_strides)
    assert all(torch.isfinite(o).all() for o in outs)


@pytest.mark.parametrize('name', NAMES)
def test_batch_zero_gives_empty_outputs_of_the_right_shapes(name):
    model = build(name).eval()
    with torch.no_grad():
        outs = model(torch.randn(0, 3, 64, 80))
    expected = [(0, c, *hw) for c, hw in zip(model.out_channels, stage_sizes(name, (64, 80), model.out_strides))]
    assert [tuple(o.shape) for o in outs] == expected


@pytest.mark.parametrize('name', NAMES)
def test_channels_last_and_non_contiguous_inputs(name):
    torch.manual_seed(0)
    model = build(name).eval()
    x = torch.randn(2, 3, 64, 72)
    variants = [x.contiguous(memory_format=torch.channels_last),
                torch.randn(2, 3, 72, 64).transpose(2, 3).copy_(x),  # a transposed view: strides out of order
                torch.randn(2, 3, 128, 72)[:, :, ::2]]  # a strided view
    variants[2].copy_(x)
    with torch.no_grad():
        ref = model(x)
        for variant in variants:
            assert not variant.is_contiguous()
            for a, b in zip(model(variant), ref):
                torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('name', NAMES)
def test_a_nan_in_one_image_stays_in_that_image(name):
    torch.manual_seed(0)
    model = build(name).eval()
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        clean = model(x)
        x[1, :, 10, 20] = float('nan')
        dirty = model(x)
    for a, b in zip(clean, dirty):
        torch.testing.assert_close(b[[0, 2]], a[[0, 2]], rtol=0, atol=0)
        assert torch.isnan(b[1]).any()


def _change_weights(model: BaseBackbone, other: BaseBackbone, how: str) -> BaseBackbone:
    """Put ``other``'s weights into ``model`` the way a user would; returns the module to run."""
    if how == 'load_state_dict':
        model.load_state_dict(other.state_dict())
    elif how == 'assign':
        model.load_state_dict(other.state_dict(), assign=True)
    elif how == 'data_copy':  # .data copies bump no version counter
        for mine, theirs in zip(model.state_dict(keep_vars=True).values(), other.state_dict(keep_vars=True).values()):
            mine.data.copy_(theirs.data)
    return model


@pytest.mark.parametrize('name', NAMES)
@pytest.mark.parametrize('how', ['load_state_dict', 'assign', 'data_copy', 'ema_step'])
def test_a_forward_after_weights_change_equals_a_fresh_model(name, how):
    torch.manual_seed(0)
    model = build(name).eval()
    torch.manual_seed(1)
    other = build(name).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        if how == 'ema_step':  # what mmengine's EMAHook does after an iteration
            ema = ExponentialMovingAverage(model, momentum=0.5)
            ema.update_parameters(model)  # step 0 copies
            model = ema.module.eval()
            before = model(x)
            ema.update_parameters(other)  # step 1: lerp towards the trained weights
        else:
            before = model(x)
            model = _change_weights(model, other, how)
        after = model(x)
    fresh = build(name).eval()
    fresh.load_state_dict(model.state_dict())
    with torch.no_grad():
        expected = fresh(x)
    for a, b, c in zip(after, expected, before):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
        assert not torch.allclose(a, c)  # the weights really changed


@pytest.mark.parametrize('name', NAMES)
def test_onnx_export_with_dynamic_sizes_matches_onnxruntime(name, tmp_path):
    ort = pytest.importorskip('onnxruntime')
    torch.manual_seed(0)
    model = build(name, **LEGACY_ONNX_ARGS.get(backbone_type(name), {})).eval()
    path = tmp_path / f'{name}.onnx'
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.onnx.export(model, (torch.randn(1, 3, 64, 64),), str(path), dynamo=False, input_names=['x'],
                          dynamic_axes={'x': {0: 'batch', 2: 'height', 3: 'width'}})
    session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    for size in [(96, 160), (33, 70)]:  # bigger and odd, with maps that fit one window
        x = torch.randn(2, 3, *size)
        outs = session.run(None, {'x': x.numpy()})
        with torch.no_grad():
            ref = model(x)
        assert len(outs) == len(ref)
        for got, want in zip(outs, ref):
            assert got.shape == tuple(want.shape)
            np.testing.assert_allclose(got, want.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.sweep
@pytest.mark.parametrize('name', NAMES)
def test_compile_has_no_graph_break_and_recompiles_once_for_new_sizes(name):
    from torch._dynamo.testing import CompileCounter
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = build(name).eval()
    counter = CompileCounter()
    compiled = torch.compile(model, backend=counter, fullgraph=True)  # fullgraph: a graph break raises
    # sides above 32 * window keep every map and window grid wider than 1 (dynamo specialises sizes 0 and 1)
    sizes = [(232, 240), (232, 240), (256, 288), (240, 320)]
    counts = []
    with torch.no_grad():
        for size in sizes:
            x = torch.randn(1, 3, *size)
            for got, want in zip(compiled(x), model(x)):
                torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
            counts.append(counter.frame_count)
    assert counts == [1, 1, 2, 2], counts  # same size: none; a new size: one (dynamic); then none


@pytest.mark.parametrize('name,kwargs,arg', [
    (name, kwargs, arg) for name in NAMES for kwargs, arg in COMMON_BAD_ARGS + BAD_ARGS[name]])
def test_out_of_range_arguments_raise_naming_the_argument(name, kwargs, arg):
    kwargs = dict(kwargs)
    if 'arch' in kwargs:
        kwargs['arch'] = tiny_arch_with(name, **kwargs['arch'])
    with pytest.raises(ValueError, match=arg):
        build(name, **kwargs)


@pytest.mark.parametrize('name', NAMES)
@pytest.mark.parametrize('in_channels', [1, 4])
def test_a_three_channel_checkpoint_adapts_to_other_input_channels(name, in_channels, monkeypatch):
    logged = []
    monkeypatch.setattr('vit_backbones.backbones.base.print_log', lambda msg, **kw: logged.append(msg))
    torch.manual_seed(0)
    source = build(name).state_dict()
    model = build(name, in_channels=in_channels)
    model.load_state_dict(source)
    keys = model.stem_conv_keys
    for key in keys:  # every convolution that reads the image
        weight, loaded = source[key], model.state_dict()[key]
        if in_channels == 1:
            torch.testing.assert_close(loaded, weight.sum(1, keepdim=True))
        else:
            torch.testing.assert_close(loaded, torch.cat([weight, weight[:, :1]], 1) * 3 / 4)
        assert any(key in m and ('summed' if in_channels == 1 else 'repeated') in m for m in logged), logged
    for other, value in source.items():
        if other not in keys:
            torch.testing.assert_close(model.state_dict()[other], value, rtol=0, atol=0)
    model.eval()(torch.randn(1, in_channels, 64, 64))


@pytest.mark.slow
@pytest.mark.sweep
@pytest.mark.parametrize('name', NAMES)
def test_onnx_dynamo_export_with_dynamic_sizes_matches_onnxruntime(name, tmp_path):
    """torch.export-based ONNX export: an example and Dim ranges that keep every map and window grid wider than 1
    (dynamo specialises sizes 0 and 1), checked at two other sizes and batch sizes."""
    ort = pytest.importorskip('onnxruntime')
    pytest.importorskip('onnxscript')
    from torch.export import Dim
    torch.manual_seed(0)
    model = build(name).eval()
    path = tmp_path / f'{name}.onnx'
    dims = {0: Dim('batch', min=2, max=64), 2: Dim('height', min=225, max=4096), 3: Dim('width', min=225, max=4096)}
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.onnx.export(model, (torch.randn(2, 3, 256, 256),), str(path), dynamo=True, input_names=['x'],
                          dynamic_shapes={'x': dims}, verbose=False)
    session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    for shape in [(3, 3, 232, 480), (2, 3, 300, 250)]:
        x = torch.randn(*shape)
        outs = session.run(None, {'x': x.numpy()})
        with torch.no_grad():
            ref = model(x)
        for got, want in zip(outs, ref):
            np.testing.assert_allclose(got, want.numpy(), rtol=1e-4, atol=1e-4)
