"""Official Shuffle Transformer checkpoints -> ours give the official stage outputs; exports round-trip exactly.

The reference (``shuffle_reference.py``) is an independent loop-based model in the official checkpoint layout;
the key schema below is written out from the official model's module tree.
"""
import sys
import types

import pytest
import torch

from vit_backbones.backbones import ShuffleTransformer
from vit_backbones.backbones.shuffle import ARCHS
from vit_backbones.converters import FAMILIES, convert_to_ours, export_from_ours
from vit_backbones.converters.shuffle import shuffle_official_to_ours, shuffle_ours_to_official
from vit_backbones.engine import register_checkpoint_io
from vit_backbones.engine.checkpoint_convert import convert_checkpoint_file

from .reference_init import randomise
from .shuffle_reference import RefShuffleTransformer

pytestmark = pytest.mark.parity
TOL = dict(rtol=1e-5, atol=1e-5)

_BN = ['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked']
# The official layout, written out: stem, one block, one patch merging.
OFFICIAL_STEM_KEYS = {
    *[f'to_token.conv1.0.{p}' for p in ('weight', 'bias')], *[f'to_token.conv1.1.{p}' for p in _BN],
    *[f'to_token.conv2.0.{p}' for p in ('weight', 'bias')], *[f'to_token.conv2.1.{p}' for p in _BN],
    'to_token.conv3.weight', 'to_token.conv3.bias',
}
OFFICIAL_BLOCK_KEYS = {
    *[f'norm{i}.{p}' for i in (1, 2, 3) for p in _BN],
    'attn.relative_position_bias_table', 'attn.relative_position_index', 'attn.to_qkv.weight', 'attn.proj.weight',
    'attn.proj.bias', 'local.weight', 'local.bias', 'mlp.fc1.weight', 'mlp.fc1.bias', 'mlp.fc2.weight',
    'mlp.fc2.bias',
}
OFFICIAL_MERGE_KEYS = {*[f'norm.{p}' for p in _BN], 'reduction.weight'}
OFFICIAL_PRESETS = {  # configs/shuffle_vit_{tiny,small,base}_patch4_window7_224.yaml
    'tiny': dict(embed_dim=96, depths=(2, 2, 6, 2), heads=(3, 6, 12, 24)),
    'small': dict(embed_dim=96, depths=(2, 2, 18, 2), heads=(3, 6, 12, 24)),
    'base': dict(embed_dim=128, depths=(2, 2, 18, 2), heads=(4, 8, 16, 32)),
}


def reference(arch: str = 'tiny', **kwargs) -> RefShuffleTransformer:
    torch.manual_seed(0)
    return randomise(RefShuffleTransformer(**{**OFFICIAL_PRESETS[arch], **kwargs}))


def test_reference_has_the_official_key_schema():
    sd = reference().state_dict()
    assert {k for k in sd if k.startswith('to_token.')} == OFFICIAL_STEM_KEYS
    for prefix in ('stage1.layers.0.0.', 'stage1.layers.0.1.', 'stage3.layers.2.1.'):
        assert {k[len(prefix):] for k in sd if k.startswith(prefix)} == OFFICIAL_BLOCK_KEYS
    assert not any(k.startswith('stage1.patch_partition.') for k in sd)  # 96 -> 96: no merging in stage 1
    assert {k[len('stage2.patch_partition.'):] for k in sd if k.startswith('stage2.patch_partition.')} \
        == OFFICIAL_MERGE_KEYS
    assert FAMILIES['shuffle'].detect(sd).name == 'official'


@pytest.mark.parametrize('arch', sorted(OFFICIAL_PRESETS))
def test_presets_are_the_official_models(arch):
    ref = reference(arch)
    converted = shuffle_official_to_ours(ref.state_dict()).state_dict
    own = ShuffleTransformer(arch).state_dict()
    assert converted.keys() == own.keys()
    assert all(converted[k].shape == own[k].shape for k in own)
    assert ARCHS[arch]['depths'] == OFFICIAL_PRESETS[arch]['depths']


def save_like_the_official_training_script(state_dict: dict, path, monkeypatch) -> None:
    """What the official ``utils.save_checkpoint`` writes: the model beside optimizer and scheduler states, the
    best accuracy, the epoch and the yacs ``CfgNode`` config (pickled by class name; a stand-in class here)."""
    yacs, config_module = types.ModuleType('yacs'), types.ModuleType('yacs.config')

    class CfgNode(dict):
        def __init__(self, items: dict) -> None:
            super().__init__(items)
            self.__dict__.update({'__immutable__': True, '__deprecated_keys__': set(), '__renamed_keys__': {},
                                  '__new_allowed__': False})

    CfgNode.__module__, CfgNode.__qualname__ = 'yacs.config', 'CfgNode'
    config_module.CfgNode, yacs.config = CfgNode, config_module
    monkeypatch.setitem(sys.modules, 'yacs', yacs)
    monkeypatch.setitem(sys.modules, 'yacs.config', config_module)
    param = torch.nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.AdamW([param], lr=1e-3)
    param.grad = torch.ones(2)
    optimizer.step()
    config = CfgNode({'MODEL': CfgNode({'TYPE': 'shuffle', 'SWIN': CfgNode({'DEPTHS': [2, 2, 6, 2]})})})
    torch.save({'model': state_dict, 'optimizer': optimizer.state_dict(),
                'lr_scheduler': {'t_initial': 300, 'noise_range_t': None}, 'max_accuracy': 82.41, 'epoch': 298,
                'config': config}, path)
    monkeypatch.delitem(sys.modules, 'yacs.config')  # loading must not need yacs


def test_official_checkpoint_file_gives_the_official_stage_outputs(tmp_path, monkeypatch):
    """Shuffle-T at the official 224x224: a file as the official training script writes it, through
    init_cfg=Pretrained (weights_only loading: the yacs config is read as a plain dict)."""
    register_checkpoint_io()
    ref = reference()
    save_like_the_official_training_script(ref.state_dict(), tmp_path / 'shuffle_t.pth', monkeypatch)
    ours = ShuffleTransformer('tiny', init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'shuffle_t.pth')))
    ours.init_weights()
    ours.eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        expected = ref(x)
        assert max(e.abs().max() for e in expected) > 0.5  # a non-degenerate reference
        for fused in (True, False):
            ours.set_fused_attn(fused)
            for a, b in zip(ours(x), expected):
                torch.testing.assert_close(a, b, **TOL)


def test_strict_load_and_exact_round_trips():
    ref = reference()
    official = ref.state_dict()
    converted = convert_to_ours({'model': official}['model'], 'shuffle')
    assert converted.source == 'official'
    assert set(converted.dropped) == {'head.weight', 'head.bias'} | {
        k for k in official if k.endswith('relative_position_index')}
    ours = ShuffleTransformer('tiny')
    ours.load_state_dict(converted.state_dict, strict=True)
    own = ours.state_dict()
    back = shuffle_ours_to_official(own).state_dict  # ours -> official: every tensor, index buffers included
    headless = {k: v for k, v in official.items() if not k.startswith('head.')}
    assert back.keys() == headless.keys()
    assert all(torch.equal(back[k], headless[k]) for k in headless)
    again = shuffle_official_to_ours(back).state_dict  # and official -> ours again
    assert again.keys() == own.keys() and all(torch.equal(again[k], own[k]) for k in own)
    missing, unexpected = RefShuffleTransformer().load_state_dict(
        export_from_ours(own, 'shuffle', 'official').state_dict, strict=False)
    assert missing == ['head.weight', 'head.bias'] and unexpected == []


def test_offline_conversion_of_an_official_training_checkpoint(tmp_path, monkeypatch):
    ref = reference()
    save_like_the_official_training_script(ref.state_dict(), tmp_path / 'official.pth', monkeypatch)
    convert_checkpoint_file(tmp_path / 'official.pth', tmp_path / 'ours.pth', 'shuffle')
    ours = ShuffleTransformer('tiny')
    ours.load_state_dict(torch.load(tmp_path / 'ours.pth', weights_only=True), strict=True)
    convert_checkpoint_file(tmp_path / 'ours.pth', tmp_path / 'back.pth', 'shuffle', target='official')
    back = torch.load(tmp_path / 'back.pth', weights_only=True)
    headless = {k: v for k, v in ref.state_dict().items() if not k.startswith('head.')}
    assert back.keys() == headless.keys() and all(torch.equal(back[k], headless[k]) for k in headless)


def test_sinusoidal_position_embedding_is_refused():
    sd = dict(reference().state_dict(), pos_embed=torch.zeros(1, 3136, 96))
    with pytest.raises(ValueError, match='pos_embed'):
        shuffle_official_to_ours(sd)
