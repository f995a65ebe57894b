"""CvT checkpoint layouts <-> ours.

Layouts:
    * ``official``: microsoft/CvT (a plain state dict). Stage i is ``stage{i}`` with ``patch_embed.{proj,norm}``,
      ``cls_token`` (last stage), ``blocks.{j}`` holding ``attn.conv_proj_{q,k,v}.{conv,bn}``,
      ``attn.proj_{q,k,v}``, ``attn.proj``, ``norm1``, ``norm2``, ``mlp.fc{1,2}``; a final ``norm`` and ``head``.
    * ``hf``: Hugging Face ``transformers`` ``CvtForImageClassification`` (``cvt.`` prefix, e.g. hub
      ``microsoft/cvt-13``) or ``CvtModel`` (no prefix): ``encoder.stages.{i}.embedding.convolution_embeddings``,
      ``layers.{j}.attention.attention.convolution_projection_{query,key,value}.convolution_projection
      .{convolution,normalization}``, ``projection_{query,key,value}``, ``attention.output.dense``,
      ``intermediate.dense``, ``output.dense``, ``layernorm_before/after``; the final ``layernorm`` and
      ``classifier``. The weights are the official ones; note that ``transformers`` computes the MLP with exact
      GELU where the official model (and ours by default) uses QuickGELU: build ours with ``act='gelu'`` to
      reproduce ``transformers``' outputs.
    * ours: ``stages.{i}.patch_embed.{proj,norm}``, ``stages.{i}.cls_token``, ``stages.{i}.blocks.{j}`` with
      ``attn.conv_proj_{q,k,v}.{conv,bn}``, ``attn.{q,k,v}``, ``attn.proj``; the final norm is ``norms.{last}``.
"""
import re
from typing import Any, Mapping

from .common import Converted, drop_keys, rename_keys
from .registry import OURS, CheckpointFamily, Layout, register_family

_BLOCK = r'(\.blocks\.\d+\.attn\.)'
OFFICIAL_TO_OURS_RULES = [
    (r'^stage(\d+)\.', r'stages.\1.'),
    (_BLOCK + r'proj_([qkv])\.', r'\1\2.'),
]
OURS_TO_OFFICIAL_RULES = [
    (r'^stages\.(\d+)\.', r'stage\1.'),
    (_BLOCK + r'([qkv])\.', r'\1proj_\2.'),
]
_QKV = {'query': 'q', 'key': 'k', 'value': 'v'}
HF_TO_OURS_RULES = [
    (r'^(cvt\.)?encoder\.stages\.(\d+)\.embedding\.convolution_embeddings\.projection\.',
     r'stages.\2.patch_embed.proj.'),
    (r'^(cvt\.)?encoder\.stages\.(\d+)\.embedding\.convolution_embeddings\.normalization\.',
     r'stages.\2.patch_embed.norm.'),
    (r'^(cvt\.)?encoder\.stages\.(\d+)\.cls_token$', r'stages.\2.cls_token'),
    (r'^(cvt\.)?encoder\.stages\.(\d+)\.layers\.(\d+)\.', r'stages.\2.blocks.\3.'),
    (r'\.attention\.attention\.convolution_projection_(query|key|value)\.convolution_projection\.convolution\.',
     lambda m: f'.attn.conv_proj_{_QKV[m.group(1)]}.conv.'),
    (r'\.attention\.attention\.convolution_projection_(query|key|value)\.convolution_projection\.normalization\.',
     lambda m: f'.attn.conv_proj_{_QKV[m.group(1)]}.bn.'),
    (r'\.attention\.attention\.projection_(query|key|value)\.', lambda m: f'.attn.{_QKV[m.group(1)]}.'),
    (r'\.attention\.output\.dense\.', '.attn.proj.'),
    (r'\.intermediate\.dense\.', '.mlp.fc1.'),
    (r'\.output\.dense\.', '.mlp.fc2.'),
    (r'\.layernorm_before\.', '.norm1.'),
    (r'\.layernorm_after\.', '.norm2.'),
]
_QKV_BACK = {v: k for k, v in _QKV.items()}
OURS_TO_HF_RULES = [
    (r'^stages\.(\d+)\.patch_embed\.proj\.', r'cvt.encoder.stages.\1.embedding.convolution_embeddings.projection.'),
    (r'^stages\.(\d+)\.patch_embed\.norm\.',
     r'cvt.encoder.stages.\1.embedding.convolution_embeddings.normalization.'),
    (r'^stages\.(\d+)\.cls_token$', r'cvt.encoder.stages.\1.cls_token'),
    (r'^stages\.(\d+)\.blocks\.(\d+)\.', r'cvt.encoder.stages.\1.layers.\2.'),
    (r'\.attn\.conv_proj_([qkv])\.conv\.',
     lambda m: f'.attention.attention.convolution_projection_{_QKV_BACK[m.group(1)]}.convolution_projection'
               '.convolution.'),
    (r'\.attn\.conv_proj_([qkv])\.bn\.',
     lambda m: f'.attention.attention.convolution_projection_{_QKV_BACK[m.group(1)]}.convolution_projection'
               '.normalization.'),
    (r'\.attn\.([qkv])\.', lambda m: f'.attention.attention.projection_{_QKV_BACK[m.group(1)]}.'),
    (r'\.attn\.proj\.', '.attention.output.dense.'),
    (r'\.mlp\.fc1\.', '.intermediate.dense.'),
    (r'\.mlp\.fc2\.', '.output.dense.'),
    (r'\.norm1\.', '.layernorm_before.'),
    (r'\.norm2\.', '.layernorm_after.'),
    (r'^norms\.\d+\.', 'layernorm.'),
]


def _num_stages(sd: Mapping[str, Any], pattern: str) -> int:
    stages = [int(m.group(1)) for k in sd if (m := re.match(pattern, k))]
    if not stages:
        raise ValueError(f'not a CvT state dict: no keys match {pattern!r}')
    return max(stages) + 1


def _is_official(sd: Mapping[str, Any]) -> bool:
    return 'stage0.patch_embed.proj.weight' in sd


def _is_hf(sd: Mapping[str, Any]) -> bool:
    key = 'encoder.stages.0.embedding.convolution_embeddings.projection.weight'
    return key in sd or f'cvt.{key}' in sd


def _is_ours(sd: Mapping[str, Any]) -> bool:
    return 'stages.0.patch_embed.proj.weight' in sd and any('.attn.conv_proj_q.' in k for k in sd)


def cvt_official_to_ours(state_dict: dict[str, Any]) -> Converted:
    """Official CvT -> ours: ``proj_{q,k,v}`` become ``{q,k,v}``, the final ``norm`` the last output norm."""
    dropped: dict[str, str] = {}
    last = _num_stages(state_dict, r'stage(\d+)\.') - 1
    sd = drop_keys(state_dict, [(r'^head\.', 'classification head')], dropped)
    sd = rename_keys(sd, OFFICIAL_TO_OURS_RULES + [(r'^norm\.', f'norms.{last}.')])
    return Converted(sd, 'official', dropped)


def cvt_ours_to_official(state_dict: dict[str, Any]) -> Converted:
    """Ours -> official (headless: load it into the official model built with ``num_classes=0``)."""
    return Converted(rename_keys(state_dict, OURS_TO_OFFICIAL_RULES + [(r'^norms\.\d+\.', 'norm.')]), OURS, {})


def cvt_hf_to_ours(state_dict: dict[str, Any]) -> Converted:
    """Hugging Face ``CvtForImageClassification`` / ``CvtModel`` -> ours (classifier dropped)."""
    dropped: dict[str, str] = {}
    last = _num_stages(state_dict, r'(?:cvt\.)?encoder\.stages\.(\d+)\.') - 1
    sd = drop_keys(state_dict, [(r'^classifier\.', 'classification head')], dropped)
    sd = rename_keys(sd, HF_TO_OURS_RULES + [(r'^layernorm\.', f'norms.{last}.')])
    return Converted(sd, 'hf', dropped)


def cvt_ours_to_hf(state_dict: dict[str, Any]) -> Converted:
    """Ours -> Hugging Face ``CvtForImageClassification`` keys (without the classifier)."""
    return Converted(rename_keys(state_dict, OURS_TO_HF_RULES), OURS, {})


def cvt_ours_to_ours(state_dict: dict[str, Any]) -> Converted:
    """Ours: unchanged."""
    return Converted(dict(state_dict), OURS, {})


CVT = register_family(CheckpointFamily(
    name='cvt',
    backbones=('CvT',),
    layouts=(
        Layout('official', _is_official, cvt_official_to_ours, cvt_ours_to_official,
               'microsoft/CvT (stage{i}.blocks.{j}.attn.proj_q, final norm, head)'),
        Layout('hf', _is_hf, cvt_hf_to_ours, cvt_ours_to_hf,
               'Hugging Face transformers CvtForImageClassification / CvtModel (microsoft/cvt-13 on the hub)'),
        Layout(OURS, _is_ours, cvt_ours_to_ours, None, 'vit_backbones CvT'),
    )))
