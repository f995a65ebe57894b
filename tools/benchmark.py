"""Latency, throughput, FLOPs and peak memory of our backbones against every peer implementation that imports here.

Each row is one architecture: ours (SDPA and math attention) and the peers that implement it (timm, mmdet, mmseg,
mmpretrain); where no peer implements it (Shuffle Transformer, CvT, ViT-Adapter, CeiT, DeepViT, CPVT), the closest
model at about the same FLOPs. Every (row, implementation, input size, batch, mode) is measured; the
implementations of a row run on the same input, in the same process, interleaved round-robin so that machine noise
hits all of them alike. Reported: median and best of ``--repeat`` latencies, img/s, forward GMACs per image
(``torch.utils.flop_counter``, math attention path), peak memory growth and the ratio to the fastest peer; with
``--compile`` also the compile time (the first call less a median one, not in the timings) and dynamo's graph
breaks. ``--mode train`` is forward + backward of the sum of the outputs' means + an AdamW step. ``--floor`` adds
each step's products floor: its matrix products and convolutions, recorded in one step and timed alone (what the
step would cost if its norms, activations, softmaxes, gathers and copies were free).

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` over one step after the timed ones, less what was allocated
before it; on CPU (``--memory``) the growth of the resident set over two steps after a warm-up step, each
implementation in a fresh subprocess (glibc's mmap threshold pinned, so freed buffers leave the resident set).

The measuring functions live in :mod:`vit_backbones.engine.benchmark`. The README's performance block (between
``<!-- benchmark:begin -->`` and ``<!-- benchmark:end -->``) is generated from ``--json`` results by ``--readme``.

Example:
    python tools/benchmark.py --model swin_t --sizes 224 512 --batch 1 8 --mode both --repeat 10 --json swin.json
    python tools/benchmark.py --model all --sizes 224 --memory --json cpu.json
    python tools/benchmark.py --model vit_b16 --size 512 512 --device cuda --amp --compile --json gpu.json
    python tools/benchmark.py --readme README.md --from-json cpu.json gpu.json
    python tools/benchmark.py --model shuffle_t --size 224 224 --memory
    python tools/benchmark.py --model swin_t --sizes 512 --mode train --with-cp --memory --impl ours ours_cp mmseg
    python tools/benchmark.py --model swin_t pvt_v2_b2 --sizes 224 512 --floor
    python tools/benchmark.py --list
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple, Optional

import torch
from torch import nn

import vit_backbones  # noqa: F401
from vit_backbones.backbones import (
    CaiT,
    CvT,
    LeViT,
    PyramidVisionTransformer,
    PyramidVisionTransformerV2,
    ShuffleTransformer,
    SwinTransformer,
    VisionTransformer,
    ViTAdapter,
)
from vit_backbones.backbones.vit_hybrid import HybridVisionTransformer
from vit_backbones.engine import AtomicLocalBackend
from vit_backbones.engine import benchmark as bench
from vit_backbones.layers import fused_attn_enabled

SWIN_T = dict(embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24))


def ours_and_other_path(build: Callable[[Optional[bool]], nn.Module], windowed: bool = False
                        ) -> dict[str, Callable[[], nn.Module]]:
    """Our model with the attention path the default picks on this machine's CPU (``'ours'``: ``fused_attn=None``,
    see :func:`vit_backbones.layers.fused_attn_enabled`) and with the other path (``'ours_math'`` where the default
    is fused SDPA, ``'ours_fused'`` where it is the math path), so that every run checks the default's choice.
    ``windowed``: the model attends within 7 x 7 windows (the default's choice depends on the attention size)."""
    fused_default = fused_attn_enabled(None, torch.device('cpu'), 49 * 49 if windowed else None)
    name, fused = ('ours_math', False) if fused_default else ('ours_fused', True)
    return {'ours': lambda: build(None), name: lambda: build(fused)}


def swin_t_candidates() -> dict[str, Callable[[], nn.Module]]:
    """Swin-T (four stage maps): ours (fused and math attention), timm (``features_only``), mmseg, mmdet and
    mmpretrain (``pad_small_map``: maps smaller than a window are padded, as ours)."""
    def ours(fused: Optional[bool]) -> nn.Module:
        return SwinTransformer('tiny', drop_path_rate=0.0, fused_attn=fused)

    def timm_swin() -> nn.Module:
        import timm
        model = timm.create_model('swin_tiny_patch4_window7_224', num_classes=0, features_only=True,
                                  dynamic_img_size=True, strict_img_size=False)
        return model

    def mmseg_swin() -> nn.Module:
        from mmseg.models.backbones import SwinTransformer as MMSegSwin
        return MMSegSwin(embed_dims=SWIN_T['embed_dim'], depths=SWIN_T['depths'],
                         num_heads=SWIN_T['num_heads'], window_size=7, drop_path_rate=0.0)

    def mmdet_swin() -> nn.Module:
        from mmdet.models.backbones import SwinTransformer as MMDetSwin
        return MMDetSwin(embed_dims=SWIN_T['embed_dim'], depths=SWIN_T['depths'], num_heads=SWIN_T['num_heads'],
                         window_size=7, drop_path_rate=0.0)

    def mmpretrain_swin() -> nn.Module:
        from mmpretrain.models.backbones import SwinTransformer as MMPretrainSwin
        return MMPretrainSwin(arch='tiny', img_size=224, out_indices=(0, 1, 2, 3), drop_path_rate=0.0,
                              pad_small_map=True)

    return {**ours_and_other_path(ours, windowed=True), 'timm': timm_swin,
            'mmseg': mmseg_swin, 'mmdet': mmdet_swin, 'mmpretrain': mmpretrain_swin}


def ours_swin_t() -> nn.Module:
    """Our Swin-T: the equal-FLOPs comparison for families no peer implements."""
    return SwinTransformer('tiny', drop_path_rate=0.0)


def shuffle_t_candidates() -> dict[str, Callable[[], nn.Module]]:
    """Shuffle-T (no peer implementation): ours (fused and math attention) and our Swin-T (4.5 GFLOPs at 224)."""
    def ours(fused: Optional[bool]) -> nn.Module:
        return ShuffleTransformer('tiny', drop_path_rate=0.0, fused_attn=fused)

    return {**ours_and_other_path(ours, windowed=True), 'swin_t': ours_swin_t}


def cvt_13_candidates() -> dict[str, Callable[[], nn.Module]]:
    """CvT-13 (no peer implementation of its dense form): ours (fused and math attention) and our Swin-T."""
    return {**ours_and_other_path(lambda fused: CvT('cvt-13', drop_path_rate=0.0, fused_attn=fused)),
            'swin_t': ours_swin_t}


def vit_b16_candidates() -> dict[str, Callable[[], nn.Module]]:
    """ViT-B/16 (last block's map; the position embedding resized to the input): ours (fused and math attention),
    timm (``dynamic_img_size``, the same resize), mmseg's ``VisionTransformer`` (bicubic resize, no antialias) and
    mmpretrain's (``out_type='featmap'``; bicubic resize)."""
    def ours(fused: Optional[bool]) -> nn.Module:
        return VisionTransformer('base', fused_attn=fused)

    def timm_vit() -> nn.Module:
        import timm
        return timm.create_model('vit_base_patch16_224', num_classes=0, dynamic_img_size=True)

    def mmseg_vit() -> nn.Module:
        from mmseg.models.backbones import VisionTransformer as MMSegViT
        return MMSegViT(img_size=224, embed_dims=768, num_layers=12, num_heads=12, final_norm=True, patch_bias=True,
                        norm_cfg=dict(type='LN', eps=1e-6))

    def mmpretrain_vit() -> nn.Module:
        from mmpretrain.models.backbones import VisionTransformer as MMPretrainViT
        return MMPretrainViT(arch='base', img_size=224, patch_size=16, out_type='featmap')

    return {**ours_and_other_path(ours), 'timm': timm_vit, 'mmseg': mmseg_vit,
            'mmpretrain': mmpretrain_vit}


class _FixedSize(nn.Module):
    """A peer that runs at the size it was built for only (LeViT's bias grids, CaiT's position table), rebuilt for
    the input size: the first call at another size builds a fresh (random) model for it, one build in the warm-up.

    Args:
        build: ``build((H, W))`` -> the model for that input size.
        forward: ``forward(model, x)`` -> its maps.
    """

    def __init__(self, build: Callable[[tuple[int, int]], nn.Module],
                 forward: Callable[[nn.Module, torch.Tensor], object]) -> None:
        super().__init__()
        self.build, self.run = build, forward
        self.size = (224, 224)
        self.model = build(self.size)

    def forward(self, x: torch.Tensor) -> object:
        if tuple(x.shape[-2:]) != self.size:
            self.size = tuple(x.shape[-2:])
            self.model = self.build(self.size).to(x.device)
            self.model.train(self.training)
        return self.run(self.model, x)


def _timm_fixed_size(name: str) -> nn.Module:
    """timm's ``name`` built for the input size, returning its intermediate maps (``forward_intermediates``)."""
    import timm
    return _FixedSize(lambda size: timm.create_model(name, num_classes=0, img_size=size),
                      lambda model, x: model.forward_intermediates(x, intermediates_only=True))


def cait_s24_candidates() -> dict[str, Callable[[], nn.Module]]:
    """CaiT-S24 (the 24 talking-heads blocks; no class attention): ours (its talking heads always take the math
    path; the position grid resized to the input) and timm ``cait_s24_224`` built for the input size (every block's
    map through ``forward_intermediates``, which stops before the class-attention blocks)."""
    return {'ours': lambda: CaiT('s24'), 'timm': lambda: _timm_fixed_size('cait_s24_224')}


def levit_256_candidates() -> dict[str, Callable[[], nn.Module]]:
    """LeViT-256 (three stage maps): ours (fused and math attention; bias tables resized to the input at every
    forward), timm ``levit_256`` and mmpretrain's ``LeViT('256')``, both built for the input size (math attention
    only; no resize; mmpretrain's returns the last stage)."""
    def ours(fused: Optional[bool]) -> nn.Module:
        return LeViT('256', fused_attn=fused)

    def mmpretrain_levit() -> nn.Module:
        from mmpretrain.models.backbones import LeViT as MMPretrainLeViT
        return _FixedSize(lambda size: MMPretrainLeViT('256', img_size=size[0], drop_path_rate=0.0),
                          lambda model, x: model(x))

    return {**ours_and_other_path(ours),
            'timm': lambda: _timm_fixed_size('levit_256'), 'mmpretrain': mmpretrain_levit}


def vit_b_r50_candidates() -> dict[str, Callable[[], nn.Module]]:
    """R50+ViT-B/16 (last block's map; the position grid of 384 resized to the input): ours (fused and math
    attention) and timm's ``vit_base_r50_s16_384`` (``dynamic_img_size``, the same resize; ``dynamic_img_pad``)."""
    def ours(fused: Optional[bool]) -> nn.Module:
        return HybridVisionTransformer('base_r50_s16', pretrain_img_size=384, fused_attn=fused)

    def timm_hybrid() -> nn.Module:
        import timm
        return timm.create_model('vit_base_r50_s16_384', num_classes=0, dynamic_img_size=True, dynamic_img_pad=True)

    return {**ours_and_other_path(ours), 'timm': timm_hybrid}


def ceit_s_candidates() -> dict[str, Callable[[], nn.Module]]:
    """CeiT-S (last block's patch-token map; I2T stem, LeFF blocks, no LCA): ours (fused and math attention) against
    timm's ``deit_small_patch16_224`` (``dynamic_img_size``), the closest peer at similar FLOPs (4.6G against CeiT-S's
    4.5G in the papers). timm has no CeiT and CeiT has no public code, so no same-architecture reference exists."""
    def ours(fused: Optional[bool]) -> nn.Module:
        from vit_backbones.backbones.ceit import CeiT
        return CeiT('small', fused_attn=fused)

    def timm_deit() -> nn.Module:
        import timm
        return timm.create_model('deit_small_patch16_224', num_classes=0, dynamic_img_size=True)

    return {**ours_and_other_path(ours), 'timm_deit_s': timm_deit}


def deepvit_s_candidates() -> dict[str, Callable[[], nn.Module]]:
    """DeepViT-S (last block's map; conv stem, re-attention in blocks 11-15): ours (fused and math attention in the
    eleven plain blocks; re-attention always runs the math path) against timm's ``deit_small_patch16_224``
    (``dynamic_img_size``), the closest peer: timm has no DeepViT, and DeiT-S is the plain ViT of about the same
    width and FLOPs (384 channels, 12 blocks against DeepViT-S's 396 and 16 of MLP ratio 3)."""
    def ours(fused: Optional[bool]) -> nn.Module:
        from vit_backbones.backbones.deepvit import DeepViT
        return DeepViT('s', fused_attn=fused)

    def timm_deit() -> nn.Module:
        import timm
        return timm.create_model('deit_small_patch16_224', num_classes=0, dynamic_img_size=True)

    return {**ours_and_other_path(ours), 'timm_deit_s': timm_deit}


def pcpvt_s_candidates() -> dict[str, Callable[[], nn.Module]]:
    """Twins-PCPVT-S (four stage maps): ours (fused and math attention) and timm's ``twins_pcpvt_small``
    (``features_only``: its four stage maps; timm floors sizes its strides do not divide, ours pads them) and
    mmpretrain's ``PCPVT('small')`` (four stage maps)."""
    def ours(fused: Optional[bool]) -> nn.Module:
        from vit_backbones.backbones.cpvt import CPVT
        return CPVT('pcpvt_small', fused_attn=fused)

    def timm_pcpvt() -> nn.Module:
        import timm
        return timm.create_model('twins_pcpvt_small', num_classes=0, features_only=True)

    def mmpretrain_pcpvt() -> nn.Module:
        from mmpretrain.models.backbones import PCPVT as MMPretrainPCPVT
        return MMPretrainPCPVT('small', out_indices=(0, 1, 2, 3), qkv_bias=True)

    return {**ours_and_other_path(ours), 'timm': timm_pcpvt,
            'mmpretrain': mmpretrain_pcpvt}


def cpvt_s_candidates() -> dict[str, Callable[[], nn.Module]]:
    """CPVT-S (last block's map; PEG after block 0, no position table): ours (fused and math attention) against
    timm's ``deit_small_patch16_224`` (``dynamic_img_size``: its position table resized to the input), the same
    network with a position table instead of the PEG; timm has no plain CPVT."""
    def ours(fused: Optional[bool]) -> nn.Module:
        from vit_backbones.backbones.cpvt import CPVT
        return CPVT('small', fused_attn=fused)

    def timm_deit() -> nn.Module:
        import timm
        return timm.create_model('deit_small_patch16_224', num_classes=0, dynamic_img_size=True)

    return {**ours_and_other_path(ours), 'timm_deit_s': timm_deit}


def pvt_s_candidates() -> dict[str, Callable[[], nn.Module]]:
    """PVT v1-Small (four stage maps; position tables resized to the input): ours (fused and math attention) and
    mmdet's ``PyramidVisionTransformer`` (its defaults are PVT-Small; ``nn.MultiheadAttention``). timm has no PVT v1."""
    def ours(fused: Optional[bool]) -> nn.Module:
        return PyramidVisionTransformer('small', drop_path_rate=0.0, fused_attn=fused)

    def mmdet_pvt() -> nn.Module:
        from mmdet.models.backbones import PyramidVisionTransformer as MMDetPVT
        return MMDetPVT(num_layers=[3, 4, 6, 3], drop_path_rate=0.0)

    return {**ours_and_other_path(ours), 'mmdet': mmdet_pvt}


def pvt_v2_b2_candidates() -> dict[str, Callable[[], nn.Module]]:
    """PVT v2-b2 (four stage maps): ours (fused and math attention), timm ``pvt_v2_b2`` (``features_only``) and
    mmdet's ``PyramidVisionTransformerV2`` (``nn.MultiheadAttention``)."""
    def ours(fused: Optional[bool]) -> nn.Module:
        return PyramidVisionTransformerV2('b2', drop_path_rate=0.0, fused_attn=fused)

    def timm_pvt() -> nn.Module:
        import timm
        return timm.create_model('pvt_v2_b2', num_classes=0, features_only=True)

    def mmdet_pvt() -> nn.Module:
        from mmdet.models.backbones import PyramidVisionTransformerV2 as MMDetPVTv2
        return MMDetPVTv2(num_layers=[3, 4, 6, 3], drop_path_rate=0.0)

    return {**ours_and_other_path(ours), 'timm': timm_pvt, 'mmdet': mmdet_pvt}


class _DeiTMultiLevel(nn.Module):
    """timm DeiT-S (``dynamic_img_size``) with mmseg's ``MultiLevelNeck`` on the maps of blocks 3, 6, 9 and 12,
    rescaled by 4, 2, 1 and 0.5: the plain-ViT pyramid that mmseg's DeiT UperNet configs use."""

    def __init__(self) -> None:
        super().__init__()
        import timm
        from mmseg.models.necks import MultiLevelNeck
        self.vit = timm.create_model('deit_small_patch16_224', num_classes=0, dynamic_img_size=True)
        self.neck = MultiLevelNeck(in_channels=[384] * 4, out_channels=384, scales=[4, 2, 1, 0.5])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        maps = self.vit.forward_intermediates(x, indices=[2, 5, 8, 11], intermediates_only=True)
        return tuple(self.neck(list(maps)))


def vit_adapter_s_candidates() -> dict[str, Callable[[], nn.Module]]:
    """ViT-Adapter-S (four pyramid levels; mmcv's deformable attention): ours (fused and math attention in the ViT)
    against timm's DeiT-S with mmseg's ``MultiLevelNeck`` (the same ViT-S without the adapter; fewer FLOPs, as the
    GMACs column shows). The official ViT-Adapter needs a custom CUDA op and has no importable package."""
    def ours(fused: Optional[bool]) -> nn.Module:
        return ViTAdapter('small', deform_num_heads=6, deform_ratio=1.0, fused_attn=fused)

    return {**ours_and_other_path(ours), 'deit_s_mln': _DeiTMultiLevel}


def deit_s_distilled_candidates() -> dict[str, Callable[[], nn.Module]]:
    """DeiT-S distilled (cls + distillation tokens; last block's map): ours (fused and math attention), timm
    ``deit_small_distilled_patch16_224`` (``dynamic_img_size``) and mmpretrain's ``DistilledVisionTransformer``
    (``out_type='featmap'``)."""
    def ours(fused: Optional[bool]) -> nn.Module:
        return VisionTransformer('small', distilled=True, fused_attn=fused)

    def timm_deit() -> nn.Module:
        import timm
        return timm.create_model('deit_small_distilled_patch16_224', num_classes=0, dynamic_img_size=True)

    def mmpretrain_deit() -> nn.Module:
        from mmpretrain.models.backbones import DistilledVisionTransformer
        return DistilledVisionTransformer('deit-small', img_size=224, out_type='featmap')

    return {**ours_and_other_path(ours), 'timm': timm_deit,
            'mmpretrain': mmpretrain_deit}


def tiny_candidates() -> dict[str, Callable[[], nn.Module]]:
    """For tests only (not in ``--model all``): a tiny Swin (fused and math attention) against a tiny ViT, built
    in milliseconds, through the same measuring code as the real rows."""
    def swin(fused: Optional[bool]) -> nn.Module:
        return SwinTransformer(dict(embed_dim=16, depths=(1, 1), num_heads=(1, 2)), out_indices=(0, 1),
                               window_size=4, drop_path_rate=0.0, fused_attn=fused)

    def vit() -> nn.Module:
        return VisionTransformer(dict(embed_dim=32, depth=2, num_heads=2, mlp_ratio=2.0), pretrain_img_size=32)

    return {**ours_and_other_path(swin, windowed=True), 'vit': vit}


class Row(NamedTuple):
    """One benchmark row: the registered type ``ours`` builds, and the row's constructors by implementation name."""
    backbone: str
    candidates: Callable[[], dict[str, Callable[[], nn.Module]]]


ROWS: dict[str, Row] = {
    'swin_t': Row('SwinTransformer', swin_t_candidates),
    'shuffle_t': Row('ShuffleTransformer', shuffle_t_candidates),
    'cvt_13': Row('CvT', cvt_13_candidates),
    'pvt_s': Row('PyramidVisionTransformer', pvt_s_candidates),
    'pvt_v2_b2': Row('PyramidVisionTransformerV2', pvt_v2_b2_candidates),
    'vit_b16': Row('VisionTransformer', vit_b16_candidates),
    'deit_s_distilled': Row('VisionTransformer', deit_s_distilled_candidates),
    'vit_adapter_s': Row('ViTAdapter', vit_adapter_s_candidates),
    'cait_s24': Row('CaiT', cait_s24_candidates),
    'levit_256': Row('LeViT', levit_256_candidates),
    'vit_b_r50': Row('HybridVisionTransformer', vit_b_r50_candidates),
    'ceit_s': Row('CeiT', ceit_s_candidates),
    'deepvit_s': Row('DeepViT', deepvit_s_candidates),
    'pcpvt_s': Row('CPVT', pcpvt_s_candidates),
    'cpvt_s': Row('CPVT', cpvt_s_candidates),
}
#: Rows for tests, reachable by ``--model`` but not part of ``--model all``.
TEST_ROWS: dict[str, Row] = {'tiny': Row('SwinTransformer', tiny_candidates)}
#: Row name -> constructors (the interface of the earlier tool, kept for callers).
MODELS = {name: row.candidates for name, row in ROWS.items()}
MODES = {'infer': ('infer',), 'train': ('train',), 'both': ('infer', 'train')}


def with_checkpointing(make: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
    """``make`` whose model checkpoints the activations of every block (``with_cp = True``)."""
    def build() -> nn.Module:
        model = make()
        model.with_cp = True
        return model
    return build


def row_candidates(model_name: str, with_cp: bool = False) -> dict[str, Callable[[], nn.Module]]:
    """The constructors of row ``model_name`` by implementation name; with ``with_cp`` also ``'ours_cp'``: the
    default ``'ours'`` with activation checkpointing (``--with-cp``, for the memory it saves in training)."""
    candidates = {**ROWS, **TEST_ROWS}[model_name].candidates()
    if with_cp:
        candidates['ours_cp'] = with_checkpointing(candidates['ours'])
    return candidates


def parse_size(text: str) -> tuple[int, int]:
    """``'512'`` -> (512, 512); ``'512x1024'`` -> (512, 1024) (H x W)."""
    match = re.fullmatch(r'(\d+)(?:[xX](\d+))?', text.strip())
    if not match or int(match.group(1)) < 1 or (match.group(2) and int(match.group(2)) < 1):
        raise argparse.ArgumentTypeError(f"a size is S or HxW with positive integers, got {text!r}")
    return int(match.group(1)), int(match.group(2) or match.group(1))


def input_sizes(args: argparse.Namespace) -> list[tuple[int, int]]:
    """Every ``--size`` (one int: square; two: H W; repeatable) then every ``--sizes`` entry, duplicates dropped;
    224x224 if none is given."""
    sizes = []
    for values in args.size or []:
        if len(values) not in (1, 2):
            raise ValueError(f'--size takes S or H W, got {len(values)} values: {values}')
        sizes.append((values[0], values[-1]))
    sizes += args.sizes or []
    for h, w in sizes:
        if h < 1 or w < 1:
            raise ValueError(f'input sizes must be positive, got {h}x{w}')
    return list(dict.fromkeys(sizes)) or [(224, 224)]


def model_names(requested: list[str]) -> list[str]:
    """``requested`` rows with ``all`` expanded to every row of :data:`ROWS`; a ValueError names unknown ones."""
    known = {**ROWS, **TEST_ROWS}
    names = []
    for name in requested:
        expanded = list(ROWS) if name == 'all' else [name]
        for item in expanded:
            if item not in known:
                raise ValueError(f'unknown --model {item!r}; choose from all, {", ".join(sorted(known))}')
            names.append(item)
    return list(dict.fromkeys(names))


def _guarded(step: Callable[[], None], errors: dict[str, str], name: str) -> Callable[[], None]:
    """``step`` that records its first exception under ``name`` and then does nothing (one failing peer must not
    stop the others' round-robin)."""
    def run() -> None:
        if name in errors:
            return
        try:
            step()
        except Exception as err:  # noqa: BLE001 - reported in the row
            errors[name] = f'{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ""}'[:200]
    return run


def cpu_peak_mibs(model_name: str, impl: str, args: argparse.Namespace) -> dict[tuple, Optional[float]]:
    """Peak resident-set growth (MiB) of one implementation at every (size, batch, mode) of ``args``, measured in
    one fresh subprocess (``--probe-memory``): keyed by ``(H, W, batch, mode)``; None where the probe failed (its
    last error line is printed)."""
    cmd = [sys.executable, os.path.abspath(__file__), '--model', model_name, '--probe-memory', impl,
           '--sizes', *(f'{h}x{w}' for h, w in args.input_sizes), '--batch', *map(str, args.batch),
           '--mode', args.mode, '--threads', str(torch.get_num_threads())]
    cmd += ['--amp'] if args.amp else []
    cmd += ['--with-cp'] if args.with_cp else []
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_='131072')  # a fixed threshold: freed big buffers are unmapped
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        print(f'  memory probe of {model_name}/{impl} failed: {out.stderr.strip().splitlines()[-1:]}',
              file=sys.stderr)
        return {}
    return {(r['height'], r['width'], r['batch'], r['mode']): r['peak_mib']
            for r in json.loads(out.stdout.strip().splitlines()[-1])}


def probe_memory(make: Callable[[], nn.Module], sizes: list[tuple[int, int]], batches: list[int],
                 modes: tuple[str, ...], amp: bool) -> list[dict[str, Any]]:
    """Run in the subprocess of :func:`cpu_peak_mibs`: for each setting, the resident-set growth of two steps after
    one warm-up step; the model, the input, the optimizer state and the warm-up's caches are not counted. A failing
    setting gets ``peak_mib`` None."""
    torch.manual_seed(0)
    model = make()
    results = []
    for size in sizes:
        for batch in batches:
            for mode in modes:
                peak, step = None, None
                try:
                    step = bench.make_step(model, torch.randn(batch, 3, *size), mode, amp)
                    step()
                    peak = bench.rss_growth_mib(step, calls=2)
                except Exception as err:  # noqa: BLE001 - reported as a missing value
                    print(f'{size} {batch} {mode}: {type(err).__name__}: {err}', file=sys.stderr)
                results.append(dict(height=size[0], width=size[1], batch=batch, mode=mode, peak_mib=peak))
                del step  # its optimizer state goes before the next setting's baseline
    return results


def product_floor(model: nn.Module, x: torch.Tensor, mode: str, args: argparse.Namespace) -> dict[str, Any]:
    """``floor_ms`` (the step's matrix products and convolutions timed alone, :func:`bench.product_floor_ms`) and
    ``floor_products``; both None, with ``floor_error``, if the recording fails."""
    try:
        floor = bench.product_floor_ms(bench.make_step(model, x, mode, args.amp), args.device, args.repeat)
    except Exception as err:  # noqa: BLE001 - reported in the row; the timing stands
        return dict(floor_ms=None, floor_products=None, floor_error=f'{type(err).__name__}: {err}'[:200])
    return dict(floor_ms=floor['floor_ms'], floor_products=floor['products'])


def measure_row(model_name: str, args: argparse.Namespace, candidates: Optional[dict[str, Callable]] = None
                ) -> list[dict[str, Any]]:
    """Every (implementation, size, batch, mode) of one row, as JSON result rows; implementations that fail to
    import are reported with ``status='skipped'``, ones that fail to build a step or run with ``status='error'``.

    Args:
        model_name: The row's name (also what the memory subprocess rebuilds).
        args: Parsed and checked arguments (:func:`check_args`).
        candidates: The row's constructors; default: those of ``model_name``.
    """
    device = torch.device(args.device)
    candidates = candidates if candidates is not None else row_candidates(model_name, args.with_cp)
    common = dict(model=model_name, device=str(device), amp=bool(args.amp), compile=bool(args.compile))
    rows: list[dict[str, Any]] = []
    models: dict[str, nn.Module] = {}
    runners: dict[str, nn.Module] = {}
    for impl, make in candidates.items():
        if args.impl and impl not in args.impl:
            continue
        torch.manual_seed(0)
        try:
            models[impl] = make().to(device)
        except ImportError as err:
            rows.append(dict(common, impl=impl, status='skipped', error=str(err)[:200]))
            continue
        runners[impl] = torch.compile(models[impl]) if args.compile else models[impl]
    skipped = [dict(r) for r in rows]
    rows = []
    flops: dict[tuple[str, tuple[int, int]], Optional[float]] = {}
    for size in args.input_sizes:
        for batch in args.batch:
            for mode in MODES[args.mode]:
                shape = dict(height=size[0], width=size[1], batch=batch, mode=mode)
                rows += [dict(r, **shape) for r in skipped]
                x = torch.randn(batch, 3, *size, device=device)
                errors: dict[str, str] = {}
                steps = {}
                for impl, model in models.items():
                    if (impl, size) not in flops:
                        try:
                            flops[impl, size] = None if args.no_flops else bench.count_flops(model, x)
                        except Exception:  # noqa: BLE001 - a count the counter cannot do leaves the cell empty
                            flops[impl, size] = None
                    try:
                        steps[impl] = _guarded(bench.make_step(runners[impl], x, mode, args.amp), errors, impl)
                    except ValueError as err:
                        errors[impl] = str(err)
                timing = bench.time_steps(steps, device, args.warmup, args.repeat) if steps else {}
                for impl in models:
                    row = dict(common, impl=impl, **shape)
                    if impl in errors:
                        rows.append(dict(row, status='error', error=errors[impl]))
                        continue
                    result = timing[impl]
                    stats = bench.summarize(result['times_ms'], batch)
                    gflops = flops[impl, size]
                    row.update(status='ok', times_ms=result['times_ms'], **stats,
                               gflops=gflops, gmacs=None if gflops is None else gflops / 2,
                               first_call_ms=result['first_call_ms'], peak_mib=None, memory_method=None)
                    if args.compile:
                        row.update(compile_s=max(result['first_call_ms'] - stats['median_ms'], 0.0) / 1000,
                                   graph_breaks=result['graph_breaks'])
                    if device.type == 'cuda':
                        row.update(peak_mib=bench.cuda_peak_mib(steps[impl], device),
                                   memory_method='cuda_max_memory_allocated_delta')
                    if args.floor:
                        row.update(product_floor(runners[impl], x, mode, args))
                    rows.append(row)
    if args.memory and device.type != 'cuda':
        del models, runners, steps
        peaks = {impl: cpu_peak_mibs(model_name, impl, args) for impl in {r['impl'] for r in rows
                                                                          if r['status'] == 'ok'}}
        for row in rows:
            if row['status'] == 'ok':
                key = (row['height'], row['width'], row['batch'], row['mode'])
                row.update(peak_mib=peaks[row['impl']].get(key), memory_method='cpu_rss_growth_fresh_subprocess')
    return rows


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model', nargs='+', default=['swin_t'], metavar='ROW',
                        help=f'rows to measure, or "all": {", ".join(ROWS)}')
    parser.add_argument('--list', action='store_true', help='list the rows and their implementations and exit')
    parser.add_argument('--impl', nargs='*', help='subset of implementations (default: all that import)')
    parser.add_argument('--size', type=int, nargs='+', action='append', metavar='S',
                        help='input size: S (square) or H W; may be repeated')
    parser.add_argument('--sizes', type=parse_size, nargs='+', metavar='S|HxW', help='input sizes, e.g. 224 512 1024')
    parser.add_argument('--batch', type=int, nargs='+', default=[1], help='batch sizes, e.g. 1 8')
    parser.add_argument('--mode', choices=sorted(MODES), default='infer',
                        help='infer: forward; train: forward + backward + AdamW step; both')
    parser.add_argument('--device', default='cpu', help='cpu, cuda or cuda:N')
    parser.add_argument('--amp', action='store_true', help='bf16 autocast (CPU and CUDA)')
    parser.add_argument('--compile', action='store_true', help='torch.compile each model (default mode); the compile '
                        'time is reported apart and left out of the timings')
    parser.add_argument('--warmup', type=int, default=3, help='untimed rounds before the timed ones (>= 1)')
    parser.add_argument('--repeat', '--iters', dest='repeat', type=int, default=10, help='timed rounds')
    parser.add_argument('--threads', type=int, default=0, help='torch CPU threads (0: leave default)')
    parser.add_argument('--memory', action='store_true', help='CPU: also measure peak memory (a subprocess per '
                        'implementation and setting); always measured on CUDA')
    parser.add_argument('--with-cp', action='store_true', help="also our model with activation checkpointing "
                        "(implementation 'ours_cp': with_cp=True; with --mode train --memory, the memory it saves)")
    parser.add_argument('--floor', action='store_true', help='also time each step\'s matrix products and '
                        'convolutions alone (eager): the step\'s time if everything else were free')
    parser.add_argument('--no-flops', action='store_true', help='skip the FLOP count (a forward at each size)')
    parser.add_argument('--json', metavar='PATH', help='write all rows and the environment as JSON')
    parser.add_argument('--readme', metavar='PATH', help='regenerate the block between <!-- benchmark:begin --> and '
                        '<!-- benchmark:end --> of this file from this run or from --from-json files')
    parser.add_argument('--from-json', nargs='+', metavar='JSON', help='with --readme: render these results instead '
                        'of measuring')
    parser.add_argument('--probe-memory', metavar='IMPL', help=argparse.SUPPRESS)
    return parser


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Validate and normalise ``args`` in place; usage errors exit with status 2 and a message."""
    try:
        args.input_sizes = input_sizes(args)
        args.models = model_names(args.model)
    except ValueError as err:
        parser.error(str(err))
    if any(b < 1 for b in args.batch):
        parser.error(f'--batch values must be >= 1, got {args.batch}')
    if args.warmup < 1 or args.repeat < 1:
        parser.error(f'--warmup and --repeat must be >= 1, got {args.warmup} and {args.repeat}')
    if args.floor and args.compile:
        parser.error('--floor times the eager operators of a step; it does not combine with --compile')
    if args.from_json and not args.readme:
        parser.error('--from-json needs --readme')
    if args.device.startswith('cuda') and not torch.cuda.is_available():
        parser.error(f'--device {args.device}: CUDA is not available here')


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Measure every requested row; the JSON result (``schema``, ``environment``, ``settings``, ``rows``)."""
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = dict(models=args.models, impl=args.impl, sizes=[list(s) for s in args.input_sizes],
                    batches=args.batch, modes=list(MODES[args.mode]), device=args.device, amp=args.amp,
                    with_cp=args.with_cp, floor=args.floor,
                    compile=args.compile, warmup=args.warmup, repeat=args.repeat, memory=bool(
                        args.memory or args.device.startswith('cuda')), command=sys.argv)
    environment = bench.environment(args.device)
    start = time.perf_counter()
    rows = []
    for name in args.models:
        rows += measure_row(name, args)
    bench.add_peer_ratios(rows)
    settings['wall_s'] = time.perf_counter() - start
    return dict(schema=bench.SCHEMA, environment=environment, settings=settings, rows=rows)


def main() -> None:
    parser = build_parser()
    args = parser.parse_args()
    if args.list:
        for name, row in {**ROWS, **TEST_ROWS}.items():
            print(f'{name:18s} {row.backbone:28s} {", ".join(row_candidates(name, args.with_cp))}')
        return
    check_args(parser, args)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.probe_memory:
        make = row_candidates(args.models[0], args.with_cp)[args.probe_memory]
        print(json.dumps(probe_memory(make, args.input_sizes, args.batch, MODES[args.mode], args.amp)))
        return
    if args.from_json:
        results = []
        for path in args.from_json:
            with open(path, encoding='utf-8') as f:
                results.append(json.load(f))
    else:
        result = run(args)
        results = [result]
        print(bench.measured_on(result))
        print()
        print(bench.render_table(result['rows']))
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            AtomicLocalBackend().put_text(json.dumps(result, indent=1) + '\n', args.json)
    if args.readme:
        try:
            bench.update_readme(args.readme, bench.readme_block(results))
        except (ValueError, OSError) as err:
            parser.exit(2, f'{parser.prog}: error: --readme {args.readme}: {err}\n')
        print(f'updated the benchmark block of {args.readme}')


if __name__ == '__main__':
    main()
