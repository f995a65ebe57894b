"""The measuring instrument behind ``tools/benchmark.py``: timing, FLOPs, peak memory, tables, JSON, README block.

The tool decides *what* to measure (its rows: one architecture, several implementations); this module decides *how*:

- :func:`make_step` builds one step of a model: ``infer`` (a forward under ``no_grad``) or ``train`` (forward, the
  backward of the sum of every output's mean, an AdamW step), optionally under bf16 autocast.
- :func:`time_steps` runs several steps interleaved round-robin, so that machine noise hits all implementations alike,
  and times each call (``time.perf_counter`` on CPU; CUDA events, with the stream synchronised, on CUDA). The first
  warm-up call of each step is timed apart: with ``torch.compile`` it holds the compilation.
- :func:`count_flops` counts the multiply-accumulates of one image's forward with ``torch.utils.flop_counter``.
- :func:`product_floor_ms` records the matrix products and convolutions of one step (a dispatch mode) and times each
  alone: what the step would cost if everything else (norms, activations, softmaxes, gathers, copies) were free.
- Peak memory is the growth during the steps: on CUDA ``max_memory_allocated`` minus what was allocated before
  (:func:`cuda_peak_mib`); on CPU the growth of the process's resident set, sampled by a thread, in a fresh
  subprocess per implementation (:func:`rss_growth_mib`, run by the tool's ``--probe-memory``).
- :func:`environment` records where it ran; :func:`render_table`, :func:`measured_on` and :func:`readme_block` render
  results; :func:`update_readme` swaps the block between :data:`BEGIN` and :data:`END` atomically.
"""
import datetime
import os
import platform
import re
import statistics
import threading
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Optional, Union

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map
from torch.utils.flop_counter import FlopCounterMode

from .checkpoint_io import AtomicLocalBackend

__all__ = [
    'BEGIN', 'END', 'PRODUCT_OPS', 'SCHEMA', 'add_peer_ratios', 'count_flops', 'cuda_peak_mib', 'environment',
    'graph_break_count', 'make_step', 'measured_on', 'product_floor_ms', 'readme_block', 'record_products',
    'render_table', 'replace_block', 'rss_growth_mib', 'summarize', 'time_steps', 'update_readme'
]

SCHEMA = 'vit_backbones.benchmark/1'
BEGIN = '<!-- benchmark:begin -->'
END = '<!-- benchmark:end -->'
#: Distributions whose versions a result records.
PACKAGES = ('torch', 'timm', 'mmcv', 'mmengine', 'mmdet', 'mmsegmentation', 'mmpretrain')


def _outputs(out: Any) -> list[torch.Tensor]:
    """Every tensor of a model's output (a tensor, or nested tuples/lists/dicts of them)."""
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (list, tuple)):
        return [t for item in out for t in _outputs(item)]
    return []


def make_step(model: nn.Module, x: torch.Tensor, mode: str, amp: bool = False,
              lr: float = 1e-6) -> Callable[[], None]:
    """One benchmark step of ``model`` on ``x``.

    Args:
        model: The model; put in eval mode for ``infer`` and train mode for ``train``.
        x: The input batch, on the model's device.
        mode: ``'infer'``: a forward under ``torch.no_grad``; ``'train'``: a forward, the backward of the sum of
            every output's mean, and an AdamW step (``zero_grad(set_to_none=True)`` first).
        amp: bf16 autocast on ``x``'s device type.
        lr: AdamW learning rate (small: the weights stay finite over many steps).

    Returns:
        A function that runs one step (it does not synchronise; :func:`time_steps` does).
    """
    if mode not in ('infer', 'train'):
        raise ValueError(f"mode must be 'infer' or 'train', got {mode!r}")
    model.train(mode == 'train')  # (not chained: mmseg's ViT returns None from train())
    optimizer = None
    if mode == 'train':
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise ValueError('train mode needs a model with trainable parameters')
        optimizer = torch.optim.AdamW(params, lr=lr)

    def infer() -> None:
        with torch.no_grad(), torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
            model(x)

    def train() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
            outs = _outputs(model(x))
        if not outs:
            raise ValueError(f'{type(model).__name__} returned no tensor to back-propagate')
        sum(o.float().mean() for o in outs).backward()
        optimizer.step()

    return infer if mode == 'infer' else train


def _synchronize(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def time_steps(steps: dict[str, Callable[[], None]], device: Union[str, torch.device] = 'cpu', warmup: int = 3,
               repeat: int = 10) -> dict[str, dict[str, Any]]:
    """Time ``steps`` interleaved round-robin: ``warmup`` untimed-for-statistics rounds, then ``repeat`` rounds.

    Args:
        steps: Implementation name -> step function (:func:`make_step`).
        device: Where the steps run; on CUDA each call is timed by CUDA events around it, the stream synchronised.
        warmup: Rounds before the timed ones (at least one: the first call, timed apart, is ``first_call_ms``).
        repeat: Timed rounds.

    Returns:
        Per implementation: ``times_ms`` (the ``repeat`` timed calls) and ``first_call_ms`` (the first warm-up call:
        with ``torch.compile`` it holds the compilation), plus ``graph_breaks`` (dynamo's graph-break counter growth
        during the first call; 0 when nothing was compiled).
    """
    if warmup < 1 or repeat < 1:
        raise ValueError(f'warmup and repeat must be >= 1, got warmup={warmup}, repeat={repeat}')
    device = torch.device(device)
    cuda = device.type == 'cuda'
    result: dict[str, dict[str, Any]] = {name: dict(times_ms=[], first_call_ms=None, graph_breaks=0) for name in steps}
    for i in range(warmup + repeat):
        for name, step in steps.items():
            breaks = graph_break_count() if i == 0 else 0
            _synchronize(device)
            if cuda:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                step()
                end.record()
                end.synchronize()
                elapsed = start.elapsed_time(end)
            else:
                begin = time.perf_counter()
                step()
                elapsed = (time.perf_counter() - begin) * 1000
            if i == 0:
                result[name]['first_call_ms'] = elapsed
                result[name]['graph_breaks'] = graph_break_count() - breaks
            elif i >= warmup:
                result[name]['times_ms'].append(elapsed)
    return result


def graph_break_count() -> int:
    """Graph breaks dynamo has counted in this process so far (``torch._dynamo.utils.counters``)."""
    try:
        from torch._dynamo.utils import counters
    except ImportError:  # pragma: no cover - torch without dynamo
        return 0
    return int(sum(counters['graph_break'].values()))


def summarize(times_ms: Sequence[float], batch: int) -> dict[str, float]:
    """``median_ms``, ``best_ms`` and the throughputs ``img_per_s`` (at the median) and ``img_per_s_best``."""
    if not times_ms:
        raise ValueError('no timed calls to summarise')
    median, best = statistics.median(times_ms), min(times_ms)
    return dict(median_ms=median, best_ms=best, img_per_s=batch * 1000 / median, img_per_s_best=batch * 1000 / best)


def count_flops(model: nn.Module, x: torch.Tensor) -> float:
    """Forward FLOPs of one image (``x[:1]``) in G, by ``torch.utils.flop_counter``; one multiply-add counts 2.

    Counted on the math attention path (every module with a ``fused_attn`` switch, ours and timm's, is switched off
    for the count and back after), so that fused kernels the counter has no formula for are not left out. The model
    runs in eval mode under ``no_grad`` and is put back in its previous mode.
    """
    switches = {m: m.fused_attn for m in model.modules() if isinstance(getattr(m, 'fused_attn', None), bool)}
    training = model.training
    for module in switches:
        module.fused_attn = False
    counter = FlopCounterMode(display=False)
    try:
        model.eval()
        with counter, torch.no_grad():
            model(x[:1])
    finally:
        for module, value in switches.items():
            module.fused_attn = value
        model.train(training)
    return counter.get_total_flops() / 1e9


#: aten operators :func:`product_floor_ms` counts: matrix products and convolutions (forward and backward).
PRODUCT_OPS = frozenset({'mm', 'addmm', 'bmm', 'baddbmm', 'convolution', 'convolution_backward'})


class _ProductRecorder(TorchDispatchMode):
    """Records the operator, tensor geometry and other arguments of every :data:`PRODUCT_OPS` call, per signature."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: dict[str, list[Any]] = {}  # signature -> [operator, args template, kwargs template, count]

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: Optional[dict] = None) -> Any:
        kwargs = kwargs or {}
        if func.overloadpacket.__name__ in PRODUCT_OPS:
            args_t, kwargs_t = tree_map(_geometry, (args, kwargs))
            key = f'{func}{args_t!r}{kwargs_t!r}'
            self.calls.setdefault(key, [func, args_t, kwargs_t, 0])[3] += 1
        return func(*args, **kwargs)


class _Geometry(tuple):
    """(shape, stride, dtype, device) of a recorded tensor argument."""


def _geometry(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return _Geometry((tuple(value.shape), tuple(value.stride()), value.dtype, value.device))
    return value


def _fresh(value: Any) -> Any:
    """A random tensor with a recorded geometry (a view of the smallest storage its strides need), or ``value``."""
    if not isinstance(value, _Geometry):
        return value
    shape, stride, dtype, device = value
    extent = 1 + sum((n - 1) * s for n, s in zip(shape, stride)) if all(shape) else 0
    return torch.randn(extent, dtype=dtype, device=device).as_strided(shape, stride)


def record_products(step: Callable[[], None]) -> list[tuple[Any, tuple, dict, int]]:
    """The matrix products and convolutions (:data:`PRODUCT_OPS`) of one call of ``step``, backward included:
    ``(operator, args, kwargs, count)`` per distinct signature, tensors replaced by their (shape, stride, dtype,
    device)."""
    recorder = _ProductRecorder()
    with recorder:
        step()
    return [tuple(call) for call in recorder.calls.values()]


def product_floor_ms(step: Callable[[], None], device: Union[str, torch.device] = 'cpu', repeat: int = 10
                     ) -> dict[str, Any]:
    """Time the matrix products and convolutions of one call of ``step``, each alone (:func:`record_products`).

    Each distinct signature runs ``repeat`` times on random tensors of its recorded geometry, timed by
    :func:`time_steps` after one warm-up call; its median times its count in the step, summed over signatures, is
    the floor: the step's time if everything else it does were free. Fused attention kernels are not products here
    (their matrix products run inside them), so a fused implementation's floor leaves its attention out.

    Returns:
        ``floor_ms`` and ``products`` (calls in one step).
    """
    if repeat < 1:
        raise ValueError(f'repeat must be >= 1, got {repeat}')
    calls = record_products(step)
    total = 0.0
    with torch.no_grad():
        for func, args_t, kwargs_t, count in calls:
            args, kwargs = tree_map(_fresh, (args_t, kwargs_t))
            timing = time_steps({'product': lambda: func(*args, **kwargs)}, device, warmup=1, repeat=repeat)
            total += statistics.median(timing['product']['times_ms']) * count
    return dict(floor_ms=total, products=sum(call[3] for call in calls))


def cuda_peak_mib(step: Callable[[], None], device: Union[str, torch.device] = 'cuda') -> float:
    """Peak CUDA memory growth (MiB) of one call of ``step``: ``max_memory_allocated`` minus the memory allocated
    before it (the model, its optimizer state and the input are not counted)."""
    device = torch.device(device)
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    step()
    torch.cuda.synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - before) / 2 ** 20


def _rss_mib() -> float:
    """Current resident set of this process, MiB (Linux ``/proc/self/statm``)."""
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2 ** 20


def rss_growth_mib(step: Callable[[], None], calls: int = 3) -> float:
    """Peak growth (MiB) of this process's resident set over ``calls`` calls of ``step``, from the resident set just
    before them. A thread samples ``/proc/self/statm`` every millisecond (torch releases the GIL in its kernels).

    Run it in a fresh process per implementation (the tool's ``--probe-memory``): allocator caches kept from an
    earlier model would hide the growth.
    """
    baseline, peak, done = _rss_mib(), [0.0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_mib())
            time.sleep(0.001)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        for _ in range(calls):
            step()
    finally:
        done.set()
        sampler.join()
    return max(peak[0], _rss_mib()) - baseline


def _cpu_facts() -> dict[str, Any]:
    """CPU model (``/proc/cpuinfo`` ``model name``), core count and vector extensions of this machine."""
    model, flags = None, set()
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                key, _, value = line.partition(':')
                if key.strip() == 'model name' and model is None:
                    model = value.strip()
                elif key.strip() == 'flags' and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return dict(cpu_model=model or platform.processor() or platform.machine(), cpu_count=os.cpu_count(),
                avx2='avx2' in flags, avx512=any(flag.startswith('avx512') for flag in flags),
                avx512_flags=sorted(flag for flag in flags if flag.startswith('avx512')))


def environment(device: Union[str, torch.device] = 'cpu') -> dict[str, Any]:
    """Where a measurement ran: CPU model and vector extensions, torch threads, package versions, the CUDA device's
    name, the date (UTC, ISO 8601)."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    device = torch.device(device)
    env = dict(_cpu_facts(), threads=torch.get_num_threads(), python=platform.python_version(),
               platform=platform.platform(), versions=versions, device=str(device), device_name=None, cuda=None,
               date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'))
    if device.type == 'cuda':
        env['device_name'] = torch.cuda.get_device_name(device)
        env['cuda'] = torch.version.cuda
    return env


def _fmt(value: Optional[float], digits: int = 1) -> str:
    """``value`` with ``digits`` decimals; small values keep three significant digits; None is ``-``."""
    if value is None:
        return '-'
    return f'{value:.3g}' if 0 < abs(value) < 10 ** -digits * 10 else f'{value:.{digits}f}'


def render_table(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown table of result rows (one line per model, implementation, size, batch and mode).

    Columns: median and best latency (ms), img/s at the median, forward GMACs per image (what papers call FLOPs; the
    JSON also has ``gflops``, twice as many), peak memory growth (MiB),
    the median against the best peer's (``ratio``: below 1 is faster), with ``--floor`` the products floor (ms, see
    :func:`product_floor_ms`), and with ``torch.compile`` the compile time and graph breaks. Rows that did not run
    say why in the last column.
    """
    compiled = any(row.get('compile') for row in rows)
    floored = any('floor_ms' in row for row in rows)
    head = ['Model', 'Impl', 'Input', 'Batch', 'Mode', 'Median ms', 'Best ms', 'img/s', 'GMACs', 'Peak MiB',
            'vs best peer']
    head += ['Products floor ms'] if floored else []
    head += ['Compile s', 'Graph breaks'] if compiled else []
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for row in rows:
        cells = [row['model'], row['impl'], f"{row['height']}x{row['width']}", str(row['batch']), row['mode']]
        if row.get('status', 'ok') != 'ok':
            cells += ['-'] * (len(head) - len(cells) - 1) + [f"{row.get('status')}: {row.get('error', '')}"]
        else:
            ratio = row.get('ratio_to_best_peer')
            cells += [_fmt(row['median_ms']), _fmt(row['best_ms']), _fmt(row['img_per_s'], 2),
                      _fmt(row.get('gmacs'), 2), _fmt(row.get('peak_mib'), 0),
                      '-' if ratio is None else f"{ratio:.2f}x {row.get('best_peer')}"]
            if floored:
                cells.append(_fmt(row.get('floor_ms')))
            if compiled:
                cells += [_fmt(row.get('compile_s'), 1), str(row.get('graph_breaks', '-'))]
        lines.append('| ' + ' | '.join(str(c).replace('|', '/') for c in cells) + ' |')
    return '\n'.join(lines)


def add_peer_ratios(rows: list[dict[str, Any]]) -> None:
    """Set ``ratio_to_best_peer`` and ``best_peer`` of every row in place: its median over the fastest peer's (every
    implementation whose name does not start with ``ours``) measured with the same model, input, batch and mode."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        key = (row['model'], row['height'], row['width'], row['batch'], row['mode'])
        groups.setdefault(key, []).append(row)
    for group in groups.values():
        peers = [r for r in group if not r['impl'].startswith('ours') and r.get('status', 'ok') == 'ok']
        best = min(peers, key=lambda r: r['median_ms'], default=None)
        for row in group:
            ok = best is not None and row.get('status', 'ok') == 'ok'
            row['ratio_to_best_peer'] = row['median_ms'] / best['median_ms'] if ok else None
            row['best_peer'] = best['impl'] if ok else None


def measured_on(result: dict[str, Any]) -> str:
    """The "measured on" sentence of one result (its ``environment`` and ``settings``)."""
    env, settings = result['environment'], result['settings']
    versions = env.get('versions', {})
    isa = 'AVX-512' if env.get('avx512') else ('AVX2, no AVX-512' if env.get('avx2') else 'no AVX2')
    where = f"{env.get('cpu_model')} ({env.get('cpu_count')} cores, {isa}), {env.get('threads')} threads"
    if str(env.get('device', 'cpu')).startswith('cuda'):
        where = f"{env.get('device_name')} (CUDA {env.get('cuda')}), host {where}"
    precision = 'bf16 autocast' if settings.get('amp') else 'fp32'
    compiled = 'torch.compile' if settings.get('compile') else 'eager'
    peers = ', '.join(f'{name} {v}' for name, v in versions.items() if v and name != 'torch')
    return (f"Measured on {where}, {str(env.get('date', ''))[:10]}; {precision}, {compiled}; median and best of "
            f"{settings.get('repeat')} after {settings.get('warmup')} warm-up steps; torch {versions.get('torch')}, "
            f'{peers}.')


def readme_block(results: Sequence[dict[str, Any]]) -> str:
    """The README block (without the markers) for one or more results: per result its "measured on" line and
    table, in the order given."""
    if not results:
        raise ValueError('readme_block needs at least one result')
    parts = ['_Generated by `tools/benchmark.py --readme`; do not edit by hand._']
    for result in results:
        if result.get('schema') != SCHEMA:
            raise ValueError(f"not a benchmark result of schema {SCHEMA!r}: schema {result.get('schema')!r}")
        parts += [measured_on(result), render_table(result['rows'])]
    return '\n\n'.join(parts)


def replace_block(text: str, block: str) -> str:
    """``text`` with everything between :data:`BEGIN` and :data:`END` replaced by ``block``; the markers and all
    outside them are kept byte for byte. A ValueError if the markers are missing, repeated or out of order."""
    starts, ends = [m.start() for m in re.finditer(re.escape(BEGIN), text)], \
        [m.start() for m in re.finditer(re.escape(END), text)]
    if len(starts) != 1 or len(ends) != 1 or ends[0] < starts[0]:
        raise ValueError(f'expected exactly one {BEGIN} followed by one {END}; found {len(starts)} begin and '
                         f'{len(ends)} end markers')
    head, tail = text[:starts[0] + len(BEGIN)], text[ends[0]:]
    return f'{head}\n{block.strip()}\n{tail}'


def update_readme(path: Union[str, Path], block: str) -> None:
    """Replace the benchmark block of the file at ``path`` (see :func:`replace_block`), atomically: a temporary
    file beside it swapped in by ``os.replace``. On any error the file is left as it was."""
    path = Path(path)
    with path.open(encoding='utf-8', newline='') as f:  # no newline translation: bytes outside are kept
        text = f.read()
    new = replace_block(text, block)
    if new != text:
        AtomicLocalBackend().put_text(new, path)
