"""VisionTransformer specifics: position-embedding resizing on load, prefix tokens, layer depths, export errors."""
import warnings

import pytest
import timm.layers
import torch

from vit_backbones.backbones import VisionTransformer
from vit_backbones.converters import CheckpointMismatchError
from vit_backbones.layers import rel_pos_table, resample_abs_pos_embed

TINY = dict(arch=dict(embed_dim=32, depth=4, num_heads=2, mlp_ratio=2.0), pretrain_img_size=64)


def test_load_resizes_the_position_grid_like_timm():
    torch.manual_seed(0)
    source = VisionTransformer(**TINY, distilled=True).state_dict()  # (1, 2 + 4*4, 32)
    model = VisionTransformer(**dict(TINY, pretrain_img_size=96), distilled=True)  # grid 6 x 6
    model.load_state_dict(source)
    want = timm.layers.resample_abs_pos_embed(source['pos_embed'], (6, 6), num_prefix_tokens=2)
    torch.testing.assert_close(model.pos_embed.data, want)
    torch.testing.assert_close(model.pos_embed.data[:, :2], source['pos_embed'][:, :2], rtol=0, atol=0)


def test_a_token_free_model_takes_the_grid_rows_of_a_cls_checkpoint():
    """MAE / DeiT -> ViTDet: the cls row is dropped and the grid resized to ``pretrain_img_size``."""
    torch.manual_seed(0)
    source = VisionTransformer(**TINY).state_dict()
    model = VisionTransformer(**dict(TINY, pretrain_img_size=128), with_cls_token=False, window_size=3,
                              window_block_indexes=(0,), use_rel_pos=True)
    missing, unexpected = model.load_state_dict(source, strict=False)
    assert unexpected == ['cls_token'] and all('rel_pos' in k for k in missing)  # reported, not silently dropped
    want = resample_abs_pos_embed(source['pos_embed'][:, 1:], (8, 8), (4, 4), num_prefix_tokens=0)
    torch.testing.assert_close(model.pos_embed.data, want)


def test_forward_resizing_equals_timm_resample_at_any_grid():
    model = VisionTransformer(**TINY).eval()
    seen = {}
    model.pos_drop.register_forward_hook(lambda m, args, out: seen.update(x=args[0]))
    x = torch.randn(1, 3, 80, 112)  # grid 5 x 7 from 4 x 4
    tokens = model.patch_embed(x).reshape(1, 35, 32)  # (B, h, w, C) -> (B, N, C)
    model(x)
    pos = timm.layers.resample_abs_pos_embed(model.pos_embed, (5, 7), num_prefix_tokens=1)
    want = torch.cat([model.cls_token, tokens], 1) + pos
    torch.testing.assert_close(seen['x'], want)


def test_a_non_square_checkpoint_grid_is_a_clear_error():
    model = VisionTransformer(**TINY)
    sd = model.state_dict()
    sd['pos_embed'] = torch.zeros(1, 1 + 12, 32)
    with pytest.raises(CheckpointMismatchError, match='square grid'):
        model.load_state_dict(sd)


def test_cls_and_distillation_tokens_follow_the_maps():
    model = VisionTransformer(**TINY, distilled=True, out_indices=(1, 3), output_cls_token=True).eval()
    outs = model(torch.randn(2, 3, 50, 70))
    assert [tuple(o.shape) for o in outs] == [(2, 32, 4, 5), (2, 32, 4, 5), (2, 32), (2, 32)]


def test_layer_depths_follow_beit():
    model = VisionTransformer(**TINY, distilled=True)
    top = 4 + 1
    assert model.num_layers() == 4
    for name in ('patch_embed.proj.weight', 'cls_token', 'dist_token', 'pos_embed'):
        assert model.get_layer_depth(name) == (0, top)
    assert model.get_layer_depth('blocks.2.attn.qkv.weight') == (3, top)
    assert model.get_layer_depth('norm.weight') == (top, top)


def test_frozen_stages_cover_embedding_and_first_blocks():
    model = VisionTransformer(**TINY, frozen_stages=2)
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert {'cls_token', 'pos_embed', 'patch_embed.proj.weight', 'blocks.1.mlp.fc2.bias'} <= frozen
    assert not any(n.startswith(('blocks.2.', 'blocks.3.', 'norm.')) for n in frozen)
    assert not VisionTransformer(**TINY, frozen_stages=4).norm.weight.requires_grad


def test_rel_pos_table_matches_the_sam_reference():
    from timm.models.vision_transformer_sam import get_rel_pos
    table = torch.randn(2 * 7 - 1, 8)
    for size in (7, 12, 5, 1):
        torch.testing.assert_close(rel_pos_table(size, table), get_rel_pos(size, size, table))


def test_legacy_onnx_export_of_an_antialiased_resize_is_a_clear_error(tmp_path):
    model = VisionTransformer(**TINY).eval()
    with warnings.catch_warnings(), pytest.raises(RuntimeError, match='interpolate_antialias=False'):
        warnings.simplefilter('ignore')
        torch.onnx.export(model, (torch.randn(1, 3, 64, 64),), str(tmp_path / 'vit.onnx'), dynamo=False)


def test_token_options_are_checked():
    with pytest.raises(ValueError, match='with_cls_token'):
        VisionTransformer(**TINY, use_rel_pos=True)
    with pytest.raises(ValueError, match='window_size'):
        VisionTransformer(**TINY, with_cls_token=False, window_block_indexes=(0,))
