"""init_cfg=Pretrained with our, timm and official checkpoints; resizing; clear errors for bad files."""
import re
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch

from vit_backbones.backbones import SwinTransformer
from vit_backbones.converters import CheckpointMismatchError
from vit_backbones.engine import CheckpointError, register_checkpoint_io
from vit_backbones.engine.checkpoint_convert import convert_checkpoint_file

ROOT = Path(__file__).resolve().parents[2]
TINY = dict(embed_dim=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4))


@pytest.fixture(autouse=True, scope='module')
def safe_checkpoint_io():
    register_checkpoint_io()  # what our tools and the documented config line switch on


def pretrained(path, **kwargs) -> SwinTransformer:
    model = SwinTransformer(init_cfg=dict(type='Pretrained', checkpoint=str(path)), drop_path_rate=0.0, **kwargs)
    model.init_weights()
    return model.eval()


def same_outputs(a, b, size=(1, 3, 96, 96), atol=0.0):
    x = torch.randn(*size)
    with torch.no_grad():
        for p, q in zip(a.eval()(x), b.eval()(x)):
            torch.testing.assert_close(p, q, rtol=0, atol=atol)


def test_own_checkpoint(tmp_path):
    torch.manual_seed(0)
    src = SwinTransformer(TINY, drop_path_rate=0.0)
    torch.save({'state_dict': src.state_dict(), 'meta': {}}, tmp_path / 'ours.pth')
    same_outputs(src, pretrained(tmp_path / 'ours.pth', arch=TINY))


def test_whole_segmentor_checkpoint_into_backbone(tmp_path):
    torch.manual_seed(0)
    src = SwinTransformer(TINY, drop_path_rate=0.0)
    state = {f'backbone.{k}': v for k, v in src.state_dict().items()}
    state['decode_head.conv_seg.weight'] = torch.zeros(2, 4, 1, 1)
    torch.save({'state_dict': state}, tmp_path / 'seg.pth')
    same_outputs(src, pretrained(tmp_path / 'seg.pth', arch=TINY))


def test_timm_checkpoint_converted_on_the_fly(tmp_path, monkeypatch):
    logged = []
    monkeypatch.setattr('vit_backbones.backbones.base.print_log', lambda msg, **kw: logged.append(msg))
    torch.manual_seed(0)
    ref = timm.create_model('swin_tiny_patch4_window7_224', pretrained=False, num_classes=5).eval()
    torch.save(ref.state_dict(), tmp_path / 'timm.pth')
    model = pretrained(tmp_path / 'timm.pth', arch='tiny', out_indices=(3,))
    assert any('converted a timm checkpoint' in m and 'head.fc.weight (classification head)' in m for m in logged)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(model(x)[0], ref.forward_features(x).permute(0, 3, 1, 2), rtol=0, atol=1e-5)


def test_official_checkpoint_with_window_change(tmp_path):
    torch.manual_seed(0)
    ref = timm.create_model('swin_tiny_patch4_window7_224', pretrained=False, num_classes=0)
    official = {}
    for key, value in ref.state_dict().items():
        key = re.sub(r'^layers\.(\d+)\.downsample', lambda m: f'layers.{int(m.group(1)) - 1}.downsample', key)
        official[key] = value
        if key.endswith('relative_position_bias_table'):
            official[key.replace('bias_table', 'index')] = torch.zeros(49, 49, dtype=torch.long)
    torch.save({'model': official}, tmp_path / 'official.pth')
    model = pretrained(tmp_path / 'official.pth', arch='tiny', window_size=12)
    key = 'layers.2.blocks.3.attn.relative_position_bias_table'
    assert model.state_dict()[key].shape == (23 * 23, 12)
    # the resized table interpolates the source: its centre (zero offset) keeps the source's centre
    src_table = ref.state_dict()[key].T.reshape(12, 13, 13)
    new_table = model.state_dict()[key].T.reshape(12, 23, 23)
    torch.testing.assert_close(new_table[:, 11, 11], src_table[:, 6, 6], rtol=0, atol=0.05)
    # downsample moved one stage later and every backbone weight came from the file
    torch.testing.assert_close(model.state_dict()['layers.1.downsample.reduction.weight'],
                               ref.state_dict()['layers.1.downsample.reduction.weight'])
    with torch.no_grad():
        model(torch.randn(1, 3, 100, 120))


def test_absolute_pos_embed_resized_to_new_resolution(tmp_path):
    torch.manual_seed(0)
    src = SwinTransformer(TINY, use_abs_pos_embed=True, pretrain_img_size=64, drop_path_rate=0.0)
    torch.save(src.state_dict(), tmp_path / 'ape.pth')
    model = pretrained(tmp_path / 'ape.pth', arch=TINY, use_abs_pos_embed=True, pretrain_img_size=128)
    assert model.absolute_pos_embed.shape == (1, 16, 32, 32)
    # at the source resolution both give the same embedding, so the same features up to interpolation error
    same_outputs(src, model, size=(1, 3, 64, 64), atol=2e-2)


def test_foreign_checkpoint_fails_loudly_naming_the_file(tmp_path):
    resnet_like = {'conv1.weight': torch.zeros(64, 3, 7, 7), 'bn1.weight': torch.zeros(64),
                   'layer1.0.conv1.weight': torch.zeros(64, 64, 1, 1)}
    path = tmp_path / 'resnet.pth'
    torch.save(resnet_like, path)
    expected = rf'{re.escape(str(path))}.*not a swin checkpoint.*no known layout.*conv1.weight'
    with pytest.raises(CheckpointMismatchError, match=expected):
        pretrained(path, arch=TINY)


def test_other_swin_arch_fails_loudly(tmp_path):
    torch.save(SwinTransformer(dict(TINY, embed_dim=32)).state_dict(), tmp_path / 'wide.pth')
    with pytest.raises(CheckpointMismatchError, match='expected shape'):
        pretrained(tmp_path / 'wide.pth', arch=TINY)


@pytest.mark.parametrize('content', [b'', b'not a checkpoint at all', b'PK\x03\x04 truncated zip'])
def test_corrupt_or_truncated_file_names_the_file(tmp_path, content):
    path = tmp_path / 'bad.pth'
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=re.escape(str(path))):
        pretrained(path, arch=TINY)


def test_truncated_real_checkpoint_names_the_file(tmp_path):
    path = tmp_path / 'cut.pth'
    torch.save(SwinTransformer(TINY).state_dict(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=re.escape(str(path))):
        pretrained(path, arch=TINY)


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='nowhere.pth'):
        pretrained(tmp_path / 'nowhere.pth', arch=TINY)


def test_convert_checkpoint_cli_round_trip(tmp_path):
    torch.manual_seed(0)
    ref = timm.create_model('swin_tiny_patch4_window7_224', pretrained=False, num_classes=3)
    src = tmp_path / 'timm.pth'
    torch.save({'state_dict': ref.state_dict()}, src)
    before = src.read_bytes()
    out = subprocess.run([sys.executable, str(ROOT / 'tools/convert_checkpoint.py'), 'swin', str(src),
                          str(tmp_path / 'ours.pth')], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert 'dropped head.fc.weight: classification head' in out.stdout
    ours = torch.load(tmp_path / 'ours.pth')
    SwinTransformer('tiny', out_indices=(3,)).load_state_dict(ours, strict=True)
    # back to timm: loads strictly into a headless timm model
    convert_checkpoint_file(tmp_path / 'ours.pth', tmp_path / 'back.pth', 'swin', 'timm')
    timm.create_model('swin_tiny_patch4_window7_224', num_classes=0).load_state_dict(
        torch.load(tmp_path / 'back.pth'), strict=True)
    # the source is never overwritten, an existing output only with --force
    same = subprocess.run([sys.executable, str(ROOT / 'tools/convert_checkpoint.py'), 'swin', str(src), str(src)],
                          capture_output=True, text=True, cwd=ROOT)
    assert same.returncode == 2 and 'source' in same.stderr and src.read_bytes() == before
    with pytest.raises(FileExistsError):
        convert_checkpoint_file(src, tmp_path / 'ours.pth', 'swin')
    convert_checkpoint_file(src, tmp_path / 'ours.pth', 'swin', force=True)
