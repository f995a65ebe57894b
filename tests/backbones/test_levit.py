"""LeViT behaviour beyond the shared contract: the attention-bias offsets and their resizing, shrink attention's
rounding, BatchNorm (norm_eval, one value per channel), stochastic depth, presets, checkpoint tables, the recipe."""
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from vit_backbones.backbones import LeViT
from vit_backbones.backbones.levit import (
    ARCHS,
    LeViTAttention,
    TokenBatchNorm,
    offset_index,
    resize_bias_table,
)
from vit_backbones.converters import CheckpointMismatchError
from vit_backbones.layers import DropPath

from .tiny_archs import TINY

ARCH = TINY['LeViT'][0]['arch']
ROOT = Path(__file__).resolve().parents[2]


def _tiny(**kwargs) -> LeViT:
    torch.manual_seed(0)
    model = LeViT(ARCH, **{'pretrain_img_size': 64, **kwargs})
    with torch.no_grad():  # unit-scale tables and started residual branches, so that every part weighs in
        for name, param in model.named_parameters():
            if name.endswith('attention_biases'):
                param.normal_()
            elif name.endswith('.bn.weight'):
                param.uniform_(0.5, 1.5)
    return model


@pytest.mark.parametrize('size,stride', [((5, 3), 1), ((5, 3), 2), ((4, 4), 2), ((1, 2), 2), ((6, 7), 3)])
def test_offset_index_is_the_absolute_offset_between_query_and_key_positions(size, stride):
    H, W = size
    queries = [(y, x) for y in range(0, H, stride) for x in range(0, W, stride)]
    keys = [(y, x) for y in range(H) for x in range(W)]
    expected = torch.tensor([[abs(qy - ky) * W + abs(qx - kx) for ky, kx in keys] for qy, qx in queries])
    assert torch.equal(offset_index(size, stride, torch.device('cpu')), expected)


def test_bias_at_the_built_grid_is_the_table_itself_and_elsewhere_its_bicubic_resize():
    attn = _tiny().stages[0].blocks[0].attn
    table = attn.attention_biases.detach()
    h = table.shape[0]
    bias = attn.position_bias((4, 4))
    assert torch.equal(bias, table[:, offset_index((4, 4), 1, table.device)])
    bias = attn.position_bias((6, 3))
    grid = torch.nn.functional.interpolate(table.reshape(1, h, 4, 4), size=(6, 3), mode='bicubic',
                                           align_corners=False, antialias=True).reshape(h, 18)
    torch.testing.assert_close(bias, grid[:, offset_index((6, 3), 1, table.device)], rtol=0, atol=0)
    torch.testing.assert_close(resize_bias_table(table, (4, 4), (4, 4)), table, rtol=0, atol=0)


def test_forward_resize_equals_the_load_time_resize():
    """A model built for 64 run at 96x80 equals a model built for 96x80 whose tables were resized on load (square
    checkpoint tables only: the built 96x80 model then reads a 96x80 checkpoint of ours as it is)."""
    source = _tiny().eval()
    target = LeViT(ARCH, pretrain_img_size=(96, 80)).eval()
    target.load_state_dict(source.state_dict())
    assert target.stages[0].blocks[0].attn.attention_biases.shape == (2, 6 * 5)
    x = torch.randn(2, 3, 96, 80)
    with torch.no_grad():
        for a, b in zip(source(x), target(x)):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    again = LeViT(ARCH, pretrain_img_size=(96, 80)).eval()
    again.load_state_dict(target.state_dict())  # equal shapes: taken as they are
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), target.state_dict().values()))


def test_checkpoint_tables_that_cannot_be_resized_are_refused():
    model = _tiny()
    state = model.state_dict()
    key = 'stages.0.blocks.0.attn.attention_biases'
    non_square = LeViT(ARCH, pretrain_img_size=(96, 64)).state_dict()  # 6x4 tables into a 4x4 model
    with pytest.raises(CheckpointMismatchError, match='square'):
        model.load_state_dict(non_square)
    state = dict(state)
    state[key] = torch.zeros(3, 16)
    with pytest.raises(CheckpointMismatchError, match=r'\(2, R \* R\)'):
        LeViT(ARCH, pretrain_img_size=32).load_state_dict(state)


def test_shrink_attention_queries_the_even_positions_and_rounds_up():
    model = _tiny().eval()
    down = model.stages[1].downsample.attn_downsample
    assert isinstance(down, LeViTAttention) and down.stride == 2 and down.num_heads == 16 // 8
    assert (down.val_dim, down.table_size) == (32, (4, 4))
    x = torch.randn(1, 7, 5, 16)
    with torch.no_grad():
        out = down(x)
        moved = x.clone()
        moved[:, 1::2] += 1.0  # odd rows are keys only: the queries' own features do not see them
        q_same = torch.equal(down.q(moved), down.q(x))
    assert out.shape == (1, 4, 3, 24) and q_same


def test_norm_eval_keeps_every_batchnorm_and_its_statistics():
    x = torch.randn(2, 3, 64, 80)
    for norm_eval in (True, False):
        model = _tiny(norm_eval=norm_eval).train()
        bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        assert len(bns) == 4 + sum(1 for m in model.modules() if m.__class__.__name__ == 'LinearBN')
        assert all(bn.training != norm_eval for bn in bns)
        before = [bn.running_mean.clone() for bn in bns]
        model(x)
        moved = [not torch.equal(b, bn.running_mean) for b, bn in zip(before, bns)]
        assert all(moved) if not norm_eval else not any(moved)


def test_one_value_per_channel_in_training_uses_the_running_statistics():
    bn = TokenBatchNorm(4)
    with torch.no_grad():
        bn.running_mean.normal_()
        bn.running_var.uniform_(1, 2)
    stats = (bn.running_mean.clone(), bn.running_var.clone())
    x = torch.randn(1, 4, requires_grad=True)
    out = bn.train()(x)
    torch.testing.assert_close(out, bn.eval()(x))
    out.sum().backward()
    assert x.grad is not None and torch.equal(bn.running_mean, stats[0]) and torch.equal(bn.running_var, stats[1])
    rows = torch.randn(5, 4)
    reference = nn.BatchNorm1d(4)
    reference.load_state_dict(bn.state_dict())
    torch.testing.assert_close(bn.train()(rows), reference.train()(rows))  # several rows: plain BatchNorm
    model = _tiny().train()  # a single 64x64 image: a 1x1 last stage trains
    model(torch.randn(1, 3, 64, 64))[2].sum().backward()


def test_fused_and_math_attention_agree_with_gradients():
    x = torch.randn(2, 3, 80, 112)
    results = []
    for fused in (True, False):
        model = _tiny(fused_attn=fused, drop_path_rate=0.0).train()
        outs = model(x)
        sum((o * o).mean() for o in outs).backward()
        results.append((outs, {n: p.grad for n, p in model.named_parameters()}))
    (outs_a, grads_a), (outs_b, grads_b) = results
    for a, b in zip(outs_a, outs_b):  # training mode: batch statistics amplify the two paths' float rounding
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    scale = max(g.abs().max().item() for g in grads_b.values())  # one bound: some gradients are rounding noise
    for name in grads_a:
        torch.testing.assert_close(grads_a[name], grads_b[name], rtol=1e-3, atol=1e-4 * scale, msg=name)


def test_one_stochastic_depth_rate_for_every_residual_branch():
    model = LeViT('128s', drop_path_rate=0.2)
    rates = [m.drop_prob for m in model.modules() if isinstance(m, DropPath)]
    blocks = sum(len(stage.blocks) for stage in model.stages)
    assert len(rates) == 2 * blocks + 2 and set(rates) == {0.2}  # two per block, one per shrink attention's MLP
    assert not any(isinstance(m, DropPath) for m in LeViT('128s').modules())


def test_presets_are_timms_and_activations_follow_them():
    levit = pytest.importorskip('timm.models.levit')
    for name, cfg in ARCHS.items():
        timm_cfg = levit.model_cfgs[f'levit_{name}']
        assert (cfg['embed_dims'], cfg['key_dim'], cfg['num_heads'], cfg['depths']) == (
            timm_cfg['embed_dim'], timm_cfg['key_dim'], timm_cfg['num_heads'], timm_cfg['depth'])
        assert cfg.get('act', 'hardswish') == timm_cfg.get('act_layer', 'hard_swish').replace('hard_swish',
                                                                                                'hardswish')
    assert isinstance(LeViT('128s').stem.act1, nn.Hardswish)
    assert isinstance(LeViT('256d', out_indices=(0,)).stem.act1, nn.SiLU)
    assert isinstance(LeViT('128s', act='silu').stages[0].blocks[0].mlp.act, nn.SiLU)


def test_partial_out_indices_build_only_the_stages_needed():
    model = LeViT('128s', out_indices=(1,))
    assert len(model.stages) == 2 and model.out_channels == (256,) and model.out_strides == (32,)
    assert [o.shape for o in model.eval()(torch.randn(1, 3, 96, 64))] == [(1, 256, 3, 2)]


def test_init_is_timms():
    model = _tiny()
    model.init_weights()
    block = model.stages[0].blocks[0]
    assert torch.all(block.attn.proj.ln.bn.weight == 0) and torch.all(block.mlp.ln2.bn.weight == 0)
    shrink = model.stages[1].downsample.attn_downsample
    assert torch.all(block.mlp.ln1.bn.weight == 1) and torch.all(shrink.proj.ln.bn.weight == 1)
    assert all(torch.all(m.attention_biases == 0) for m in model.modules() if isinstance(m, LeViTAttention))
    weight = model.stages[0].blocks[0].mlp.ln1.linear.weight  # PyTorch's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert weight.abs().max() <= 16 ** -0.5 and weight.std() > 16 ** -0.5 / 2


def test_legacy_onnx_export_of_an_antialiased_resize_is_a_clear_error(tmp_path):
    model = LeViT(ARCH, pretrain_img_size=64).eval()
    with warnings.catch_warnings(), pytest.raises(RuntimeError, match='interpolate_antialias=False'):
        warnings.simplefilter('ignore')
        torch.onnx.export(model, (torch.randn(1, 3, 64, 64),), str(tmp_path / 'levit.onnx'), dynamo=False)


def test_upernet_recipe():
    """LeViT-256 UperNet: Swin-T's ADE20K recipe with the backbone swapped, UperNet on strides 16/32/64, the bias
    tables laid out for 512 crops and resized from the 224 checkpoint on load, no decay on the bias tables."""
    from mmengine import Config
    cfg = Config.fromfile(str(ROOT / 'configs' / 'levit_256_upernet.py'))
    bcfg = cfg.model.backbone
    assert bcfg.type == 'vit_backbones.LeViT' and bcfg.arch == '256' and bcfg.pretrain_img_size == (512, 512)
    assert bcfg.drop_path_rate == 0.1 and bcfg.norm_eval is False and cfg.sync_bn == 'torch'
    url = 'https://huggingface.co/timm/levit_256.fb_dist_in1k/resolve/main/model.safetensors'
    assert bcfg.init_cfg == dict(type='Pretrained', checkpoint=url)
    head, aux = cfg.model.decode_head, cfg.model.auxiliary_head
    assert list(head.in_channels) == [256, 384, 512] and list(head.in_index) == [0, 1, 2]
    assert (aux.in_index, aux.in_channels) == (1, 384) and head.num_classes == aux.num_classes == 150
    assert cfg.optim_wrapper.paramwise_cfg.custom_keys == dict(attention_biases=dict(decay_mult=0.0))
    assert cfg.optim_wrapper.optimizer == dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01)
    assert cfg.train_cfg.max_iters == 160000 and cfg.crop_size == (512, 512)
    built = LeViT(**{k: v for k, v in bcfg.items() if k not in ('type', 'init_cfg')})
    assert built.out_channels == (256, 384, 512) and built.out_strides == (16, 32, 64)
    tables = [m.table_size for m in built.modules() if isinstance(m, LeViTAttention)]
    assert tables == [(32, 32)] * 5 + [(16, 16)] * 5 + [(8, 8)] * 4  # a shrink attention reads the grid before it
