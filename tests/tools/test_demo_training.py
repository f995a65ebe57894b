"""The demo config trained for real through tools/train.py: single process, resume, 2-process DDP, test.py."""
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vit_backbones.datasets.demo_shapes import generate_demo_shapes

ROOT = Path(__file__).resolve().parents[2]
CONFIG = 'configs/demo/swin_t_upernet_demo.py'
pytestmark = pytest.mark.slow


@pytest.fixture(scope='module')
def demo_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('data') / 'demo_shapes'
    generate_demo_shapes(root, num_train=4, num_val=2, size=64, seed=0)
    return root


def options(data_root: Path, iters: int, **extra) -> list[str]:
    opts = {
        'train_dataloader.dataset.data_root': data_root,
        'val_dataloader.dataset.data_root': data_root,
        'test_dataloader.dataset.data_root': data_root,
        'train_dataloader.batch_size': 2, 'train_dataloader.num_workers': 0,
        'train_dataloader.persistent_workers': False,
        'val_dataloader.num_workers': 0, 'val_dataloader.persistent_workers': False,
        'test_dataloader.num_workers': 0, 'test_dataloader.persistent_workers': False,
        'train_cfg.max_iters': iters, 'train_cfg.val_interval': 1000,
        'default_hooks.checkpoint.interval': 1, 'default_hooks.checkpoint.max_keep_ckpts': -1,
        'default_hooks.logger.interval': 1,
        **extra,
    }
    return ['--cfg-options'] + [f'{k}={v}' for k, v in opts.items()]


def run(args: list[str], **env) -> subprocess.CompletedProcess:
    out = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=900,
                         env={**os.environ, 'OMP_NUM_THREADS': '1', **env})
    assert out.returncode == 0, f'{args}\nstdout:\n{out.stdout[-3000:]}\nstderr:\n{out.stderr[-5000:]}'
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_train_resume_and_test(demo_root, tmp_path):
    work = tmp_path / 'work'
    run([sys.executable, 'tools/train.py', CONFIG, '--work-dir', str(work)] + options(demo_root, 2))
    assert (work / 'iter_2.pth').is_file()
    # resume continues at iteration 3 from the latest checkpoint instead of starting over
    out = run([sys.executable, 'tools/train.py', CONFIG, '--work-dir', str(work), '--resume']
              + options(demo_root, 3))
    logs = out.stdout + out.stderr
    assert re.search(r'resumed epoch: \d+, iter: 2', logs), logs[-3000:]
    assert 'Iter(train) [3/3]' in logs and 'Iter(train) [1/3]' not in logs
    ckpt = torch.load(work / 'iter_3.pth', weights_only=False)
    assert ckpt['meta']['iter'] == 3
    # test.py evaluates the checkpoint and prints the metric table
    out = run([sys.executable, 'tools/test.py', CONFIG, str(work / 'iter_3.pth'), '--work-dir', str(work)]
              + options(demo_root, 3))
    assert re.search(r'mIoU', out.stdout + out.stderr)


def test_two_process_gloo_with_frozen_stages_and_checkpointing(demo_root, tmp_path):
    work = tmp_path / 'ddp'
    run(['bash', 'tools/dist_train.sh', CONFIG, '2', '--work-dir', str(work)]
        + options(demo_root, 2, **{'model.backbone.frozen_stages': 1, 'model.backbone.with_cp': True}),
        PYTHON=sys.executable, PORT=str(free_port()))
    first = torch.load(work / 'iter_1.pth', weights_only=False)['state_dict']
    second = torch.load(work / 'iter_2.pth', weights_only=False)['state_dict']
    frozen = [k for k in first if k.startswith(('backbone.patch_embed.', 'backbone.layers.0.', 'backbone.norms.0.'))]
    trained = [k for k in first if k.startswith('backbone.layers.1.') and first[k].is_floating_point()]
    assert frozen and trained
    assert all(torch.equal(first[k], second[k]) for k in frozen), 'a frozen stage moved under DDP'
    assert any(not torch.equal(first[k], second[k]) for k in trained), 'stage 1 did not train'


def test_full_recipe_without_dataset_stops_with_a_hint(tmp_path):
    out = subprocess.run([sys.executable, 'tools/train.py', 'configs/swin_t_upernet.py', '--work-dir',
                          str(tmp_path), '--cfg-options', f'train_dataloader.dataset.data_root={tmp_path}/ade'],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    assert f'{tmp_path}/ade' in out.stderr and 'ADEChallengeData2016' in out.stderr
    assert 'Traceback' not in out.stderr
