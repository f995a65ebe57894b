"""timm LeViT checkpoints (``levit_*`` linear and ``levit_conv_*`` conv layouts) -> ours give timm's stage maps.

Each timm reference is random-initialised with ``randomise`` (every parameter and BatchNorm statistic); its
attention-bias tables then get unit-scale values, so that they weigh in the softmax as trained ones do. Its state
dict is loaded strictly through our load hook and the three stage maps (timm's ``forward_intermediates``) compared
at two resolutions: models built for 224 (14, 7, 4 grids: the odd 7 rounds up to 4) and for a non-square 160x96
(10x6, 5x3, 3x2 grids). timm fixes its bias grids when it is built, so each size is compared with timm built for
it; our resize rule is compared with timm's table resize separately. Training mode (batch statistics, stochastic
depth drawn from the same random stream, gradients) and the exports back to both timm layouts are checked too.
"""
import pytest
import timm
import torch
from timm.layers import resize_rel_pos_bias_table_levit

from vit_backbones.backbones import LeViT
from vit_backbones.backbones.levit import offset_index
from vit_backbones.converters import convert_to_ours, export_from_ours, identify
from vit_backbones.engine.checkpoint_convert import convert_checkpoint_file

from .reference_init import randomise

pytestmark = pytest.mark.parity
TOL = dict(rtol=1e-5, atol=1e-5)
TRAIN_TOL = dict(rtol=1e-3, atol=5e-4)  # float64 runs agree exactly (checked): this is float32 rounding
SIZES = [(224, 224), (160, 96)]


def _timm(arch: str, conv: bool, img_size, seed: int = 0, **kwargs) -> torch.nn.Module:
    ref = timm.create_model(f'levit_{"conv_" if conv else ""}{arch}', pretrained=False, img_size=img_size, **kwargs)
    randomise(ref, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, param in ref.named_parameters():
            if name.endswith('attention_biases'):
                param.copy_(torch.randn(param.shape, generator=gen))
    return ref.eval()


def _timm_maps(ref: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    return ref.forward_intermediates(x, intermediates_only=True)


@pytest.mark.parametrize('arch', ['128s', '256'])
@pytest.mark.parametrize('conv', [False, True], ids=['linear', 'conv'])
@pytest.mark.parametrize('fused', [True, False], ids=['fused', 'math'])
def test_timm_levit_stage_maps_match_at_two_resolutions(arch, conv, fused):
    for size in SIZES:
        ref = _timm(arch, conv, size)
        ours = LeViT(arch, pretrain_img_size=size, fused_attn=fused).eval()
        ours.load_state_dict(ref.state_dict(), strict=True)
        x = torch.randn(2, 3, *size)
        with torch.no_grad():
            outs, maps = ours(x), _timm_maps(ref, x)
        assert len(outs) == len(maps) == 3
        for i, (a, b) in enumerate(zip(outs, maps)):
            torch.testing.assert_close(a, b, **TOL, msg=f'levit_{arch} conv={conv} stage {i} at {size}')


@pytest.mark.parametrize('arch', ['128', '192', '384'])
def test_the_other_pretrained_presets_match(arch):
    ref = _timm(arch, False, 224)
    ours = LeViT(arch).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        for a, b in zip(ours(x), _timm_maps(ref, x)):
            torch.testing.assert_close(a, b, **TOL)


@pytest.mark.parametrize('conv', [False, True], ids=['linear', 'conv'])
def test_training_mode_batch_statistics_stochastic_depth_and_gradients_match(conv):
    ref = _timm('128s', conv, 128, drop_path_rate=0.3).train()
    ours = LeViT('128s', pretrain_img_size=128, drop_path_rate=0.3)
    ours.load_state_dict(ref.state_dict(), strict=True)
    ours.train()
    x = torch.randn(4, 3, 128, 128)
    torch.manual_seed(5)  # the same draws: one Bernoulli per image and residual branch, in the same order
    maps = _timm_maps(ref, x)
    torch.manual_seed(5)
    outs = ours(x)
    for a, b in zip(outs, maps):  # batch statistics of small batches amplify float rounding: a looser bound
        torch.testing.assert_close(a, b, **TRAIN_TOL)
    sum((o * torch.linspace(-1, 1, o.shape[1])[:, None, None]).sum() for o in outs).backward()
    sum((m * torch.linspace(-1, 1, m.shape[1])[:, None, None]).sum() for m in maps).backward()
    ref_params = dict(ref.named_parameters())
    # one absolute bound for all: a bias whose BatchNorm is followed by another in training mode has a gradient
    # of pure rounding noise (zero in exact arithmetic), so a per-parameter relative bound would compare noise
    scale = max(p.grad.abs().max().item() for p in ref_params.values() if p.grad is not None)
    for name, param in ours.named_parameters():
        grad = ref_params[name].grad
        grad = grad.reshape(param.shape) if grad.ndim == 4 and param.ndim == 2 else grad  # 1x1 conv kernels
        torch.testing.assert_close(param.grad, grad, rtol=1e-3, atol=1e-4 * scale, msg=name)
    assert ours.stages[2].blocks[0].attn.attention_biases.grad.abs().sum() > 0
    ref_state = ref.state_dict()
    for name, value in ours.state_dict().items():  # running statistics moved alike
        if 'running' in name:
            torch.testing.assert_close(value, ref_state[name], **TOL, msg=name)
    torch.manual_seed(6)  # another draw drops other branches: stochastic depth is really on
    with torch.no_grad():
        assert not torch.allclose(ours(x)[2], outs[2])


@pytest.mark.parametrize('target,conv', [('timm', False), ('timm_conv', True)])
def test_export_loads_strictly_into_timm_and_gives_its_outputs(target, conv):
    ours = randomise(LeViT('128s', pretrain_img_size=128), seed=3)
    exported = export_from_ours(ours.state_dict(), 'levit', target).state_dict
    ref = timm.create_model(f'levit_{"conv_" if conv else ""}128s', pretrained=False, img_size=128, num_classes=0)
    ref.load_state_dict(exported, strict=True)
    ref.eval()
    x = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        for a, b in zip(ours(x), _timm_maps(ref, x)):
            torch.testing.assert_close(a, b, **TOL)


@pytest.mark.parametrize('conv', [False, True], ids=['linear', 'conv'])
def test_layouts_are_recognised_and_round_trips_are_exact(conv):
    ref = _timm('128s', conv, 64)
    state = ref.state_dict()
    layout = 'timm_conv' if conv else 'timm'
    assert identify(state) == [('levit', layout)]
    converted = convert_to_ours(state, 'levit')
    assert converted.source == layout
    assert set(converted.dropped) == {k for k in state if k.startswith(('head.', 'head_dist.'))}
    assert identify(converted.state_dict) == [('levit', 'vit_backbones')]
    back = export_from_ours(converted.state_dict, 'levit', layout).state_dict
    assert set(back) == set(state) - set(converted.dropped)
    for key, value in back.items():
        assert torch.equal(value, state[key]), key


def test_saved_index_buffers_of_old_checkpoints_are_left_out():
    state = dict(_timm('128s', False, 64).state_dict())
    state['stages.0.blocks.0.attn.attention_bias_idxs'] = torch.zeros(16, 16, dtype=torch.long)
    converted = convert_to_ours(state, 'levit')
    assert 'bias index' in converted.dropped['stages.0.blocks.0.attn.attention_bias_idxs']


def test_bias_index_equals_timms_buffers():
    ref = timm.create_model('levit_128s', pretrained=False, img_size=(112, 80))  # grids 7x5, 4x3, 2x2
    for name, module in ref.named_modules():
        if hasattr(module, 'attention_bias_idxs'):
            stride = getattr(module, 'stride', 1)
            index = offset_index(module.resolution, stride, torch.device('cpu'))
            assert torch.equal(index, module.attention_bias_idxs), name


def test_load_time_resize_is_timms_levit_table_resize_and_equals_the_forward_resize():
    """A 224 checkpoint in a model built for 160: its tables resized once on load as timm's
    ``resize_rel_pos_bias_table_levit`` resizes them; the outputs at 160 equal those of a model built for 224
    that resizes the same tables at every forward."""
    ref = _timm('128s', False, 224)
    native = LeViT('128s').eval()
    native.load_state_dict(ref.state_dict())
    moved = LeViT('128s', pretrain_img_size=160).eval()
    moved.load_state_dict(ref.state_dict())
    own = moved.state_dict()
    for key, table in ref.state_dict().items():
        if key.endswith('attention_biases'):
            expected = resize_rel_pos_bias_table_levit(table.T, own[key].shape[::-1]).T
            torch.testing.assert_close(own[key], expected, rtol=1e-6, atol=1e-6, msg=key)
    x = torch.randn(2, 3, 160, 160)
    with torch.no_grad():
        for a, b in zip(native(x), moved(x)):
            torch.testing.assert_close(a, b, **TOL)


@pytest.mark.parametrize('conv', [False, True], ids=['linear', 'conv'])
def test_timm_file_loads_through_init_cfg_and_offline_with_timms_outputs(conv, tmp_path):
    """A timm ``levit_128s`` file with its classifier and distillation heads: through ``init_cfg`` (converted while
    loading) and converted offline, both give timm's stage maps."""
    ref = _timm('128s', conv, 224, seed=3)
    torch.save(ref.state_dict(), tmp_path / 'timm.pth')
    online = LeViT('128s', init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'timm.pth')))
    online.init_weights()
    convert_checkpoint_file(tmp_path / 'timm.pth', tmp_path / 'ours.pth', 'levit')
    offline = LeViT('128s')
    offline.load_state_dict(torch.load(tmp_path / 'ours.pth', weights_only=True), strict=True)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        want = _timm_maps(ref, x)
        for model in (online.eval(), offline.eval()):
            for a, b in zip(model(x), want):
                torch.testing.assert_close(a, b, **TOL)
