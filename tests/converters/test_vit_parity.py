"""timm ViT / DeiT / SAM-ViT and mmseg ViT checkpoints -> ours give the references' outputs, block by block.

Each reference is random-initialised (every parameter, so that no zero bias or unit norm hides a wrong mapping),
its state dict converted on load (strict), and every block's output compared with ``allclose`` at 224 and at a
non-square size that is not 224 (the position embedding, and for SAM the relative tables, are resized).
"""
import pytest
import timm
import torch
from mmseg.models.backbones import VisionTransformer as MMSegViT

from vit_backbones.backbones import VisionTransformer
from vit_backbones.converters import FAMILIES, convert_to_ours, export_from_ours

from .reference_init import randomise

pytestmark = pytest.mark.parity
TOL = dict(rtol=1e-4, atol=1e-4)
SIZES = [(224, 224), (160, 256)]
SAM_WINDOW_BLOCKS = [i for i in range(12) if i not in (2, 5, 8, 11)]  # samvit_base: global attention in 2/5/8/11

# timm name -> (our constructor kwargs, timm kwargs)
TIMM_VITS = {
    'vit_tiny_patch16_224': (dict(arch='tiny'), {}),
    'vit_small_patch16_224': (dict(arch='small'), {}),
    'vit_base_patch16_224': (dict(arch='base'), {}),
    'deit_small_distilled_patch16_224': (dict(arch='small', distilled=True), {}),
    'vit_small_patch16_224@ls': (dict(arch='small', layer_scale_init_value=1e-5), dict(init_values=1e-5)),
}


def _timm(name: str, **kwargs) -> torch.nn.Module:
    return randomise(timm.create_model(name.split('@')[0], pretrained=False, num_classes=0, **kwargs), seed=1)


@pytest.mark.parametrize('name', sorted(TIMM_VITS))
@pytest.mark.parametrize('fused', [True, False], ids=['fused', 'math'])
def test_timm_vit_and_deit_blocks_match(name, fused):
    ours_kwargs, timm_kwargs = TIMM_VITS[name]
    if not fused and name != 'vit_small_patch16_224':
        pytest.skip('the math path is checked on one model')
    ref = _timm(name, dynamic_img_size=True, **timm_kwargs)
    depth = len(ref.blocks)
    ours = VisionTransformer(**ours_kwargs, out_indices=tuple(range(depth)), output_cls_token=True,
                             fused_attn=fused).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    for size in SIZES:
        x = torch.randn(2, 3, *size)
        with torch.no_grad():
            outs = ours(x)
            blocks = ref.forward_intermediates(x, indices=depth, norm=False, intermediates_only=True)
            final = ref.forward_features(x)  # (B, P + N, C), after the final norm
        P = ref.num_prefix_tokens
        maps, tokens = outs[:depth], outs[depth:]
        for i in range(depth - 1):
            torch.testing.assert_close(maps[i], blocks[i], **TOL, msg=f'{name} block {i} at {size}')
        h, w = size[0] // 16, size[1] // 16
        last = final[:, P:].reshape(2, h, w, -1).permute(0, 3, 1, 2)  # (B, N, C) -> (B, C, h, w)
        torch.testing.assert_close(maps[-1], last, **TOL)
        assert len(tokens) == P
        for j, token in enumerate(tokens):
            torch.testing.assert_close(token, final[:, j], **TOL)


@pytest.mark.parametrize('size', [(256, 256), (224, 320)])
def test_timm_samvit_base_blocks_match(size):
    """SAM ViT-B (ViTDet form: windows of 14 padded, global blocks 2/5/8/11, decomposed rel pos, no cls token),
    pre-trained grid 16 x 16; at 224 x 320 the global tables and the position grid are interpolated."""
    ref = randomise(timm.create_model('samvit_base_patch16', pretrained=False, img_size=256, num_classes=0), seed=2)
    ours = VisionTransformer(arch='base', with_cls_token=False, pretrain_img_size=256, window_size=14,
                             window_block_indexes=SAM_WINDOW_BLOCKS, use_rel_pos=True,
                             final_norm=False, out_indices=tuple(range(12))).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        outs = ours(x)
        blocks = ref.forward_intermediates(x, indices=12, norm=False, intermediates_only=True)
    for i, (got, want) in enumerate(zip(outs, blocks)):
        torch.testing.assert_close(got, want, **TOL, msg=f'block {i}')


def test_official_sam_checkpoint_keys_convert():
    """The Segment Anything release prefixes the encoder with ``image_encoder.`` and names the MLP ``lin1/lin2``."""
    ref = timm.create_model('samvit_base_patch16', pretrained=False, img_size=256, num_classes=0)
    official = {f'image_encoder.{k}'.replace('.mlp.fc', '.mlp.lin'): v for k, v in ref.state_dict().items()}
    official['mask_decoder.output_upscaling.0.weight'] = torch.zeros(1)
    converted = convert_to_ours(official, 'vit')
    assert converted.source == 'samvit'
    assert 'mask_decoder.output_upscaling.0.weight' in converted.dropped
    assert converted.state_dict['pos_embed'].shape == (1, 256, 768)
    assert 'blocks.0.mlp.fc1.weight' in converted.state_dict


@pytest.mark.parametrize('size', [(224, 224), (160, 256)])
def test_mmseg_vit_matches(size):
    """mmseg's ViT (in_proj attention, ``ln1`` final norm, corner padding, bicubic resize without antialias)."""
    ref = MMSegViT(img_size=224, embed_dims=192, num_layers=12, num_heads=3, norm_cfg=dict(type='LN', eps=1e-6),
                   final_norm=True, patch_bias=True, out_indices=(2, 5, 8, 11))
    randomise(ref, seed=3)
    ours = VisionTransformer(arch='tiny', out_indices=(2, 5, 8, 11), interpolate_antialias=False).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        for got, want in zip(ours(x), ref(x)):
            torch.testing.assert_close(got, want, **TOL)
    exported = export_from_ours(ours.state_dict(), 'vit', 'mm').state_dict
    assert ref.load_state_dict(exported, strict=True)


def test_timm_heads_and_mae_decoder_are_dropped_and_exports_round_trip():
    ref = _timm('deit_small_distilled_patch16_224')
    sd = dict(ref.state_dict())
    sd.update({'head.weight': torch.zeros(10, 384), 'head_dist.weight': torch.zeros(10, 384),
               'mask_token': torch.zeros(1, 1, 384), 'decoder_embed.weight': torch.zeros(8, 384)})
    converted = convert_to_ours(sd, 'vit')
    assert converted.source == 'timm'
    assert set(converted.dropped) == {'head.weight', 'head_dist.weight', 'mask_token', 'decoder_embed.weight'}
    ours = VisionTransformer(arch='small', distilled=True)
    ours.load_state_dict(sd, strict=True)
    back = export_from_ours(ours.state_dict(), 'vit', 'timm').state_dict
    assert ref.load_state_dict(back, strict=True)
    for key, value in ref.state_dict().items():
        torch.testing.assert_close(back[key], value, rtol=0, atol=0)
    assert {'timm', 'samvit', 'mm'} <= set(FAMILIES['vit'].exporters())


def test_samvit_export_round_trips():
    ref = randomise(timm.create_model('samvit_base_patch16', pretrained=False, img_size=256, num_classes=0), seed=4)
    ours = VisionTransformer(arch='base', with_cls_token=False, pretrain_img_size=256, window_size=14,
                             window_block_indexes=SAM_WINDOW_BLOCKS, use_rel_pos=True, final_norm=False)
    ours.load_state_dict(ref.state_dict(), strict=True)
    back = export_from_ours(ours.state_dict(), 'vit', 'samvit').state_dict
    missing, unexpected = ref.load_state_dict(back, strict=False)
    assert not unexpected and all(k.startswith('neck.') for k in missing)
    torch.testing.assert_close(back['pos_embed'], ref.state_dict()['pos_embed'], rtol=0, atol=0)
