"""Official and Hugging Face CvT checkpoints -> ours give the official outputs; exports round-trip exactly.

The reference (``cvt_reference.py``) is an independent per-head model in the official checkpoint layout; the
official and Hugging Face key schemas below are written out from the two module trees.
"""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vit_backbones.backbones import CvT
from vit_backbones.converters import FAMILIES, convert_to_ours, export_from_ours
from vit_backbones.converters.cvt import cvt_hf_to_ours, cvt_official_to_ours, cvt_ours_to_official
from vit_backbones.engine import register_checkpoint_io

from .cvt_reference import SPECS, RefCvT
from .reference_init import randomise

pytestmark = pytest.mark.parity
TOL = dict(rtol=1e-5, atol=1e-5)

_BN = ['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked']
_WB = ['weight', 'bias']
_QKV = {'q': 'query', 'k': 'key', 'v': 'value'}
# One block: official suffix -> Hugging Face (transformers CvtLayer) suffix.
BLOCK_SCHEMA = {
    **{f'attn.conv_proj_{x}.conv.weight':
       f'attention.attention.convolution_projection_{_QKV[x]}.convolution_projection.convolution.weight'
       for x in 'qkv'},
    **{f'attn.conv_proj_{x}.bn.{p}':
       f'attention.attention.convolution_projection_{_QKV[x]}.convolution_projection.normalization.{p}'
       for x in 'qkv' for p in _BN},
    **{f'attn.proj_{x}.{p}': f'attention.attention.projection_{_QKV[x]}.{p}' for x in 'qkv' for p in _WB},
    **{f'attn.proj.{p}': f'attention.output.dense.{p}' for p in _WB},
    **{f'mlp.fc1.{p}': f'intermediate.dense.{p}' for p in _WB},
    **{f'mlp.fc2.{p}': f'output.dense.{p}' for p in _WB},
    **{f'norm1.{p}': f'layernorm_before.{p}' for p in _WB},
    **{f'norm2.{p}': f'layernorm_after.{p}' for p in _WB},
}
# One stage's own tensors: official suffix -> Hugging Face (CvtStage) suffix.
STAGE_SCHEMA = {
    **{f'patch_embed.proj.{p}': f'embedding.convolution_embeddings.projection.{p}' for p in _WB},
    **{f'patch_embed.norm.{p}': f'embedding.convolution_embeddings.normalization.{p}' for p in _WB},
}
TOP_SCHEMA = {**{f'norm.{p}': f'layernorm.{p}' for p in _WB}, **{f'head.{p}': f'classifier.{p}' for p in _WB}}


def official_to_hf(official: dict) -> dict:
    """The ``CvtForImageClassification`` state dict holding the same tensors, by the schema above."""
    out = {}
    for key, value in official.items():
        if key in TOP_SCHEMA:
            out[TOP_SCHEMA[key]] = value
            continue
        stage, rest = key.split('.', 1)
        prefix = f'cvt.encoder.stages.{stage[len("stage"):]}.'
        if rest == 'cls_token':
            out[prefix + 'cls_token'] = value
        elif rest in STAGE_SCHEMA:
            out[prefix + STAGE_SCHEMA[rest]] = value
        else:
            _, j, suffix = rest.split('.', 2)
            out[f'{prefix}layers.{j}.{BLOCK_SCHEMA[suffix]}'] = value
    return out


def reference(arch: str = 'cvt-13') -> RefCvT:
    torch.manual_seed(0)
    return randomise(RefCvT(arch), vector_std=0.05)


def test_reference_has_the_official_key_schema():
    sd = reference().state_dict()
    for prefix in ('stage0.blocks.0.', 'stage2.blocks.9.'):
        assert {k[len(prefix):] for k in sd if k.startswith(prefix)} == set(BLOCK_SCHEMA)
    for i in range(3):
        own = {k[len(f'stage{i}.'):] for k in sd if k.startswith(f'stage{i}.') and '.blocks.' not in f'.{k}'}
        assert own == set(STAGE_SCHEMA) | ({'cls_token'} if i == 2 else set())
    assert {k for k in sd if not k.startswith('stage')} == set(TOP_SCHEMA)
    assert FAMILIES['cvt'].detect(sd).name == 'official'
    assert FAMILIES['cvt'].detect(official_to_hf(sd)).name == 'hf'


@pytest.mark.parametrize('arch', sorted(SPECS))
def test_presets_are_the_official_models(arch):
    converted = cvt_official_to_ours(RefCvT(arch).state_dict()).state_dict
    own = CvT(arch).state_dict()
    assert converted.keys() == own.keys()
    assert all(converted[k].shape == own[k].shape for k in own)


def _check_outputs(ours: CvT, ref: RefCvT, size: int = 224) -> None:
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        feats, cls = ref(x)
        assert max(f.abs().max() for f in feats) > 0.5  # a non-degenerate reference
        for fused in (True, False):
            ours.set_fused_attn(fused)
            outs = ours(x)
            assert len(outs) == 4 and outs[-1].shape == (2, 384)
            for a, b in zip(outs, [*feats, cls]):
                torch.testing.assert_close(a, b, **TOL)


def test_official_checkpoint_file_gives_the_official_outputs(tmp_path):
    """CvT-13 at the official 224x224: the plain official state dict through init_cfg=Pretrained."""
    register_checkpoint_io()
    ref = reference()
    torch.save(ref.state_dict(), tmp_path / 'CvT-13-224x224-IN-1k.pth')
    ours = CvT('cvt-13', output_cls_token=True,
               init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'CvT-13-224x224-IN-1k.pth')))
    ours.init_weights()
    _check_outputs(ours.eval(), ref)


def test_hugging_face_checkpoint_gives_the_official_outputs():
    ref = reference()
    hf = official_to_hf(ref.state_dict())
    converted = convert_to_ours(hf, 'cvt')
    assert converted.source == 'hf' and set(converted.dropped) == {'classifier.weight', 'classifier.bias'}
    ours = CvT('cvt-13', output_cls_token=True)
    ours.load_state_dict(converted.state_dict, strict=True)
    _check_outputs(ours.eval(), ref, size=192)
    # CvtModel (AutoModel) has no 'cvt.' prefix and no final layernorm: everything else maps
    bare = {k[len('cvt.'):]: v for k, v in hf.items() if k.startswith('cvt.')}
    missing, unexpected = CvT('cvt-13').load_state_dict(cvt_hf_to_ours(bare).state_dict, strict=False)
    assert missing == ['norms.2.weight', 'norms.2.bias'] and unexpected == []


def test_strict_load_and_exact_round_trips():
    ref = reference()
    official = ref.state_dict()
    converted = convert_to_ours(official, 'cvt')
    assert converted.source == 'official' and set(converted.dropped) == {'head.weight', 'head.bias'}
    ours = CvT('cvt-13')
    ours.load_state_dict(converted.state_dict, strict=True)
    own = ours.state_dict()
    headless = {k: v for k, v in official.items() if not k.startswith('head.')}
    back = cvt_ours_to_official(own).state_dict
    assert back.keys() == headless.keys() and all(torch.equal(back[k], headless[k]) for k in headless)
    to_hf = export_from_ours(own, 'cvt', 'hf').state_dict
    expected_hf = {k: v for k, v in official_to_hf(official).items() if not k.startswith('classifier.')}
    assert to_hf.keys() == expected_hf.keys() and all(torch.equal(to_hf[k], expected_hf[k]) for k in expected_hf)
    for layout in (back, to_hf):
        again = convert_to_ours(layout, 'cvt').state_dict
        assert again.keys() == own.keys() and all(torch.equal(again[k], own[k]) for k in own)
    missing, unexpected = RefCvT().load_state_dict(export_from_ours(own, 'cvt', 'official').state_dict, strict=False)
    assert missing == ['head.weight', 'head.bias'] and unexpected == []


def test_offline_conversion_cli_from_hugging_face_to_ours_official_and_back(tmp_path):
    ref = reference()
    official = ref.state_dict()
    torch.save(official_to_hf(official), tmp_path / 'pytorch_model.bin')
    tool = Path(__file__).resolve().parents[2] / 'tools' / 'convert_checkpoint.py'
    for src, dst, target in [('pytorch_model.bin', 'ours.pth', 'ours'), ('ours.pth', 'official.pth', 'official'),
                             ('official.pth', 'hf.pth', 'hf')]:
        proc = subprocess.run([sys.executable, str(tool), 'cvt', src, dst, '--to', target], cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
    ours = CvT('cvt-13')
    ours.load_state_dict(torch.load(tmp_path / 'ours.pth', weights_only=True), strict=True)
    back = torch.load(tmp_path / 'official.pth', weights_only=True)
    headless = {k: v for k, v in official.items() if not k.startswith('head.')}
    assert back.keys() == headless.keys() and all(torch.equal(back[k], headless[k]) for k in headless)
    hf = torch.load(tmp_path / 'hf.pth', weights_only=True)
    expected = {k: v for k, v in official_to_hf(official).items() if not k.startswith('classifier.')}
    assert hf.keys() == expected.keys() and all(torch.equal(hf[k], expected[k]) for k in expected)
