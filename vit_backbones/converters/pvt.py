"""PVT v1 / v2 checkpoint layouts <-> ours.

Layouts:
    * ``official``: whai362/PVT. ``patch_embed{i}``, ``block{i}.{j}``, v2 ``norm{i}`` and ``mlp.dwconv.dwconv``;
      v1 ``pos_embed{i}`` of shape (1, N, C) (the last one with a cls row in classification checkpoints),
      ``cls_token`` and a final ``norm``; ``head``.
    * ``timm`` (v2): our names plus ``head``.
    * ``mm``: mmdet ``PyramidVisionTransformer(V2)``. Stage i is ``layers.{i}``: ``.0`` the patch embedding
      (``projection``, ``norm``), ``.1`` the blocks (after the v1 position embedding ``.1.0.pos_embed`` of shape
      (1, N, C), which shifts them by one), ``.2`` the v2 stage norm. Blocks hold ``nn.MultiheadAttention``
      (``attn.attn.in_proj_*`` = q and kv stacked, ``attn.attn.out_proj``) and 1x1-conv MLPs under
      ``ffn.layers`` (fc1 ``0``; fc2 ``3`` in v1, ``4`` in v2 after the depth-wise conv ``1``).
    * ours: ``patch_embed``, ``stages.{i}.downsample`` (i >= 1), ``stages.{i}.blocks.{j}``, v2 ``stages.{i}.norm``,
      v1 ``stages.{i}.pos_embed`` of shape (1, C, h, w); with the v1 classifier's cls token (``cls_output=
      'cls_token'``) ``stages.{last}.cls_token``, its position row ``stages.{last}.cls_pos_embed`` (1, 1, C) and
      the final ``norm``. A dense model leaves those three out on loading (its ``unbuilt_reason``).
"""
import re
from typing import Any, Mapping

from .common import Converted, drop_keys, rename_keys
from .registry import OURS, CheckpointFamily, Layout, register_family

_STAGE_ATTENTION = re.compile(r'stages\.\d+\.blocks\.\d+\.attn\.q\.')


def _is_official(sd: Mapping[str, Any]) -> bool:
    return 'patch_embed1.proj.weight' in sd


def _is_mm(sd: Mapping[str, Any]) -> bool:
    return 'layers.0.0.projection.weight' in sd


def _is_ours(sd: Mapping[str, Any]) -> bool:
    return 'patch_embed.proj.weight' in sd and any(_STAGE_ATTENTION.match(k) for k in sd)


def _is_timm(sd: Mapping[str, Any]) -> bool:
    return _is_ours(sd) and any(k.startswith('head.') for k in sd)


def _split_pos_embed(pos: Any) -> tuple[Any, Any]:
    """(1, N, C) -> the grid (1, C, h, w) and the leading cls row (1, 1, C) when N - 1 (not N) is a square
    (else None)."""
    n = pos.shape[1]
    side = round(n ** 0.5)
    cls_row = None
    if side * side != n:
        side = round((n - 1) ** 0.5)
        if side * side != n - 1:
            raise ValueError(f'position embedding of shape {tuple(pos.shape)} is not a square grid (+ cls row)')
        pos, cls_row = pos[:, 1:], pos[:, :1]
    return pos.transpose(1, 2).reshape(1, -1, side, side), cls_row  # (1, N, C) -> (1, C, N) -> (1, C, h, w)


def _pos_embed_to_grid(pos: Any) -> Any:
    """(1, N, C) -> (1, C, h, w), dropping a leading cls row when N - 1 (not N) is a square."""
    return _split_pos_embed(pos)[0]


def pvt_official_to_ours(state_dict: dict[str, Any]) -> Converted:
    """Official PVT v1 or v2 -> ours (a v1 classifier's cls token, cls position row and final norm kept for a
    model built with ``cls_output='cls_token'``)."""
    dropped: dict[str, str] = {}
    sd = drop_keys(state_dict, [(r'^head\.', 'classification head')], dropped)
    sd = rename_keys(sd, [
        (r'^patch_embed1\.', 'patch_embed.'),
        (r'^patch_embed(\d)\.', lambda m: f'stages.{int(m.group(1)) - 1}.downsample.'),
        (r'^pos_embed(\d)$', lambda m: f'stages.{int(m.group(1)) - 1}.pos_embed'),
        (r'^block(\d)\.(\d+)\.', lambda m: f'stages.{int(m.group(1)) - 1}.blocks.{m.group(2)}.'),
        (r'^norm(\d)\.', lambda m: f'stages.{int(m.group(1)) - 1}.norm.'),
        (r'\.dwconv\.dwconv\.', '.dwconv.'),
    ])
    for key in [k for k in sd if k.endswith('pos_embed') and sd[k].ndim == 3]:
        sd[key], cls_row = _split_pos_embed(sd[key])
        if cls_row is not None:  # the v1 classifier's last stage: its cls token and position row go there
            stage = key[:-len('pos_embed')]
            sd[f'{stage}cls_pos_embed'] = cls_row
            if 'cls_token' in sd:
                sd[f'{stage}cls_token'] = sd.pop('cls_token')
    return Converted(sd, 'official', dropped)


def _mm_to_ours_rules(block_offsets: dict[int, int]) -> list[tuple[str, Any]]:
    """Rename table for mmdet PVT keys; ``block_offsets[i]`` is 1 where ``layers.{i}.1.0`` is a position embedding."""

    def block(m: re.Match) -> str:
        stage = int(m.group(1))
        return f'stages.{stage}.blocks.{int(m.group(2)) - block_offsets.get(stage, 0)}.'

    return [
        (r'^layers\.0\.0\.', 'patch_embed.'),
        (r'^layers\.(\d+)\.0\.', r'stages.\1.downsample.'),
        (r'^(patch_embed|stages\.\d+\.downsample)\.projection\.', r'\1.proj.'),
        (r'^layers\.(\d+)\.1\.0\.pos_embed$', r'stages.\1.pos_embed'),
        (r'^layers\.(\d+)\.1\.(\d+)\.', block),
        (r'^layers\.(\d+)\.2\.', r'stages.\1.norm.'),
        (r'\.attn\.attn\.out_proj\.', '.attn.proj.'),
        (r'\.ffn\.layers\.0\.', '.mlp.fc1.'),
        (r'\.ffn\.layers\.1\.', '.mlp.dwconv.'),
        (r'\.ffn\.layers\.[34]\.', '.mlp.fc2.'),  # 3 in v1 (fc1, act, drop, fc2), 4 in v2 (after the dwconv)
    ]


def _split_in_proj(state_dict: dict[str, Any]) -> dict[str, Any]:
    """Split ``nn.MultiheadAttention``'s stacked input projection into our q and kv projections.

    ``attn.attn.in_proj_{weight,bias}`` holds the q, k, v rows in that order: the first C rows become ``attn.q``,
    the other 2C rows (k then v, the order our kv projection splits them in) ``attn.kv``.
    """
    out = {}
    for key, value in state_dict.items():
        match = re.match(r'(.*\.attn)\.attn\.in_proj_(weight|bias)$', key)
        if match is None:
            out[key] = value
            continue
        dim = value.shape[0] // 3
        out[f'{match.group(1)}.q.{match.group(2)}'] = value[:dim]  # (3C, ...) -> (C, ...)
        out[f'{match.group(1)}.kv.{match.group(2)}'] = value[dim:]  # (3C, ...) -> (2C, ...)
    return out


def pvt_mm_to_ours(state_dict: dict[str, Any]) -> Converted:
    """mmdet PVT v1 or v2 -> ours.

    Renames keys (blocks move back one index in stages whose ``layers.{i}.1.0`` is a position embedding), splits
    the stacked q/kv projection, turns the 1x1-conv MLP weights (out, in, 1, 1) into linear ones (out, in) and
    reshapes v1 position embeddings to grids.
    """
    offsets = {int(m.group(1)): 1 for k in state_dict if (m := re.match(r'layers\.(\d+)\.1\.0\.pos_embed$', k))}
    sd = rename_keys(state_dict, _mm_to_ours_rules(offsets))
    sd = _split_in_proj(sd)
    for key in [k for k in sd if re.search(r'\.mlp\.fc[12]\.weight$', k) and sd[k].ndim == 4]:
        sd[key] = sd[key].flatten(1)  # (out, in, 1, 1) -> (out, in)
    for key in [k for k in sd if k.endswith('pos_embed') and sd[k].ndim == 3]:
        sd[key] = _pos_embed_to_grid(sd[key])
    return Converted(sd, 'mm', {})


def pvt_timm_to_ours(state_dict: dict[str, Any]) -> Converted:
    """timm PVT v2 -> ours: the same names; the classifier is dropped."""
    dropped: dict[str, str] = {}
    sd = drop_keys(state_dict, [(r'^head\.', 'classification head')], dropped)
    return Converted(sd, 'timm', dropped)


def pvt_ours_to_timm(state_dict: dict[str, Any]) -> Converted:
    """Ours (PVT v2) -> timm's headless ``pvt_v2_*``.

    Raises:
        ValueError: the state dict is a v1 (it has position embeddings; timm has no PVT v1).
    """
    if any(re.search(r'(^|\.)pos_embed$', k) for k in state_dict):
        raise ValueError('timm has no PVT v1: only PVT v2 state dicts (no pos_embed) can be exported')
    return Converted(dict(state_dict), OURS, {})


def pvt_ours_to_ours(state_dict: dict[str, Any]) -> Converted:
    """Ours: unchanged."""
    return Converted(dict(state_dict), OURS, {})


PVT = register_family(CheckpointFamily(
    name='pvt',
    backbones=('PyramidVisionTransformer', 'PyramidVisionTransformerV2'),
    layouts=(  # detection order: the first matching signature wins
        Layout('official', _is_official, pvt_official_to_ours, None,
               'whai362/PVT v1/v2 (patch_embed{i}, block{i}.{j}, pos_embed{i})'),
        Layout('mm', _is_mm, pvt_mm_to_ours, None, 'mmdet PyramidVisionTransformer(V2) (layers.i.j, in_proj)'),
        Layout('timm', _is_timm, pvt_timm_to_ours, pvt_ours_to_timm, 'timm pvt_v2_* (our names plus head)'),
        Layout(OURS, _is_ours, pvt_ours_to_ours, None, 'vit_backbones PVT v1/v2'),
    )))
