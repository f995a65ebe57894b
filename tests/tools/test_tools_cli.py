"""Command-line tests for tools/train.py, tools/test.py and the dist scripts.

They run the tools as subprocesses on a tiny mmengine-only model
(``tests/helpers/tiny_mmengine_modules.py``), so no backbone is built.
"""
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / 'tools'
HELPERS = REPO / 'tests' / 'helpers'
sys.path.insert(0, str(HELPERS))
from tiny_mmengine_modules import tiny_config  # noqa: E402


def run_tool(*args: str, cwd: Path, script: str = 'train.py',
             timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``tools/<script>`` with this interpreter; output is captured."""
    # Only the helpers go on PYTHONPATH: the tools must find the package
    # from the checkout themselves, installed or not.
    env = dict(os.environ, PYTHON=sys.executable, PYTHONPATH=os.pathsep.join(
        [str(HELPERS), os.environ.get('PYTHONPATH', '')]))
    cmd = ([sys.executable, str(TOOLS / script)] if script.endswith('.py')
           else ['bash', str(TOOLS / script)])
    return subprocess.run(
        cmd + list(args), cwd=cwd, env=env, capture_output=True, text=True,
        stdin=subprocess.DEVNULL, timeout=timeout)


def assert_ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def assert_user_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    """Exit code 2, a message naming ``needles``, and no traceback."""
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert 'Traceback' not in proc.stderr, proc.stderr
    for needle in needles:
        assert needle in proc.stderr


@pytest.fixture
def tiny_cfg(tmp_path: Path) -> Path:
    path = tmp_path / 'tiny.py'
    Config(tiny_config(max_iters=4, interval=2)).dump(str(path))
    return path


def ckpt_iter(path: Path) -> int:
    return torch.load(path, weights_only=False)['meta']['iter']


@pytest.mark.parametrize('script', ['train.py', 'test.py'])
def test_help(tmp_path, script):
    proc = run_tool('--help', cwd=tmp_path, script=script)
    assert_ok(proc)
    assert '--cfg-options' in proc.stdout and '--launcher' in proc.stdout
    if script == 'train.py':
        assert '--resume [CKPT]' in proc.stdout and '--amp' in proc.stdout


def test_train_resume_then_test(tmp_path, tiny_cfg):
    work = tmp_path / 'work'
    assert_ok(run_tool(str(tiny_cfg), '--work-dir', str(work), cwd=tmp_path))
    assert (work / 'last_checkpoint').read_text().endswith('iter_4.pth')

    proc = run_tool(str(tiny_cfg), '--work-dir', str(work), '--resume',
                    '--cfg-options', 'train_cfg.max_iters=8', cwd=tmp_path)
    assert_ok(proc)
    log = proc.stdout + proc.stderr
    assert 'safe_local backend' in log  # weights-only loader, not torch's
    assert 'resumed epoch: 0, iter: 4' in log
    assert 'Iter(train) [5/8]' in log and 'Iter(train) [1/8]' not in log
    assert (work / 'last_checkpoint').read_text().endswith('iter_8.pth')
    assert ckpt_iter(work / 'iter_8.pth') == 8
    assert not list(work.glob('.*.tmp'))

    proc = run_tool(str(tiny_cfg), str(work / 'iter_8.pth'), '--work-dir',
                    str(tmp_path / 'test'), '--out', str(tmp_path / 'p.pkl'),
                    cwd=tmp_path, script='test.py')
    assert_ok(proc)
    assert 'mse:' in proc.stdout + proc.stderr
    assert (tmp_path / 'p.pkl').stat().st_size > 0


def test_resume_from_explicit_checkpoint(tmp_path, tiny_cfg):
    work = tmp_path / 'work'
    cfg = tmp_path / 'short.py'
    Config(tiny_config(max_iters=3, interval=2)).dump(str(cfg))
    assert_ok(run_tool(str(cfg), '--work-dir', str(work), cwd=tmp_path))
    proc = run_tool(str(tiny_cfg), '--work-dir', str(tmp_path / 'second'),
                    '--resume', str(work / 'iter_2.pth'), cwd=tmp_path)
    assert_ok(proc)
    assert 'Iter(train) [3/4]' in proc.stdout + proc.stderr
    assert ckpt_iter(tmp_path / 'second' / 'iter_4.pth') == 4


def test_bad_checkpoints_are_user_errors(tmp_path, tiny_cfg):
    missing = tmp_path / 'missing.pth'
    assert_user_error(
        run_tool(str(tiny_cfg), '--resume', str(missing), cwd=tmp_path),
        'missing.pth')
    assert_user_error(
        run_tool(str(tiny_cfg), str(missing), cwd=tmp_path, script='test.py'),
        'missing.pth')

    corrupt = tmp_path / 'corrupt.pth'
    corrupt.write_text('not a checkpoint\n')
    assert_user_error(
        run_tool(str(tiny_cfg), '--work-dir', str(tmp_path / 'w'),
                 '--resume', str(corrupt), cwd=tmp_path),
        'corrupt.pth', 'PyTorch checkpoint (.pth)')


def test_missing_dataset_is_user_error(tmp_path, tiny_cfg):
    root = tmp_path / 'no_such_data'
    proc = run_tool(
        str(tiny_cfg), '--cfg-options',
        f'train_dataloader.dataset.data_root={root}',
        'train_dataloader.dataset.ann_file=train.json', cwd=tmp_path)
    assert_user_error(proc, str(root))


def test_test_tool_needs_only_test_data_and_shows_data_hint(tmp_path):
    cfg = Config(dict(tiny_config(max_iters=4, interval=2),
                      data_hint='generate it with: make-data {root}'))
    path = tmp_path / 'hinted.py'
    cfg.dump(str(path))
    ckpt = tmp_path / 'model.pth'
    torch.save({'state_dict': {}}, ckpt)
    root = tmp_path / 'no_test_data'
    proc = run_tool(
        str(path), str(ckpt), '--cfg-options',
        f'test_dataloader.dataset.data_root={root}',
        'test_dataloader.dataset.ann_file=test.json',
        f'train_dataloader.dataset.data_root={tmp_path / "no_train_data"}',
        'train_dataloader.dataset.ann_file=train.json',
        cwd=tmp_path, script='test.py')
    assert_user_error(proc, f'generate it with: make-data {root}',
                      'used by test_dataloader')
    assert 'no_train_data' not in proc.stderr


def test_no_tool_imports_another_tool():
    """What tools share lives in the package (vit_backbones.engine.runner_utils)."""
    for tool in TOOLS.glob('*.py'):
        source = tool.read_text()
        assert 'sys.path.insert(0, osp.dirname(osp.abspath(__file__)))' not in source, tool
        for other in TOOLS.glob('*.py'):
            assert f'from {other.stem} import' not in source, tool
            assert f'import {other.stem}\n' not in source, tool


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.mark.dist
def test_dist_train_two_processes(tmp_path, tiny_cfg, monkeypatch):
    monkeypatch.setenv('PORT', str(_free_port()))
    work = tmp_path / 'work'
    proc = run_tool(str(tiny_cfg), '2', '--work-dir', str(work),
                    cwd=tmp_path, script='dist_train.sh')
    assert_ok(proc)
    log = proc.stdout + proc.stderr
    if not torch.cuda.is_available():
        assert "switched from 'nccl' to 'gloo'" in log
    assert 'Distributed training: True' in log
    assert ckpt_iter(work / 'iter_4.pth') == 4


# tools/benchmark.py is tested end to end (with --memory and --json) in test_benchmark.py.
