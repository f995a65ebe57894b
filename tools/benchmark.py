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
from vit_backbones.backbones import CvT, ShuffleTransformer, SwinTransformer, VisionTransformer

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


MODELS = {'swin_t': swin_t_candidates, 'shuffle_t': shuffle_t_candidates, 'cvt_13': cvt_13_candidates,
          'vit_b16': vit_b16_candidates}


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
