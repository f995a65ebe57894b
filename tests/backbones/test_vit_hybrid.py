"""HybridVisionTransformer specifics: the ResNet maps beside the ViT's, 'SAME' padding, weight standardisation,
freezing and layer depths of the CNN, the position grid rule, and the presets' shapes against timm's."""
import pytest
import torch
from torch import nn

from vit_backbones.backbones import HybridVisionTransformer
from vit_backbones.backbones.vit_hybrid import ARCHS, Bottleneck, StdConv2d, pad_same, same_padding
from vit_backbones.converters import convert_to_ours

from .tiny_archs import TINY

TINY_KW = TINY['HybridVisionTransformer'][0]  # stem 64, ResNet stages (1, 2, 1) of width 256; 4 blocks


def _tiny(**overrides) -> HybridVisionTransformer:
    return HybridVisionTransformer(**dict(TINY_KW, **overrides))


@pytest.mark.parametrize('size,kernel,stride,want', [
    (224, 7, 2, (2, 3)), (225, 7, 2, (3, 3)), (1, 7, 2, (3, 3)), (2, 7, 2, (2, 3)),
    (112, 3, 2, (0, 1)), (57, 3, 2, (1, 1)), (1, 3, 2, (1, 1)), (9, 3, 1, (1, 1))])
def test_same_padding_is_tensorflows_and_depends_on_the_size(size, kernel, stride, want):
    """TF 'SAME': ceil(x / s) outputs after (ceil(x / s) - 1) * s + k - x zeros, the smaller half before."""
    assert same_padding(size, kernel, stride) == want
    x = torch.randn(1, 1, size, size)
    assert pad_same(x, kernel, stride).shape[-1] == size + sum(want)
    out = nn.functional.max_pool2d(pad_same(x, kernel, stride), kernel, stride)
    assert out.shape[-1] == -(-size // stride)


def test_weight_standardisation_ignores_a_per_channel_scale_and_shift_of_the_weights():
    torch.manual_seed(0)
    conv = StdConv2d(8, 16, 3, stride=2)
    x = torch.randn(2, 8, 11, 10)
    before = conv(x)
    w = conv.standardized_weight()
    torch.testing.assert_close(w.mean(dim=(1, 2, 3)), torch.zeros(16), atol=1e-6, rtol=0)
    torch.testing.assert_close(w.var(dim=(1, 2, 3), correction=0), torch.ones(16), atol=1e-5, rtol=0)
    with torch.no_grad():
        conv.weight.mul_(torch.rand(16, 1, 1, 1) * 5 + 0.5).add_(torch.randn(16, 1, 1, 1))
    torch.testing.assert_close(conv(x), before, rtol=1e-4, atol=1e-4)
    assert before.shape == (2, 16, 6, 5)  # ceil(11 / 2), ceil(10 / 2)


def test_cnn_maps_come_first_at_strides_4_and_8_and_leave_the_vit_maps_unchanged():
    torch.manual_seed(0)
    plain = _tiny().eval()
    model = _tiny(cnn_out_indices=(0, 1)).eval()
    model.load_state_dict(plain.state_dict(), strict=True)  # the same keys: outputs are a forward option
    assert model.out_channels == (256, 256, 32, 32, 32, 32)
    assert model.out_strides == (4, 8, 16, 16, 16, 16)
    for H, W in [(224, 224), (230, 197), (112, 137), (31, 31)]:
        x = torch.randn(2, 3, H, W)
        with torch.no_grad():
            outs = model(x)
            vit = plain(x)
            resnet = model.patch_embed.backbone(x)  # stem, stage 0, stage 1, stage 2
        assert len(outs) == len(model.out_channels)
        for out, c, s in zip(outs, model.out_channels, model.out_strides):
            assert out.shape == (2, c, -(-H // s), -(-W // s)) and out.is_contiguous()
        torch.testing.assert_close(outs[0], resnet[1], rtol=0, atol=0)
        torch.testing.assert_close(outs[1], resnet[2], rtol=0, atol=0)
        for got, want in zip(outs[2:], vit):
            torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_cnn_out_indices_keep_their_order_and_count_from_the_end():
    model = _tiny(cnn_out_indices=(-1, 0), out_indices=(3,), output_cls_token=True).eval()
    assert model.cnn_out_indices == (2, 0)
    assert model.out_channels == (256, 256, 32) and model.out_strides == (16, 4, 16)
    outs = model(torch.randn(1, 3, 64, 96))
    assert [tuple(o.shape) for o in outs] == [(1, 256, 4, 6), (1, 256, 16, 24), (1, 32, 4, 6), (1, 32)]


def test_with_cp_checkpoints_the_resnet_bottlenecks_too():
    torch.manual_seed(0)
    plain = _tiny(cnn_out_indices=(0, 1), drop_path_rate=0.0).train()
    ckpt = _tiny(cnn_out_indices=(0, 1), drop_path_rate=0.0, with_cp=True).train()
    ckpt.load_state_dict(plain.state_dict())
    calls = []
    bottlenecks = [m for m in ckpt.modules() if isinstance(m, Bottleneck)]
    assert len(bottlenecks) == 4
    for block in bottlenecks:
        block.conv1.register_forward_pre_hook(lambda module, args: calls.append(module))
    x = torch.randn(2, 3, 48, 40)
    outs = [m(x) for m in (plain, ckpt)]
    for a, b in zip(*outs):
        torch.testing.assert_close(a, b)
    for out in outs:
        sum(o.square().mean() for o in out).backward()
    assert len(calls) == 2 * len(bottlenecks)  # each recomputed once in backward
    for (name, p), (_, q) in zip(plain.named_parameters(), ckpt.named_parameters()):
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        torch.testing.assert_close(p.grad, q.grad, msg=name)
    ckpt.with_cp = False
    assert not any(stage.with_cp for stage in ckpt.patch_embed.backbone.stages)


def test_frozen_stages_freeze_the_whole_resnet_with_the_embedding_at_layer_depth_zero():
    model = _tiny(frozen_stages=1).train()
    for name, param in model.named_parameters():
        frozen = name.startswith(('patch_embed.', 'cls_token', 'pos_embed', 'blocks.0.'))
        assert param.requires_grad == (not frozen), name
    assert not any(m.training for m in model.patch_embed.modules())
    top = model.num_layers() + 1
    assert model.get_layer_depth('patch_embed.backbone.stages.1.blocks.1.conv2.weight') == (0, top)
    assert model.get_layer_depth('patch_embed.backbone.stem.norm.bias') == (0, top)
    assert model.get_layer_depth('patch_embed.proj.weight') == (0, top)
    assert model.get_layer_depth('blocks.2.attn.qkv.weight') == (3, top)


def test_position_grid_rounds_like_timms_hybrid_embedding():
    """timm measures the grid by running the CNN ('SAME': ceil) and then floors by the patch."""
    assert _tiny(pretrain_img_size=(200, 100)).pos_grid == (13, 7)  # ceil(200 / 16), ceil(100 / 16)
    p8 = HybridVisionTransformer(**dict(TINY['HybridVisionTransformer@p8'][0], pretrain_img_size=(100, 64)))
    assert p8.pos_grid == (3, 2)  # ceil(100 / 4) // 8, 16 // 8
    assert p8.out_strides == (32,) * 4


def test_a_stem_only_timm_checkpoint_is_renamed():
    torch.manual_seed(0)
    model = HybridVisionTransformer(**TINY['HybridVisionTransformer@p8'][0])
    ours = model.state_dict()
    timm_style = {k.replace('patch_embed.backbone.stem.', 'patch_embed.backbone.'): v for k, v in ours.items()}
    converted = convert_to_ours(timm_style, 'vit_hybrid')
    assert converted.source == 'timm' and set(converted.state_dict) == set(ours)
    model.load_state_dict(timm_style, strict=True)


@pytest.mark.parametrize('arch', sorted(ARCHS))
def test_presets_have_timms_parameter_shapes_and_strides(arch):
    timm = pytest.importorskip('timm')
    size = 384 if arch == 'base_r50_s16' else 224
    with torch.device('meta'):
        ours = HybridVisionTransformer(arch, pretrain_img_size=size, out_indices=-1)
        ref = timm.create_model(f'vit_{arch}_{size}', pretrained=False, num_classes=0)
    want = {k: tuple(v.shape) for k, v in convert_to_ours(ref.state_dict(), 'vit_hybrid').state_dict.items()}
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == want
    stride = 16 if arch == 'base_r50_s16' else 32
    assert ours.out_strides == (stride,) and ours.pos_grid == (size // stride,) * 2
