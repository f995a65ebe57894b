"""Latency, throughput, FLOPs and peak memory of our backbones against peer implementations.

Speed and memory targets live here, never in unit tests. Every implementation runs on the same input, in
the same process, interleaved round-robin so that machine noise hits all of them alike. Where no peer implements
an architecture (Shuffle Transformer, CvT), the row compares it with our Swin-T, which has about the same FLOPs.

Peak memory (``--memory``): on CUDA ``torch.cuda.max_memory_allocated`` during the timed steps; on CPU the growth
of the process's peak resident set over one warm-up and two steps, each implementation in a fresh subprocess.

Example:
    python tools/benchmark.py --model swin_t --size 512 512 --batch 1 --mode train
    python tools/benchmark.py --model shuffle_t --size 224 224 --memory
    python tools/benchmark.py --model vit_b16 --size 512 512
    python tools/benchmark.py --model vit_b_r50 --size 384 384
    python tools/benchmark.py --model levit_256 --size 224 224
    python tools/benchmark.py --model cait_s24 --size 224 224
    python tools/benchmark.py --model deepvit_s --size 224 224
    python tools/benchmark.py --model pcpvt_s --size 512 512
    python tools/benchmark.py --model swin_t --size 224 224 --device cuda --amp
"""
import argparse
import resource
import statistics
import subprocess
import sys
import threading
import time
from typing import Callable, Optional

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import vit_backbones  # noqa: F401
from vit_backbones.backbones import CaiT, CvT, LeViT, ShuffleTransformer, SwinTransformer, VisionTransformer
from vit_backbones.backbones.vit_hybrid import HybridVisionTransformer

SWIN_T = dict(embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24))


def swin_t_candidates() -> dict[str, Callable[[], nn.Module]]:
    """Constructors of Swin-T: ours (fused and math attention), timm, mmseg."""
    def ours(fused: bool) -> nn.Module:
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

    return {'ours': lambda: ours(True), 'ours_math': lambda: ours(False), 'timm': timm_swin,
            'mmseg': mmseg_swin}


def ours_swin_t() -> nn.Module:
    """Our Swin-T: the equal-FLOPs comparison for families no peer implements."""
    return SwinTransformer('tiny', drop_path_rate=0.0)


def shuffle_t_candidates() -> dict[str, Callable[[], nn.Module]]:
    """Shuffle-T (no peer implementation): ours (fused and math attention) and our Swin-T (4.5 GFLOPs at 224)."""
    return {'ours': lambda: ShuffleTransformer('tiny', drop_path_rate=0.0, fused_attn=True),
            'ours_math': lambda: ShuffleTransformer('tiny', drop_path_rate=0.0, fused_attn=False),
            'swin_t': ours_swin_t}


def cvt_13_candidates() -> dict[str, Callable[[], nn.Module]]:
    """CvT-13 (no peer implementation of its dense form): ours (fused and math attention) and our Swin-T."""
    return {'ours': lambda: CvT('cvt-13', drop_path_rate=0.0, fused_attn=True),
            'ours_math': lambda: CvT('cvt-13', drop_path_rate=0.0, fused_attn=False),
            'swin_t': ours_swin_t}


def vit_b16_candidates() -> dict[str, Callable[[], nn.Module]]:
    """ViT-B/16 (last block's map; the position embedding resized to the input): ours (fused and math attention),
    timm (``dynamic_img_size``, the same resize) and mmseg's ``VisionTransformer`` (bicubic resize, no antialias)."""
    def ours(fused: bool) -> nn.Module:
        return VisionTransformer('base', fused_attn=fused)

    def timm_vit() -> nn.Module:
        import timm
        return timm.create_model('vit_base_patch16_224', num_classes=0, dynamic_img_size=True)

    def mmseg_vit() -> nn.Module:
        from mmseg.models.backbones import VisionTransformer as MMSegViT
        return MMSegViT(img_size=224, embed_dims=768, num_layers=12, num_heads=12, final_norm=True, patch_bias=True,
                        norm_cfg=dict(type='LN', eps=1e-6))

    return {'ours': lambda: ours(True), 'ours_math': lambda: ours(False), 'timm': timm_vit, 'mmseg': mmseg_vit}


class _TimmFixedSize(nn.Module):
    """A timm model that runs at its ``img_size`` only (LeViT's bias grids, CaiT's position table), returning its
    intermediate maps (``forward_intermediates``), rebuilt for the input size.

    The first call at another size builds a fresh (random) model for it: one build, in the warm-up.
    """

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.size: tuple[int, ...] = (224, 224)
        self.model = self._build()

    def _build(self) -> nn.Module:
        import timm
        return timm.create_model(self.name, num_classes=0, img_size=self.size)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if tuple(x.shape[-2:]) != self.size:
            self.size = tuple(x.shape[-2:])
            self.model = self._build().to(x.device).train(self.training)
        return self.model.forward_intermediates(x, intermediates_only=True)


def cait_s24_candidates() -> dict[str, Callable[[], nn.Module]]:
    """CaiT-S24 (the 24 talking-heads blocks; no class attention): ours (its talking heads always take the math
    path; the position grid resized to the input) and timm ``cait_s24_224`` built for the input size (every block's
    map through ``forward_intermediates``, which stops before the class-attention blocks)."""
    return {'ours': lambda: CaiT('s24'), 'timm': lambda: _TimmFixedSize('cait_s24_224')}


def levit_256_candidates() -> dict[str, Callable[[], nn.Module]]:
    """LeViT-256 (three stage maps): ours (fused and math attention; bias tables resized to the input at every
    forward) and timm ``levit_256`` built for the input size (math attention only; no resize)."""
    def ours(fused: bool) -> nn.Module:
        return LeViT('256', fused_attn=fused)

    return {'ours': lambda: ours(True), 'ours_math': lambda: ours(False),
            'timm': lambda: _TimmFixedSize('levit_256')}


def vit_b_r50_candidates() -> dict[str, Callable[[], nn.Module]]:
    """R50+ViT-B/16 (last block's map; the position grid of 384 resized to the input): ours (fused and math
    attention) and timm's ``vit_base_r50_s16_384`` (``dynamic_img_size``, the same resize; ``dynamic_img_pad``)."""
    def ours(fused: bool) -> nn.Module:
        return HybridVisionTransformer('base_r50_s16', pretrain_img_size=384, fused_attn=fused)

    def timm_hybrid() -> nn.Module:
        import timm
        return timm.create_model('vit_base_r50_s16_384', num_classes=0, dynamic_img_size=True, dynamic_img_pad=True)

    return {'ours': lambda: ours(True), 'ours_math': lambda: ours(False), 'timm': timm_hybrid}


def ceit_s_candidates() -> dict[str, Callable[[], nn.Module]]:
    """CeiT-S (last block's patch-token map; I2T stem, LeFF blocks, no LCA): ours (fused and math attention) against
    timm's ``deit_small_patch16_224`` (``dynamic_img_size``), the closest peer at similar FLOPs (4.6G against CeiT-S's
    4.5G in the papers). timm has no CeiT and CeiT has no public code, so no same-architecture reference exists."""
    def ours(fused: bool) -> nn.Module:
        from vit_backbones.backbones.ceit import CeiT
        return CeiT('small', fused_attn=fused)

    def timm_deit() -> nn.Module:
        import timm
        return timm.create_model('deit_small_patch16_224', num_classes=0, dynamic_img_size=True)

    return {'ours': lambda: ours(True), 'ours_math': lambda: ours(False), 'timm_deit_s': timm_deit}


def deepvit_s_candidates() -> dict[str, Callable[[], nn.Module]]:
    """DeepViT-S (last block's map; conv stem, re-attention in blocks 11-15): ours (fused and math attention in the
    eleven plain blocks; re-attention always runs the math path) against timm's ``deit_small_patch16_224``
    (``dynamic_img_size``), the closest peer: timm has no DeepViT, and DeiT-S is the plain ViT of about the same
    width and FLOPs (384 channels, 12 blocks against DeepViT-S's 396 and 16 of MLP ratio 3)."""
    def ours(fused: bool) -> nn.Module:
        from vit_backbones.backbones.deepvit import DeepViT
        return DeepViT('s', fused_attn=fused)

    def timm_deit() -> nn.Module:
        import timm
        return timm.create_model('deit_small_patch16_224', num_classes=0, dynamic_img_size=True)

    return {'ours': lambda: ours(True), 'ours_math': lambda: ours(False), 'timm_deit_s': timm_deit}


def pcpvt_s_candidates() -> dict[str, Callable[[], nn.Module]]:
    """Twins-PCPVT-S (four stage maps): ours (fused and math attention) and timm's ``twins_pcpvt_small``
    (``features_only``: its four stage maps; timm floors sizes its strides do not divide, ours pads them)."""
    def ours(fused: bool) -> nn.Module:
        from vit_backbones.backbones.cpvt import CPVT
        return CPVT('pcpvt_small', fused_attn=fused)

    def timm_pcpvt() -> nn.Module:
        import timm
        return timm.create_model('twins_pcpvt_small', num_classes=0, features_only=True)

    return {'ours': lambda: ours(True), 'ours_math': lambda: ours(False), 'timm': timm_pcpvt}


def cpvt_s_candidates() -> dict[str, Callable[[], nn.Module]]:
    """CPVT-S (last block's map; PEG after block 0, no position table): ours (fused and math attention) against
    timm's ``deit_small_patch16_224`` (``dynamic_img_size``: its position table resized to the input), the same
    network with a position table instead of the PEG; timm has no plain CPVT."""
    def ours(fused: bool) -> nn.Module:
        from vit_backbones.backbones.cpvt import CPVT
        return CPVT('small', fused_attn=fused)

    def timm_deit() -> nn.Module:
        import timm
        return timm.create_model('deit_small_patch16_224', num_classes=0, dynamic_img_size=True)

    return {'ours': lambda: ours(True), 'ours_math': lambda: ours(False), 'timm_deit_s': timm_deit}


MODELS = {'swin_t': swin_t_candidates, 'shuffle_t': shuffle_t_candidates, 'cvt_13': cvt_13_candidates,
          'vit_b16': vit_b16_candidates, 'cait_s24': cait_s24_candidates, 'levit_256': levit_256_candidates,
          'vit_b_r50': vit_b_r50_candidates, 'ceit_s': ceit_s_candidates,
          'deepvit_s': deepvit_s_candidates, 'pcpvt_s': pcpvt_s_candidates, 'cpvt_s': cpvt_s_candidates}


def gmacs(model: nn.Module, x: torch.Tensor) -> float:
    """Forward multiply-accumulates per image, in G (what the papers call FLOPs), by ``torch.utils.flop_counter``.

    Counted on the math attention path (every module with a ``fused_attn`` switch, ours and timm's, is switched off
    for the count and back after), so that fused kernels the counter has no formula for are not left out.
    """
    switches = {m: m.fused_attn for m in model.modules() if hasattr(m, 'fused_attn')}
    for module in switches:
        module.fused_attn = False
    counter = FlopCounterMode(display=False)
    try:
        with counter, torch.no_grad():
            model(x[:1])
    finally:
        for module, value in switches.items():
            module.fused_attn = value
    return counter.get_total_flops() / 2e9


def _rss_mib() -> float:
    """Current resident set of this process, MiB (Linux ``/proc/self/statm``)."""
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2 ** 20


def cpu_peak_mib(model_name: str, impl: str, args: argparse.Namespace) -> Optional[float]:
    """Peak resident-set growth (MiB) of one implementation's warm-up + two steps, in a fresh subprocess."""
    cmd = [sys.executable, __file__, '--model', model_name, '--probe-memory', impl, '--size', *map(str, args.size),
           '--batch', str(args.batch), '--mode', args.mode, '--threads', str(args.threads)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        print(f'  memory probe of {impl} failed: {out.stderr.strip().splitlines()[-1:]}')
        return None
    return float(out.stdout.strip().splitlines()[-1])


def probe_memory(make: Callable[[], nn.Module], args: argparse.Namespace) -> None:
    """Print the peak RSS growth (MiB) over one warm-up and two steps (run by :func:`cpu_peak_mib`).

    A thread samples the resident set every millisecond while the steps run (torch releases the GIL in its
    kernels); the baseline is the resident set after building the model and the input.
    """
    model = make()
    model.train(args.mode == 'train')  # (mmseg's ViT returns None from train())
    x = torch.randn(args.batch, 3, *args.size)
    run = step_fn(model, x, args.mode, False)
    baseline, peak, done = _rss_mib(), [0.0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_mib())
            time.sleep(0.001)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    for _ in range(3):
        run()
    done.set()
    sampler.join()
    print(max(peak[0], _rss_mib()) - baseline)


def step_fn(model: nn.Module, x: torch.Tensor, mode: str, amp: bool) -> Callable[[], None]:
    """One forward (``infer``) or forward + backward (``train``) call."""
    dtype = torch.bfloat16

    def run() -> None:
        with torch.autocast(x.device.type, dtype=dtype, enabled=amp):
            if mode == 'infer':
                with torch.no_grad():
                    model(x)
            else:
                outs = model(x)
                sum(o.float().mean() for o in outs).backward()
        if x.device.type == 'cuda':
            torch.cuda.synchronize()
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model', default='swin_t', choices=sorted(MODELS))
    parser.add_argument('--impl', nargs='*', help='subset of implementations (default: all that import)')
    parser.add_argument('--size', type=int, nargs=2, default=(224, 224), metavar=('H', 'W'))
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--mode', choices=['infer', 'train'], default='infer')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--amp', action='store_true', help='bf16 autocast')
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--iters', type=int, default=10)
    parser.add_argument('--threads', type=int, default=0, help='torch CPU threads (0: leave default)')
    parser.add_argument('--memory', action='store_true', help='also report peak memory (see the module docstring)')
    parser.add_argument('--probe-memory', metavar='IMPL', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.probe_memory:
        probe_memory(MODELS[args.model]()[args.probe_memory], args)
        return

    torch.manual_seed(0)
    x = torch.randn(args.batch, 3, *args.size, device=args.device)
    runs, flops = {}, {}
    for name, make in MODELS[args.model]().items():
        if args.impl and name not in args.impl:
            continue
        try:
            model = make().to(args.device)
        except ImportError as err:
            print(f'skip {name}: {err}')
            continue
        model.eval()
        flops[name] = gmacs(model, x)
        model.train(args.mode == 'train')
        runs[name] = step_fn(model, x, args.mode, args.amp)
    times: dict[str, list[float]] = {name: [] for name in runs}
    cuda_peak: dict[str, float] = {}
    for i in range(args.warmup + args.iters):
        for name, run in runs.items():
            if args.device.startswith('cuda') and i == args.warmup:
                torch.cuda.reset_peak_memory_stats()
            start = time.perf_counter()
            run()
            if i >= args.warmup:
                times[name].append(time.perf_counter() - start)
            if args.device.startswith('cuda') and i == args.warmup:
                cuda_peak[name] = torch.cuda.max_memory_allocated() / 2 ** 20
    peak: dict[str, Optional[float]] = dict(cuda_peak)
    if args.memory and not args.device.startswith('cuda'):
        peak = {name: cpu_peak_mib(args.model, name, args) for name in runs}
    print(f'{args.model} {args.mode} batch {args.batch} {args.size[0]}x{args.size[1]} on {args.device}'
          f'{" bf16" if args.amp else ""}, threads {torch.get_num_threads()}, median of {args.iters}:')
    base = statistics.median(times['ours']) if 'ours' in times else None
    for name, ts in times.items():
        med = statistics.median(ts)
        rel = f'  ({med / base:.2f}x ours)' if base else ''
        mem = f'  peak {peak[name]:7.0f} MiB' if peak.get(name) is not None else ''
        print(f'  {name:10s} {med * 1000:9.1f} ms/iter  {args.batch / med:8.2f} img/s  {flops[name]:6.2f} GMACs'
              f'{mem}{rel}')


if __name__ == '__main__':
    main()
