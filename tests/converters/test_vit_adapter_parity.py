"""Official ViT-Adapter checkpoints -> ours give the official outputs; plain ViT checkpoints fill the ViT part.

The reference (``vit_adapter_reference.py``) is an independent plain-PyTorch model in the official checkpoint
layout (its own ``grid_sample`` deformable sampling, no mmcv). Tiny archs, inputs of 64 x 96 (a 4 x 6 ViT grid).
"""
import pytest
import torch

from vit_backbones.backbones import ViTAdapter
from vit_backbones.converters import FAMILIES, convert_to_ours, export_from_ours
from vit_backbones.engine import register_checkpoint_io

from .reference_init import randomise
from .vit_adapter_reference import RefViTAdapter, liven

pytestmark = pytest.mark.parity
# Deformable sampling makes outputs sensitive to rounding: float32 agrees to about 1e-4; in float64 only the
# position-embedding resize stays in float32 (the ViT resizes in float32, as timm does).
TOL = dict(rtol=1e-4, atol=5e-4)
TOL64 = dict(rtol=1e-5, atol=1e-5)
ARCH = dict(embed_dim=32, depth=4, num_heads=2, mlp_ratio=2.0)
ADAPTER = dict(conv_inplane=8, deform_num_heads=2)


def reference(seed: int = 0, **kwargs) -> RefViTAdapter:
    kwargs = {'pretrain_size': 64, 'deform_ratio': 0.5, **kwargs}
    model = RefViTAdapter(32, 4, 2, [[0, 0], [1, 1], [2, 2], [3, 3]], mlp_ratio=2.0, conv_inplane=8,
                          deform_num_heads=2, **kwargs)
    return liven(randomise(model, seed=seed, vector_std=0.05), offset_gain=10.0)  # 4 interactions amplify rounding


def ours(**kwargs) -> ViTAdapter:
    kwargs = {'pretrain_img_size': 64, 'deform_ratio': 0.5, **kwargs}
    return ViTAdapter(ARCH, **ADAPTER, **kwargs)


def _check(model: ViTAdapter, ref: RefViTAdapter, x: torch.Tensor) -> None:
    """Fused and math attention in float32, then both models in float64."""
    model.eval()
    with torch.no_grad():
        expected = ref(x)
        assert min(e.std() for e in expected) > 0.1  # a non-degenerate reference
        for fused in (True, False):
            model.set_fused_attn(fused)
            outs = model(x)
            assert [tuple(o.shape) for o in outs] == [tuple(e.shape) for e in expected]
            for a, b in zip(outs, expected):
                torch.testing.assert_close(a, b, **TOL)
        for a, b in zip(model.double()(x.double()), ref.double()(x.double())):
            torch.testing.assert_close(a, b, **TOL64)
    model.float()
    ref.float()


def test_reference_is_the_official_layout_and_converts_to_ours_key_for_key():
    sd = reference().state_dict()
    assert FAMILIES['vit_adapter'].detect(sd).name == 'official'
    converted = convert_to_ours(sd, 'vit_adapter')
    assert converted.source == 'official' and not converted.dropped
    own = ours(layer_scale_init_value=1.0).state_dict()
    assert converted.state_dict.keys() == own.keys()
    assert all(converted.state_dict[k].shape == own[k].shape for k in own)


@pytest.mark.parametrize('layer_scale', [1.0, 0.0], ids=['layer_scale', 'folded'])
@pytest.mark.parametrize('segmentation', [False, True], ids=['mmdet', 'mmseg'])
def test_official_weights_give_the_official_outputs(layer_scale, segmentation):
    ref = reference(segmentation=segmentation)
    model = ours(layer_scale_init_value=layer_scale, vit_feature='interactions' if segmentation else 'last')
    model.load_state_dict(ref.state_dict(), strict=True)  # the load hook converts the official layout
    _check(model, ref.eval(), torch.randn(2, 3, 64, 96))


@pytest.mark.parametrize('kwargs', [
    dict(deform_ratio=1.0),
    dict(pretrain_size=128),  # the position grid shrinks 8x8 -> 4x6: bicubic without antialias, as the official
    dict(use_extra_extractor=False, with_cffn=False, cffn_ratio=0.5, add_vit_feature=False),
], ids=['ratio1', 'pos-shrink', 'plain'])
def test_official_options(kwargs):
    ref = reference(seed=1, **kwargs)
    ours_kwargs = {('pretrain_img_size' if k == 'pretrain_size' else k): v for k, v in kwargs.items()}
    model = ours(**ours_kwargs)
    model.load_state_dict(ref.state_dict(), strict=True)
    _check(model, ref.eval(), torch.randn(2, 3, 64, 96))


@pytest.mark.parametrize('window', [2, 4], ids=['tiling', 'padded'])
def test_windowed_blocks(window):
    """Windows of 2 tile the 4 x 6 grid; windows of 4 need padding, where the official model zero-pads q, k, v after
    the projection (our default ``window_pad='qkv'``)."""
    ref = reference(seed=2, window_attn=[True, False, True, False], window_size=[window, None, window, None])
    model = ours(window_size=window, window_block_indexes=(0, 2))
    model.load_state_dict(ref.state_dict(), strict=True)
    _check(model, ref.eval(), torch.randn(2, 3, 64, 96))


def test_token_padding_differs_from_the_official_qkv_padding_only_where_windows_pad():
    """``window_pad='tokens'`` (ViTDet's) pads before the qkv projection: padded keys carry the qkv bias, so the
    outputs move away from the official ones on a grid the windows do not tile, and not on one they tile."""
    x = torch.randn(1, 3, 64, 96)
    for window, same in ((2, True), (4, False)):
        ref = reference(seed=2, window_attn=[True] * 4, window_size=[window] * 4).eval()
        model = ours(window_size=window, window_block_indexes=(0, 1, 2, 3), window_pad='tokens').eval()
        model.load_state_dict(ref.state_dict(), strict=True)
        with torch.no_grad():
            close = [torch.allclose(a, b, **TOL) for a, b in zip(model(x), ref(x))]
        assert all(close) if same else not any(close), (window, close)


def test_other_sizes_are_the_official_outputs_on_the_padded_image_cropped():
    ref = reference(seed=3).eval()
    model = ours().eval()
    model.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(1, 3, 50, 81)
    with torch.no_grad():
        expected = ref(torch.nn.functional.pad(x, (0, 96 - 81, 0, 64 - 50)))
        for out, full, s in zip(model(x), expected, (4, 8, 16, 32)):
            torch.testing.assert_close(out, full[..., :-(-50 // s), :-(-81 // s)], **TOL)


def test_whole_model_checkpoint_file_through_init_cfg(tmp_path):
    register_checkpoint_io()
    ref = reference(seed=4)
    state = {f'backbone.{k}': v for k, v in ref.state_dict().items()}
    state.update({'neck.lateral_convs.0.conv.weight': torch.zeros(8, 32, 1, 1)})
    torch.save({'meta': {}, 'state_dict': state}, tmp_path / 'mask_rcnn_deit_adapter_tiny_fpn_3x_coco.pth')
    model = ours(init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'mask_rcnn_deit_adapter_tiny_fpn_3x_coco'
                                                                '.pth')))
    model.init_weights()
    _check(model, ref.eval(), torch.randn(1, 3, 64, 96))


def test_a_plain_vit_checkpoint_initialises_the_vit_and_keeps_the_adapter():
    ref = reference(seed=5)
    timm = {k: v for k, v in ref.state_dict().items() if k.startswith(('patch_embed.', 'blocks.', 'pos_embed'))
            and '.gamma' not in k}
    timm.update(cls_token=torch.randn(1, 1, 32), **{'norm.weight': torch.ones(32), 'norm.bias': torch.zeros(32),
                                                    'head.weight': torch.zeros(10, 32), 'head.bias': torch.zeros(10)})
    model = ours()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    converted = model.convert_state_dict(timm, model.state_dict())
    assert converted.source == 'vit/timm'
    assert set(converted.dropped) == {'cls_token', 'norm.weight', 'norm.bias', 'head.weight', 'head.bias'}
    model.load_state_dict(timm, strict=True)
    after = model.state_dict()
    for key, value in after.items():
        if key.startswith(('patch_embed.', 'blocks.')):
            torch.testing.assert_close(value, timm[key], rtol=0, atol=0)
        elif key == 'pos_embed':
            torch.testing.assert_close(value, timm[key][:, 1:], rtol=0, atol=0)
        else:
            torch.testing.assert_close(value, before[key], rtol=0, atol=0)


@pytest.mark.parametrize('layer_scale', [1.0, 0.0], ids=['layer_scale', 'none'])
def test_export_to_the_official_layout_loads_strictly_and_gives_the_same_outputs(layer_scale):
    ref = reference(seed=6)
    model = ours(layer_scale_init_value=layer_scale)
    model.load_state_dict(ref.state_dict(), strict=True)
    exported = export_from_ours(model.state_dict(), 'vit_adapter', 'official').state_dict
    back = RefViTAdapter(32, 4, 2, [[0, 0], [1, 1], [2, 2], [3, 3]], mlp_ratio=2.0, pretrain_size=64,
                         conv_inplane=8, deform_num_heads=2, deform_ratio=0.5)
    back.load_state_dict(exported, strict=True)
    _check(model, back.eval(), torch.randn(1, 3, 64, 96))
    official = ref.state_dict()
    if layer_scale:  # exact round trip but for the unused cls row of the position embedding (exported as zeros)
        assert exported.keys() == official.keys()
        for key in official:
            a, b = exported[key], official[key]
            assert torch.equal(a[:, 1:], b[:, 1:]) if key == 'pos_embed' else torch.equal(a, b), key


def test_layer_decay_depths_follow_the_official_constructor():
    model = ours()
    top = model.num_layers() + 1
    assert model.num_layers() == 4
    assert model.get_layer_depth('patch_embed.proj.weight') == (0, top)
    assert model.get_layer_depth('pos_embed') == (0, top)
    assert model.get_layer_depth('blocks.2.mlp.fc1.weight') == (3, top)
    for name in ('level_embed', 'spm.stem.0.weight', 'interactions.0.injector.gamma', 'up.weight', 'norm4.bias',
                 'interactions.3.extra_extractors.1.ffn.dwconv.dwconv.weight'):
        assert model.get_layer_depth(name) == (top, top), name
