"""timm and official CaiT checkpoints -> ours give timm's outputs: every self-attention block's patch-token map and
the cls token after class attention and the final norm.

Each reference is random-initialised in every parameter (``randomise``), then its LayerScale vectors are set to
order-one values, its talking-heads mixings to the identity plus a real mix and its query/key projections scaled up,
so that no branch, head mixing or attention map is too small or too flat to show a wrong mapping or a misplaced
scale. Its state dict is converted on load (strict) and every output compared with ``allclose`` at 224 and at a
non-square size. timm's ``Cait`` only runs at its ``img_size`` (no ``dynamic_img_size``): at another size it is
built for that size, and our forward-time resize of a 224 grid is compared with timm's ``resample_abs_pos_embed``
applied at load time.
"""
import pytest
import timm
import timm.layers
import torch

from vit_backbones.backbones import CaiT
from vit_backbones.converters import OURS, convert_to_ours, export_from_ours, identify
from vit_backbones.engine.checkpoint_convert import convert_checkpoint_file

from .reference_init import randomise

pytestmark = pytest.mark.parity
TOL = dict(rtol=1e-4, atol=1e-4)
TINY = dict(embed_dim=64, depth=4, num_heads=4)  # a cait_xxs24-shaped model, smaller
# case -> (timm model, timm overrides, our arch, input sizes (timm built for each))
CASES = {
    'tiny': ('cait_xxs24_224', TINY, TINY, [(224, 224), (160, 256)]),
    'xxs24': ('cait_xxs24_224', {}, 'xxs24', [(224, 224)]),
    's24': ('cait_s24_224', {}, 's24', [(96, 128)]),  # a real preset at a small resolution
}


def _reference(name: str, seed: int = 1, **kwargs) -> torch.nn.Module:
    """A timm CaiT with every parameter random, LayerScale order one, real head mixing and peaked attention."""
    ref = randomise(timm.create_model(name, pretrained=False, num_classes=0, **kwargs), seed=seed)
    gen = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for pname, param in ref.named_parameters():
            if pname.endswith(('gamma_1', 'gamma_2')):
                param.copy_(torch.rand(param.shape, generator=gen) * 0.5 + 0.25)
            elif pname.endswith(('attn.proj_l.weight', 'attn.proj_w.weight')):
                param.copy_(torch.eye(param.shape[0]) + 0.3 * torch.randn(param.shape, generator=gen))
            elif pname.endswith(('attn.qkv.weight', 'attn.q.weight', 'attn.k.weight')):
                param.mul_(5.0)
    return ref


def _timm_outputs(ref: torch.nn.Module, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
    """timm's block maps (NCHW, the last one through the final norm, as ours) and its final-normed cls token."""
    depth = len(ref.blocks)
    with torch.no_grad():
        blocks = ref.forward_intermediates(x, indices=depth, norm=False, intermediates_only=True)
        final = ref.forward_features(x)  # (B, 1 + N, C): norm([cls after class attention, patch tokens])
    B, C, h, w = blocks[-1].shape
    last = final[:, 1:].reshape(B, h, w, C).permute(0, 3, 1, 2)  # (B, N, C) -> (B, C, h, w)
    return [*blocks[:-1], last], final[:, 0]


@pytest.mark.parametrize('case,fused', [(case, True) for case in sorted(CASES)] + [('tiny', False)],
                         ids=lambda v: v if isinstance(v, str) else ('fused' if v else 'math'))  # math: tiny arch
def test_timm_blocks_and_cls_token_match(case, fused):
    name, timm_kwargs, arch, sizes = CASES[case]
    for size in sizes:
        ref = _reference(name, img_size=size, **timm_kwargs)
        depth = len(ref.blocks)
        ours = CaiT(arch, pretrain_img_size=size, out_indices=tuple(range(depth)), output_cls_token=True,
                    fused_attn=fused).eval()
        ours.load_state_dict(ref.state_dict(), strict=True)
        x = torch.randn(2, 3, *size)
        with torch.no_grad():
            outs = ours(x)
        maps, cls = _timm_outputs(ref, x)
        assert len(outs) == depth + 1
        for i, (got, want) in enumerate(zip(outs[:depth], maps)):
            torch.testing.assert_close(got, want, **TOL, msg=f'{case} block {i} at {size}')
        torch.testing.assert_close(outs[-1], cls, **TOL, msg=f'{case} cls token at {size}')


@pytest.mark.parametrize('size', [(160, 256), (96, 128)], ids=['mixed', 'shrink'])
def test_forward_resize_of_a_224_grid_equals_timm_resampled_at_load(size):
    """Ours keeps the 14 x 14 grid and resizes it at every forward; timm is built for ``size`` and given the grid
    resampled by its own ``resample_abs_pos_embed`` (bicubic, antialiased) at load time."""
    ref224 = _reference('cait_xxs24_224', **TINY)
    ours = CaiT(TINY, out_indices=(1, 3), output_cls_token=True).eval()
    ours.load_state_dict(ref224.state_dict(), strict=True)
    grid = (size[0] // 16, size[1] // 16)
    sd = dict(ref224.state_dict())
    sd['pos_embed'] = timm.layers.resample_abs_pos_embed(sd['pos_embed'], grid, num_prefix_tokens=0)
    ref = timm.create_model('cait_xxs24_224', pretrained=False, num_classes=0, img_size=size, **TINY).eval()
    ref.load_state_dict(sd, strict=True)
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        outs = ours(x)
    maps, cls = _timm_outputs(ref, x)
    torch.testing.assert_close(outs[0], maps[1], **TOL)
    torch.testing.assert_close(outs[1], maps[3], **TOL)
    torch.testing.assert_close(outs[2], cls, **TOL)


def test_official_release_loads_through_init_cfg(tmp_path):
    """The official file: ``{'model': {'module.<timm key>': ...}, ...}`` with the classifier; the keys are timm's."""
    ref = _reference('cait_xxs24_224', **TINY)
    sd = dict(ref.state_dict(), **{'head.weight': torch.randn(10, 64), 'head.bias': torch.randn(10)})
    official = {'model': {f'module.{k}': v for k, v in sd.items()}, 'epoch': 399}
    torch.save(official, tmp_path / 'S24_224.pth')
    ours = CaiT(TINY, output_cls_token=True, out_indices=(0, 3),
                init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'S24_224.pth')))
    ours.init_weights()
    direct = CaiT(TINY, output_cls_token=True, out_indices=(0, 3))
    direct.load_state_dict(ref.state_dict(), strict=True)
    for (key, got), want in zip(ours.state_dict().items(), direct.state_dict().values()):
        torch.testing.assert_close(got, want, rtol=0, atol=0, msg=key)
    assert convert_to_ours(sd, 'cait').dropped == {'head.weight': 'classification head',
                                                   'head.bias': 'classification head'}
    # offline: the same file converted once to our keys loads strictly
    convert_checkpoint_file(tmp_path / 'S24_224.pth', tmp_path / 'ours.pth', 'cait')
    offline = CaiT(TINY, output_cls_token=True, out_indices=(0, 3))
    offline.load_state_dict(torch.load(tmp_path / 'ours.pth', weights_only=True), strict=True)
    for (key, got), want in zip(offline.state_dict().items(), direct.state_dict().values()):
        torch.testing.assert_close(got, want, rtol=0, atol=0, msg=key)


def test_a_dense_model_takes_a_full_checkpoint_strictly_and_reports_what_it_leaves_out():
    ref = _reference('cait_xxs24_224', **TINY)
    sd = dict(ref.state_dict(), **{'head.weight': torch.randn(10, 64), 'head.bias': torch.randn(10)})
    ours = CaiT(TINY, out_indices=(1,)).eval()  # blocks 0-1 only, no class-attention head, no final norm
    ours.load_state_dict(sd, strict=True)
    result = ours.convert_state_dict(sd, ours.state_dict())
    reasons = {key.split('.')[0] + ('.' + key.split('.')[1] if key.startswith('blocks.') else ''): why
               for key, why in result.dropped.items()}
    assert set(reasons) == {'head', 'cls_token', 'blocks_token_only', 'blocks.2', 'blocks.3', 'norm'}
    assert 'output_cls_token' in reasons['blocks_token_only'] and 'out_indices' in reasons['blocks.3']
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        want = ref.forward_intermediates(x, indices=[1], norm=False, intermediates_only=True)[0]
        torch.testing.assert_close(ours(x)[0], want, **TOL)


def test_export_to_timm_round_trips():
    ref = _reference('cait_xxs24_224', **TINY)
    ours = CaiT(TINY, output_cls_token=True).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    exported = export_from_ours(ours.state_dict(), 'cait', 'timm').state_dict
    assert set(exported) == set(ref.state_dict())
    for key, value in ref.state_dict().items():
        torch.testing.assert_close(exported[key], value, rtol=0, atol=0, msg=key)
    back = timm.create_model('cait_xxs24_224', pretrained=False, num_classes=0, **TINY).eval()
    back.load_state_dict(exported, strict=True)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(back.forward_features(x)[:, 0], ours(x)[-1], **TOL)


def test_layouts_are_recognised_by_the_cait_family_only():
    ref = timm.create_model('cait_xxs24_224', pretrained=False, **TINY).state_dict()  # with its classifier
    vit = timm.create_model('vit_tiny_patch16_224', pretrained=False).state_dict()
    ours = CaiT(TINY).state_dict()
    assert identify(ref) == [('cait', 'timm')]
    assert identify({k: v for k, v in ref.items() if not k.startswith('head.')}) == [('cait', 'timm')]
    assert identify(ours) == [('cait', OURS)]
    assert ('cait', 'timm') not in identify(vit) and ('cait', OURS) not in identify(vit)
