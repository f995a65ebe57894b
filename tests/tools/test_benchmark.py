"""``tools/benchmark.py`` and :mod:`vit_backbones.engine.benchmark`: the measuring functions on tiny models (infer and
train steps, timing, FLOPs, peak memory in a subprocess, torch.compile), the CLI's argument handling, the JSON
result, the table, the README block, and that every registered backbone has a row.

The real rows are built (at 64x64) by test_benchmark_rows.py; nothing here times a real architecture.
"""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from vit_backbones.backbones import BaseBackbone
from vit_backbones.engine import benchmark as bench
from vit_backbones.registry import MODELS as REGISTRY

BENCHMARK = Path(__file__).resolve().parents[2] / 'tools' / 'benchmark.py'


def _load_tool():
    spec = importlib.util.spec_from_file_location('vit_backbones_benchmark_tool', BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tool = _load_tool()


def parse(*argv: str):
    parser = tool.build_parser()
    args = parser.parse_args(list(argv))
    tool.check_args(parser, args)
    return args


class TwoOutputs(nn.Module):
    """A tiny model with two outputs (a tuple, as backbones return) and a ``fused_attn`` switch."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 5)
        self.fused_attn = True
        self.seen_fused: list[bool] = []

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.seen_fused.append(self.fused_attn)
        y = self.conv(x)
        return y, self.fc(y.mean((2, 3)))


def test_every_registered_backbone_has_a_row():
    backbones = {name for name, cls in REGISTRY.module_dict.items()
                 if isinstance(cls, type) and issubclass(cls, BaseBackbone)}
    assert len(backbones) >= 13  # the families registered when this tool was written
    covered = {row.backbone for row in tool.ROWS.values()}
    assert backbones <= covered, f'no tools/benchmark.py row for {sorted(backbones - covered)}'
    assert set(tool.MODELS) == set(tool.ROWS) and not set(tool.TEST_ROWS) & set(tool.ROWS)


def test_train_step_updates_weights_and_infer_step_does_not():
    torch.manual_seed(0)
    model = TwoOutputs()
    x = torch.randn(2, 3, 8, 8)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    bench.make_step(model, x, 'infer')()
    assert not model.training and all(p.grad is None for p in model.parameters())
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    step = bench.make_step(model, x, 'train', lr=1e-2)
    step()
    assert model.training
    # both outputs reach the loss: the conv (first output) and the linear (second) moved, grads are finite
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert not torch.equal(p.detach(), before[name]), f'{name} not updated by the AdamW step'
    with pytest.raises(ValueError, match="'infer' or 'train'"):
        bench.make_step(model, x, 'eval')


def test_amp_step_runs_in_bf16_on_cpu():
    model = nn.Linear(8, 8)
    seen = []
    model.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    bench.make_step(model, torch.randn(2, 8), 'train', amp=True)()
    bench.make_step(model, torch.randn(2, 8), 'infer', amp=False)()
    assert seen == [torch.bfloat16, torch.float32]
    # the weights stay fp32; zero_grad runs before each train step, so the step's gradient is still there
    assert model.weight.dtype == torch.float32 and torch.isfinite(model.weight.grad).all()


def test_time_steps_interleaves_and_summarises():
    calls = []
    steps = {'a': lambda: calls.append('a'), 'b': lambda: calls.append('b')}
    timing = bench.time_steps(steps, 'cpu', warmup=2, repeat=3)
    assert calls == ['a', 'b'] * 5  # round-robin, warm-up rounds included
    for result in timing.values():
        assert len(result['times_ms']) == 3 and result['first_call_ms'] >= 0 and result['graph_breaks'] == 0
    stats = bench.summarize([4.0, 2.0, 10.0], batch=8)
    assert stats == dict(median_ms=4.0, best_ms=2.0, img_per_s=2000.0, img_per_s_best=4000.0)
    with pytest.raises(ValueError, match='warmup and repeat'):
        bench.time_steps(steps, 'cpu', warmup=0, repeat=1)


def test_count_flops_is_per_image_on_the_math_path():
    model = TwoOutputs().train()
    x = torch.randn(3, 3, 8, 8)
    conv = 2 * 3 * 9 * 4 * 8 * 8  # FLOPs of one image: 2 per multiply-add
    fc = 2 * 4 * 5
    assert bench.count_flops(model, x) == pytest.approx((conv + fc) / 1e9)
    assert model.seen_fused == [False] and model.fused_attn is True and model.training  # switched back


def test_record_products_sees_forward_and_backward_products():
    model = TwoOutputs()
    x = torch.randn(2, 3, 8, 8)
    names = lambda calls: sorted(f.overloadpacket.__name__ for f, _, _, n in calls for _ in range(n))  # noqa: E731
    assert names(bench.record_products(bench.make_step(model, x, 'infer'))) == ['addmm', 'convolution']
    # backward: the linear's input and weight gradients (two mm) and the convolution's backward
    assert names(bench.record_products(bench.make_step(model, x, 'train'))) == [
        'addmm', 'convolution', 'convolution_backward', 'mm', 'mm']
    (func, args, kwargs, count), = bench.record_products(lambda: torch.mm(torch.ones(3, 5).t(), torch.ones(3, 4)))
    assert count == 1 and args[0][:2] == ((5, 3), (1, 5))  # the transposed operand's strides are kept
    fresh = bench._fresh(args[0])
    assert fresh.shape == (5, 3) and fresh.stride() == (1, 5)
    expanded = bench._fresh(bench._geometry(torch.ones(4).expand(3, 4)))
    assert expanded.stride() == (0, 1) and expanded.untyped_storage().nbytes() == 4 * 4


class MostlyElementwise(nn.Module):
    """One small matrix product, then many passes of elementwise work over a large tensor."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fc(x[:8, :8])
        z = x
        for _ in range(20):
            z = torch.sin(z)
        return z.sum() + y.sum()


def test_product_floor_leaves_out_everything_but_the_products():
    torch.manual_seed(0)
    step = bench.make_step(MostlyElementwise(), torch.randn(1024, 1024), 'infer')
    step()
    floor = bench.product_floor_ms(step, repeat=3)
    assert floor['products'] == 1 and floor['floor_ms'] > 0
    timing = bench.time_steps({'step': step}, 'cpu', warmup=1, repeat=3)['step']
    # the sines over a million elements take far longer than one 8x8 product
    assert floor['floor_ms'] < 0.2 * bench.summarize(timing['times_ms'], 1)['median_ms']
    with pytest.raises(ValueError, match='repeat'):
        bench.product_floor_ms(step, repeat=0)


def _tiny_result(*extra: str) -> dict:
    args = parse('--model', 'tiny', '--sizes', '32', '--batch', '1', '2', '--mode', 'both', '--warmup', '1',
                 '--repeat', '2', *extra)
    return tool.run(args)


def test_tiny_run_json_schema_and_table():
    result = json.loads(json.dumps(_tiny_result()))  # JSON-serialisable as written by --json
    assert result['schema'] == bench.SCHEMA
    env = result['environment']
    for key in ('cpu_model', 'cpu_count', 'avx2', 'avx512', 'threads', 'versions', 'device', 'date'):
        assert key in env, key
    assert env['versions']['torch'] == torch.__version__.split('+')[0]
    with open('/proc/cpuinfo') as f:
        names = [line.split(':', 1)[1].strip() for line in f if line.startswith('model name')]
    if names:
        assert env['cpu_model'] == names[0]
    settings = result['settings']
    assert settings['sizes'] == [[32, 32]] and settings['batches'] == [1, 2] and settings['modes'] == ['infer',
                                                                                                       'train']
    rows = result['rows']
    impls = list(tool.tiny_candidates())
    assert len(rows) == len(impls) * 1 * 2 * 2
    assert {(r['impl'], r['batch'], r['mode']) for r in rows} == {
        (i, b, m) for i in impls for b in (1, 2) for m in ('infer', 'train')}
    for row in rows:
        assert row['status'] == 'ok' and len(row['times_ms']) == 2
        assert row['best_ms'] == min(row['times_ms']) and row['best_ms'] <= row['median_ms']
        assert row['img_per_s'] == pytest.approx(row['batch'] * 1000 / row['median_ms'])
        assert row['gflops'] > 0 and row['gmacs'] == pytest.approx(row['gflops'] / 2)
        assert row['peak_mib'] is None  # CPU without --memory
        assert row['best_peer'] == 'vit'  # the only implementation not named ours*
        peer = next(r for r in rows if r['impl'] == 'vit' and (r['batch'], r['mode']) == (row['batch'], row['mode']))
        assert row['ratio_to_best_peer'] == pytest.approx(row['median_ms'] / peer['median_ms'])
    table = bench.render_table(rows).splitlines()
    assert len(table) == 2 + len(rows) and table[0].startswith('| Model | Impl |') and 'Compile' not in table[0]
    assert all(line.count('|') == table[0].count('|') for line in table)
    assert '| tiny | ours | 32x32 | 2 | train |' in '\n'.join(table)
    assert 'Products floor' not in table[0] and not any('floor_ms' in row for row in rows)


def test_floor_adds_each_steps_products_floor_to_rows_and_table():
    result = _tiny_result('--floor')
    rows = result['rows']
    assert result['settings']['floor'] is True
    for row in rows:
        assert row['status'] == 'ok' and row['floor_ms'] > 0, row
        assert row['floor_products'] > 0
    train = {r['impl']: r['floor_products'] for r in rows if r['mode'] == 'train' and r['batch'] == 1}
    infer = {r['impl']: r['floor_products'] for r in rows if r['mode'] == 'infer' and r['batch'] == 1}
    assert all(train[impl] > infer[impl] for impl in train)  # the backward's products are counted too
    table = bench.render_table(rows).splitlines()
    assert table[0].endswith('| vs best peer | Products floor ms |')
    assert all(line.count('|') == table[0].count('|') for line in table)


def test_failing_implementations_are_reported_not_fatal():
    def missing():
        raise ImportError('No module named peerlib')

    class Broken(nn.Module):
        def forward(self, x):
            raise RuntimeError('shape mismatch\nmore')

    args = parse('--model', 'tiny', '--sizes', '16', '--warmup', '1', '--repeat', '1', '--mode', 'both')
    rows = tool.measure_row('tiny', args, {'ours': lambda: nn.Conv2d(3, 2, 3), 'peer': missing, 'broken': Broken})
    bench.add_peer_ratios(rows)
    status = {(r['impl'], r['mode']): (r['status'], r.get('error')) for r in rows}
    assert status[('ours', 'infer')] == ('ok', None) and status[('ours', 'train')] == ('ok', None)
    assert status[('peer', 'infer')] == ('skipped', 'No module named peerlib')
    assert status[('broken', 'infer')] == ('error', 'RuntimeError: shape mismatch')
    assert status[('broken', 'train')][0] == 'error'  # no trainable parameters: refused by make_step
    assert all(r['ratio_to_best_peer'] is None for r in rows)  # no peer ran
    table = bench.render_table(rows)
    assert 'skipped: No module named peerlib' in table and 'error: RuntimeError: shape mismatch' in table


def test_sizes_batches_modes_and_models_on_the_command_line():
    assert parse().input_sizes == [(224, 224)] and parse().models == ['swin_t']
    assert parse('--size', '512', '512').input_sizes == [(512, 512)]  # the earlier H W form
    args = parse('--size', '224', '--size', '512', '1024', '--sizes', '224', '64x32', '1024', '--batch', '1', '8',
                 '--model', 'swin_t', 'all')
    assert args.input_sizes == [(224, 224), (512, 1024), (64, 32), (1024, 1024)]
    assert args.batch == [1, 8] and args.models == list(tool.ROWS) and 'tiny' not in args.models
    assert parse('--iters', '7').repeat == 7 and parse('--repeat', '5').repeat == 5
    assert tool.MODES['both'] == ('infer', 'train')


@pytest.mark.parametrize('argv, needle', [
    (['--sizes', '0'], 'S or HxW'), (['--sizes', '12y4'], 'S or HxW'), (['--size', '1', '2', '3'], '--size'),
    (['--model', 'swin_tt'], "unknown --model 'swin_tt'"), (['--batch', '0'], '--batch'),
    (['--repeat', '0'], '--repeat'), (['--from-json', 'a.json'], 'needs --readme'),
    (['--floor', '--compile'], '--floor'),
])
def test_bad_arguments_exit_2_with_a_message(argv, needle, capsys):
    with pytest.raises(SystemExit) as exc:
        parse(*argv)
    assert exc.value.code == 2 and needle in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the refusal on a machine without CUDA')
def test_cuda_device_refused_without_cuda(capsys):
    with pytest.raises(SystemExit):
        parse('--device', 'cuda')
    assert 'CUDA is not available' in capsys.readouterr().err


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_run_with_amp_reports_peak_memory():
    result = _tiny_result('--device', 'cuda', '--amp')
    assert result['environment']['device_name'] and result['settings']['amp']
    for row in result['rows']:
        assert row['status'] == 'ok' and row['amp'] and row['peak_mib'] is not None and row['peak_mib'] >= 0
        assert row['memory_method'] == 'cuda_max_memory_allocated_delta'


README = """# Title

Text before, kept byte for byte.\r
{begin}
old table
{end}
Text after.
""".format(begin=bench.BEGIN, end=bench.END)


def _result_file(tmp_path: Path) -> Path:
    rows = [dict(model='tiny', impl=impl, height=32, width=32, batch=1, mode='infer', status='ok', median_ms=ms,
                 best_ms=ms, img_per_s=1000 / ms, gflops=0.5, gmacs=0.25, peak_mib=None) for impl, ms in
            (('ours', 2.0), ('peer', 4.0))]
    bench.add_peer_ratios(rows)
    result = dict(schema=bench.SCHEMA, environment=bench.environment('cpu'),
                  settings=dict(amp=False, compile=False, repeat=10, warmup=3), rows=rows)
    path = tmp_path / 'cpu.json'
    path.write_text(json.dumps(result))
    return path


def test_readme_block_replaced_between_markers_only(tmp_path, monkeypatch):
    readme = tmp_path / 'README.md'
    readme.write_bytes(README.encode())
    monkeypatch.setattr(sys, 'argv', ['benchmark.py', '--readme', str(readme), '--from-json',
                                      str(_result_file(tmp_path))])
    tool.main()
    text = readme.read_bytes().decode()
    head, rest = text.split(bench.BEGIN)
    block, tail = rest.split(bench.END)
    assert head == README.split(bench.BEGIN)[0] and tail == README.split(bench.END)[1]  # untouched outside
    assert 'old table' not in block and 'Measured on ' + bench.environment()['cpu_model'] in block
    assert '| tiny | ours | 32x32 | 1 | infer | 2.0 | 2.0 | 500.00 | 0.25 | - | 0.50x peer |' in block
    assert {p.name for p in tmp_path.iterdir()} == {'README.md', 'cpu.json'}  # no temporary left
    again = bench.replace_block(text, block)
    assert again == text  # idempotent


@pytest.mark.parametrize('content', ['# no markers\n', f'{bench.END}\n{bench.BEGIN}\n',
                                     f'{bench.BEGIN}\n{bench.BEGIN}\n{bench.END}\n'])
def test_readme_without_proper_markers_refused_and_untouched(tmp_path, monkeypatch, capsys, content):
    readme = tmp_path / 'README.md'
    readme.write_text(content)
    stat = readme.stat()
    monkeypatch.setattr(sys, 'argv', ['benchmark.py', '--readme', str(readme), '--from-json',
                                      str(_result_file(tmp_path))])
    with pytest.raises(SystemExit) as exc:
        tool.main()
    assert exc.value.code == 2 and 'expected exactly one' in capsys.readouterr().err
    assert readme.read_text() == content and readme.stat().st_mtime_ns == stat.st_mtime_ns
    assert {p.name for p in tmp_path.iterdir()} == {'README.md', 'cpu.json'}


def test_readme_block_refuses_other_json():
    with pytest.raises(ValueError, match='schema'):
        bench.readme_block([dict(schema='something else', rows=[])])
    with pytest.raises(ValueError, match='at least one'):
        bench.readme_block([])


def test_cli_end_to_end_with_memory_subprocess_and_json(tmp_path):
    """The tool as users run it: a tiny row in train mode with ``--memory`` (a fresh subprocess per implementation),
    ``--with-cp`` and ``--json``; big enough an input that the step's activations and gradients show in the resident
    set, and that checkpointing them shows as less memory."""
    out = tmp_path / 'res.json'
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable, str(BENCHMARK), '--model', 'tiny', '--impl', 'ours', 'ours_cp', '--size',
                           '192', '--batch', '4', '--mode', 'train', '--warmup', '1', '--repeat', '1', '--memory',
                           '--with-cp', '--json', str(out)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert 'Measured on' in proc.stdout and '| tiny | ours | 192x192 | 4 | train |' in proc.stdout
    result = json.loads(out.read_text())
    assert result['settings']['with_cp'] is True
    rows = {row['impl']: row for row in result['rows']}
    assert set(rows) == {'ours', 'ours_cp'}
    for row in rows.values():
        assert row['memory_method'] == 'cpu_rss_growth_fresh_subprocess'
    # 4 x 16 x 48 x 48 fp32 maps are 0.56 MiB each; a forward + backward keeps many of them
    assert rows['ours']['peak_mib'] is not None and rows['ours']['peak_mib'] > 1.0, rows
    assert rows['ours_cp']['peak_mib'] is not None and rows['ours_cp']['peak_mib'] < 0.8 * rows['ours']['peak_mib']


def test_with_cp_adds_a_checkpointing_copy_of_ours_only_when_asked():
    assert 'ours_cp' not in tool.row_candidates('swin_t')
    candidates = tool.row_candidates('tiny', with_cp=True)
    assert set(candidates) == set(tool.tiny_candidates()) | {'ours_cp'}
    plain, checkpointed = candidates['ours'](), candidates['ours_cp']()
    assert not plain.with_cp and checkpointed.with_cp
    assert all(stage.with_cp for stage in checkpointed.stage_list())


@pytest.mark.sweep
@pytest.mark.parametrize('name', ['tiny'])  # the sweep selector (tests/conftest.py): runs with --full only
def test_compile_reports_compile_time_and_graph_breaks(name):
    result = tool.run(parse('--model', name, '--impl', 'vit', '--sizes', '32', '--mode', 'infer', '--warmup', '1',
                            '--repeat', '2', '--compile'))
    (row,) = result['rows']
    assert row['status'] == 'ok' and row['compile'] and result['settings']['compile']
    assert row['compile_s'] > 0 and row['graph_breaks'] >= 0
    assert row['first_call_ms'] > 1000 * row['compile_s'] - 1e-6
    assert 'Compile s' in bench.render_table(result['rows'])
