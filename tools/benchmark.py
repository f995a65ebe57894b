"""Latency of our backbones against timm's and mmseg's implementations of the same architecture.

Speed and memory targets live here, never in unit tests. Every implementation runs on the same input, in
the same process, interleaved round-robin so that machine noise hits all of them alike.

Example:
    python tools/benchmark.py --model swin_t --size 512 512 --batch 1 --mode train
    python tools/benchmark.py --model swin_t --size 224 224 --device cuda --amp
"""
import argparse
import statistics
import time
from typing import Callable

import torch
from torch import nn

import vit_backbones  # noqa: F401
from vit_backbones.backbones import SwinTransformer

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


MODELS = {'swin_t': swin_t_candidates}


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
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    x = torch.randn(args.batch, 3, *args.size, device=args.device)
    runs = {}
    for name, make in MODELS[args.model]().items():
        if args.impl and name not in args.impl:
            continue
        try:
            model = make().to(args.device)
        except ImportError as err:
            print(f'skip {name}: {err}')
            continue
        model.train(args.mode == 'train')
        runs[name] = step_fn(model, x, args.mode, args.amp)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for i in range(args.warmup + args.iters):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            if i >= args.warmup:
                times[name].append(time.perf_counter() - start)
    print(f'{args.model} {args.mode} batch {args.batch} {args.size[0]}x{args.size[1]} on {args.device}'
          f'{" bf16" if args.amp else ""}, threads {torch.get_num_threads()}, median of {args.iters}:')
    base = statistics.median(times['ours']) if 'ours' in times else None
    for name, ts in times.items():
        med = statistics.median(ts)
        rel = f'  ({med / base:.2f}x ours)' if base else ''
        print(f'  {name:10s} {med * 1000:9.1f} ms/iter  {args.batch / med:8.2f} img/s{rel}')


if __name__ == '__main__':
    main()
