"""The converter registry, the conversion CLI's refusals, and versioned state dicts."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vit_backbones.backbones import BaseBackbone, SwinTransformer
from vit_backbones.converters import (
    FAMILIES,
    OURS,
    CheckpointMismatchError,
    ConversionReport,
    UnknownLayoutError,
    convert_to_ours,
    identify,
)
from vit_backbones.engine.checkpoint_convert import convert_checkpoint_file
from vit_backbones.registry import MODELS

ROOT = Path(__file__).resolve().parents[2]
SWIN_TINY = dict(embed_dim=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4))
PVT_TINY = dict(embed_dims=(16, 16, 32, 32), depths=(1, 1, 1, 1), num_heads=(1, 1, 2, 2), mlp_ratios=(2, 2, 2, 2),
                sr_ratios=(8, 4, 2, 1))
RESNET_LIKE = {'conv1.weight': torch.zeros(8, 3, 7, 7), 'bn1.weight': torch.zeros(8)}


def test_every_backbone_names_a_registered_family_that_names_it_back():
    backbones = {name: cls for name, cls in MODELS.module_dict.items() if issubclass(cls, BaseBackbone)}
    for name, cls in backbones.items():
        assert cls.checkpoint_family in FAMILIES, name
        assert name in FAMILIES[cls.checkpoint_family].backbones
    for family in FAMILIES.values():
        assert {layout.name for layout in family.layouts} >= {OURS}
        assert set(family.backbones) <= set(backbones)


def test_each_family_recognises_its_own_state_dicts_and_no_other():
    swin = SwinTransformer(SWIN_TINY).state_dict()
    pvt = MODELS.build(dict(type='vit_backbones.PyramidVisionTransformerV2', arch=PVT_TINY)).state_dict()
    assert identify(swin) == [('swin', OURS)]
    assert identify(pvt) == [('pvt', OURS)]
    assert identify(RESNET_LIKE) == []
    with pytest.raises(UnknownLayoutError, match=r'looks like a pvt \(vit_backbones layout\)'):
        convert_to_ours(pvt, 'swin')
    with pytest.raises(UnknownLayoutError, match='empty'):
        convert_to_ours({}, 'pvt')


def test_report_lists_mapped_dropped_unmatched_and_missing():
    model = SwinTransformer(SWIN_TINY, out_indices=(3,))  # one output norm: the timm layout has one final norm
    sd = dict(model.state_dict())
    sd['head.fc.weight'] = torch.zeros(3, 128)  # timm layout now: the head is dropped
    sd['norm.weight'], sd['norm.bias'] = sd.pop('norms.3.weight'), sd.pop('norms.3.bias')
    sd['layers.0.blocks.0.mlp.fc1.bias'] = torch.zeros(5)  # wrong shape
    del sd['layers.1.blocks.0.attn.qkv.weight']
    report = ConversionReport.compare(convert_to_ours(sd, 'swin'), model.state_dict())
    assert report.source == 'timm'
    assert set(report.dropped) == {'head.fc.weight'}
    assert set(report.unmatched) == {'layers.0.blocks.0.mlp.fc1.bias'}
    assert report.missing == ['layers.1.blocks.0.attn.qkv.weight']
    assert len(report.mapped) == len(model.state_dict()) - 2
    assert 'unmatched: layers.0.blocks.0.mlp.fc1.bias (shape (5,)' in report.summary()


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / 'tools' / 'convert_checkpoint.py'), *args],
                          capture_output=True, text=True)


def test_cli_refuses_what_it_does_not_recognise(tmp_path):
    pvt = MODELS.build(dict(type='vit_backbones.PyramidVisionTransformerV2', arch=PVT_TINY)).state_dict()
    cases = {'unknown.pth': (RESNET_LIKE, 'no known layout matches its keys. Its first keys: bn1.weight'),
             'pvt.pth': (pvt, r'looks like a pvt (vit_backbones layout) checkpoint'),
             'empty.pth': ({}, 'empty state dict')}
    for name, (state, message) in cases.items():
        torch.save(state, tmp_path / name)
        out = _cli('swin', str(tmp_path / name), str(tmp_path / f'out_{name}'))
        assert out.returncode != 0, name
        assert message in out.stderr, out.stderr
        assert not (tmp_path / f'out_{name}').exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(cases)  # no temporaries left either


def test_cli_output_paths(tmp_path):
    torch.save(SwinTransformer(SWIN_TINY).state_dict(), tmp_path / 'ours.pth')
    (tmp_path / 'folder').mkdir()
    with pytest.raises(IsADirectoryError, match=f'{tmp_path / "folder"} is a directory'):
        convert_checkpoint_file(tmp_path / 'ours.pth', tmp_path / 'folder', 'swin')
    with pytest.raises(FileNotFoundError, match='does not exist'):
        convert_checkpoint_file(tmp_path / 'ours.pth', tmp_path / 'missing' / 'out.pth', 'swin')
    assert not (tmp_path / 'missing').exists()
    assert list((tmp_path / 'folder').iterdir()) == []
    with pytest.raises(ValueError, match='cannot export swin'):
        convert_checkpoint_file(tmp_path / 'ours.pth', tmp_path / 'x.pth', 'swin', target='official')


def test_converted_files_carry_the_layout_version(tmp_path):
    torch.manual_seed(0)
    timm = pytest.importorskip('timm')
    ref = timm.create_model('swin_tiny_patch4_window7_224', pretrained=False, num_classes=0)
    torch.save(ref.state_dict(), tmp_path / 'timm.pth')
    convert_checkpoint_file(tmp_path / 'timm.pth', tmp_path / 'ours.pth', 'swin')
    saved = torch.load(tmp_path / 'ours.pth', weights_only=True)
    assert saved._metadata[''] == {'version': SwinTransformer._version}


class _SwinV2Layout(SwinTransformer):
    """A future Swin whose layout version moved on: older files go through ``upgrade_state_dict``."""

    _version = SwinTransformer._version + 1
    upgrades: list = []

    def upgrade_state_dict(self, state_dict, version):
        self.upgrades.append(version)
        return state_dict


def test_older_state_dicts_of_ours_are_upgraded_by_version_and_newer_ones_refused():
    torch.manual_seed(0)
    old = SwinTransformer(SWIN_TINY)
    state = old.state_dict()
    assert state._metadata['']['version'] == SwinTransformer._version
    new = _SwinV2Layout(SWIN_TINY)
    new.load_state_dict(state)
    assert _SwinV2Layout.upgrades == [SwinTransformer._version]
    newer = new.state_dict()
    with pytest.raises(CheckpointMismatchError, match='newer vit_backbones'):
        SwinTransformer(SWIN_TINY).load_state_dict(newer)
    foreign = convert_to_ours(dict(state), 'swin').state_dict  # no metadata: read by its keys, not upgraded
    _SwinV2Layout(SWIN_TINY).load_state_dict(foreign)
    assert _SwinV2Layout.upgrades == [SwinTransformer._version]


def _tiny_state_dict(name: str) -> dict:
    from tests.backbones.tiny_archs import TINY, backbone_type
    return MODELS.build(dict(type=f'vit_backbones.{backbone_type(name)}', **TINY[name][0])).state_dict()


@pytest.mark.parametrize('name', sorted(n for n, c in MODELS.module_dict.items() if issubclass(c, BaseBackbone)))
def test_every_backbone_state_dict_is_recognised_by_its_own_family_only(name):
    cls = MODELS.module_dict[name]
    assert identify(_tiny_state_dict(name)) == [(cls.checkpoint_family, OURS)]


def test_official_and_hugging_face_layouts_are_recognised_by_their_family_only():
    from tests.converters.cvt_reference import RefCvT
    from tests.converters.shuffle_reference import RefShuffleTransformer
    from tests.converters.test_cvt_parity import official_to_hf
    shuffle = RefShuffleTransformer(depths=(2, 2, 2, 2)).state_dict()
    cvt = RefCvT().state_dict()
    assert identify(shuffle) == [('shuffle', 'official')]
    assert identify(cvt) == [('cvt', 'official')]
    assert identify(official_to_hf(cvt)) == [('cvt', 'hf')]
    with pytest.raises(UnknownLayoutError, match=r'looks like a cvt \(official layout\)'):
        convert_to_ours(cvt, 'shuffle')
