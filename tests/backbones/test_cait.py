"""CaiT behaviour beyond the shared contract: presets, the class-attention head built and run only when asked,
uniform stochastic depth, position-embedding resizing, talking heads on the math path, layer depths, the recipe."""
import warnings
from pathlib import Path

import pytest
import timm.layers
import timm.models.cait
import torch
from mmengine import Config

from vit_backbones.backbones import CaiT
from vit_backbones.backbones.cait import ARCHS, ClassAttentionBlock
from vit_backbones.converters import CheckpointMismatchError
from vit_backbones.layers import DropPath

from .tiny_archs import TINY

KWARGS = dict(TINY['CaiT'][0], drop_path_rate=0.0)
ARCH = KWARGS['arch']
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize('name', sorted(ARCHS))
def test_presets_are_timms_model_arguments(name, monkeypatch):
    """Each preset equals the arguments timm's ``cait_{name}_*`` passes to ``Cait`` (read from timm itself)."""
    monkeypatch.setattr(timm.models.cait, '_create_cait', lambda variant, pretrained=False, **kwargs: kwargs)
    entries = [fn for fn in dir(timm.models.cait) if fn.startswith(f'cait_{name}_')]
    assert entries
    for entry in entries:
        args = getattr(timm.models.cait, entry)()
        assert args.pop('patch_size') == 16
        assert args == ARCHS[name], entry


def test_class_attention_head_is_built_and_run_only_when_asked():
    torch.manual_seed(0)
    dense = CaiT(**dict(KWARGS, out_indices=(1,)))
    assert dense.cls_token is None and dense.blocks_token_only is None and len(dense.blocks) == 2
    assert isinstance(dense.norm, torch.nn.Identity)  # the last block is not built
    model = CaiT(**dict(KWARGS, out_indices=(1,)), output_cls_token=True).eval()
    assert len(model.blocks) == 4 and len(model.blocks_token_only) == 2  # class attention needs the last block
    calls = []
    for block in model.blocks_token_only:
        block.register_forward_hook(lambda module, args, out: calls.append(out.shape))
    x = torch.randn(2, 3, 50, 70)
    with torch.no_grad():
        outs = model(x)
        feats, tokens = model.forward_tokens(x)
    assert [tuple(o.shape) for o in outs] == [(2, 32, 4, 5), (2, 32)]
    assert calls == [(2, 1, 32)] * 2
    with torch.no_grad():
        torch.testing.assert_close(outs[1], model.forward_cls(tokens))
    model.output_cls_token = False  # the head is skipped, the maps unchanged
    with torch.no_grad():
        maps = model(x)
    assert len(maps) == 1 and torch.equal(maps[0], outs[0]) and len(calls) == 4


def test_class_attention_updates_only_the_cls_token_from_all_tokens():
    torch.manual_seed(0)
    block = ClassAttentionBlock(32, 2, 4.0, True, 0.5).eval()
    x, cls = torch.randn(2, 6, 32), torch.randn(2, 1, 32)
    out = block(x, cls)
    assert out.shape == (2, 1, 32)
    x2 = x.clone()
    x2[:, 3] += torch.randn(32)  # not a constant: LayerNorm would remove a shift of every channel
    assert not torch.allclose(block(x2, cls), out)  # every patch token is a key / value
    z = block.norm1(torch.cat([cls, x], 1))
    attn = ((block.attn.q(z[:, :1]).reshape(2, 1, 2, 16).transpose(1, 2) * 16 ** -0.5)
            @ block.attn.k(z).reshape(2, 7, 2, 16).permute(0, 2, 3, 1)).softmax(-1)  # (B, h, 1, 1 + N)
    mixed = (attn @ block.attn.v(z).reshape(2, 7, 2, 16).transpose(1, 2)).transpose(1, 2).reshape(2, 1, 32)
    want = cls + block.ls1(block.attn.proj(mixed))
    torch.testing.assert_close(out, want + block.ls2(block.mlp(block.norm2(want))))


def test_stochastic_depth_is_uniform_and_absent_from_class_attention():
    model = CaiT('xxs24', drop_path_rate=0.2, output_cls_token=True)
    probs = [[m.drop_prob for m in block.modules() if isinstance(m, DropPath)] for block in model.blocks]
    assert probs == [[0.2, 0.2]] * 24
    assert not any(isinstance(m, DropPath) for m in model.blocks_token_only.modules())


def test_talking_heads_take_the_math_path_and_fused_class_attention_agrees():
    torch.manual_seed(0)
    math = CaiT(**KWARGS, output_cls_token=True, fused_attn=False).eval()
    fused = CaiT(**KWARGS, output_cls_token=True, fused_attn=True).eval()
    fused.load_state_dict(math.state_dict())
    assert all(b.attn.talking_heads and b.attn._math_path_only() for b in fused.blocks)
    x = torch.randn(2, 3, 64, 80)
    with torch.no_grad():
        for a, b in zip(math(x), fused(x)):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_load_resizes_the_position_grid_like_timm():
    torch.manual_seed(0)
    source = CaiT(**KWARGS).state_dict()  # grid 4 x 4
    model = CaiT(**dict(KWARGS, pretrain_img_size=(96, 48)))  # grid 6 x 3: one side grows, one shrinks
    model.load_state_dict(source)
    want = timm.layers.resample_abs_pos_embed(source['pos_embed'], (6, 3), num_prefix_tokens=0)
    torch.testing.assert_close(model.pos_embed.data, want)
    sd = dict(source, pos_embed=torch.zeros(1, 12, 32))
    with pytest.raises(CheckpointMismatchError, match='square grid'):
        model.load_state_dict(sd)


def test_forward_resizing_equals_timm_resample_at_any_grid():
    model = CaiT(**KWARGS).eval()
    seen = {}
    model.pos_drop.register_forward_hook(lambda m, args, out: seen.update(x=args[0]))
    x = torch.randn(1, 3, 80, 112)  # grid 5 x 7 from 4 x 4
    tokens = model.patch_embed(x).reshape(1, 35, 32)  # (B, h, w, C) -> (B, N, C)
    with torch.no_grad():
        model(x)
        pos = timm.layers.resample_abs_pos_embed(model.pos_embed, (5, 7), num_prefix_tokens=0)
        torch.testing.assert_close(seen['x'], tokens + pos)


def test_final_norm_applies_to_the_last_map_only():
    torch.manual_seed(0)
    plain = CaiT(**KWARGS, final_norm=False).eval()
    normed = CaiT(**KWARGS).eval()
    assert isinstance(plain.norm, torch.nn.Identity)
    sd = plain.state_dict()
    normed.load_state_dict(dict(sd, **{'norm.weight': torch.ones(32), 'norm.bias': torch.zeros(32)}))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        a, b = plain(x), normed(x)
    assert all(torch.equal(p, q) for p, q in zip(a[:3], b[:3]))
    torch.testing.assert_close(b[3], torch.nn.functional.layer_norm(
        a[3].permute(0, 2, 3, 1), (32,), eps=1e-6).permute(0, 3, 1, 2))


def test_frozen_stages_cover_the_embeddings_blocks_and_with_the_last_the_head():
    model = CaiT(**KWARGS, output_cls_token=True, frozen_stages=2)
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert {'pos_embed', 'patch_embed.proj.weight', 'blocks.1.ls2.gamma'} <= frozen
    assert not any(n.startswith(('blocks.2.', 'blocks.3.', 'norm.', 'cls_token', 'blocks_token_only.'))
                   for n in frozen)
    model = CaiT(**KWARGS, output_cls_token=True, frozen_stages=4)
    assert not any(p.requires_grad for p in model.parameters())


def test_layer_depths_follow_beit():
    model = CaiT(**KWARGS, output_cls_token=True)
    top = 4 + 1
    assert model.num_layers() == 4
    for name in ('patch_embed.proj.weight', 'pos_embed'):
        assert model.get_layer_depth(name) == (0, top)
    assert model.get_layer_depth('blocks.2.attn.proj_l.weight') == (3, top)
    for name in ('norm.weight', 'cls_token', 'blocks_token_only.1.attn.q.weight'):
        assert model.get_layer_depth(name) == (top, top)


def test_legacy_onnx_export_of_an_antialiased_resize_is_a_clear_error(tmp_path):
    model = CaiT(**KWARGS).eval()
    with warnings.catch_warnings(), pytest.raises(RuntimeError, match='interpolate_antialias=False'):
        warnings.simplefilter('ignore')
        torch.onnx.export(model, (torch.randn(1, 3, 64, 64),), str(tmp_path / 'cait.onnx'), dynamo=False)


def test_cait_s24_upernet_recipe():
    """CaiT-S24 in mmseg's DeiT-S MultiLevelNeck recipe: blocks 5, 11, 17, 23, no head, grid of 512 crops."""
    cfg = Config.fromfile(str(REPO / 'configs' / 'cait_s24_upernet.py'))
    bcfg = cfg.model.backbone
    assert bcfg.type == 'vit_backbones.CaiT' and bcfg.arch == 's24' and tuple(bcfg.out_indices) == (5, 11, 17, 23)
    assert bcfg.pretrain_img_size == (512, 512) and not bcfg.final_norm and bcfg.drop_path_rate == 0.1
    assert bcfg.init_cfg == dict(type='Pretrained', checkpoint='https://dl.fbaipublicfiles.com/deit/S24_224.pth')
    assert timm.models.get_pretrained_cfg('cait_s24_224').url == bcfg.init_cfg.checkpoint
    assert cfg.model.neck == dict(type='MultiLevelNeck', in_channels=[384] * 4, out_channels=384,
                                  scales=[4, 2, 1, 0.5])
    assert cfg.optim_wrapper.paramwise_cfg.custom_keys == {k: dict(decay_mult=0.0) for k in ('pos_embed', 'norm')}
    backbone = CaiT(**{k: v for k, v in bcfg.items() if k not in ('type', 'init_cfg')})
    assert backbone.pos_grid == (32, 32) and len(backbone.blocks) == 24 and backbone.cls_token is None
    assert backbone.out_channels == (384,) * 4 and backbone.out_strides == (16,) * 4
