"""The classification demo (an mmpretrain config) through our tools/train.py and tools/test.py, with a tiny Swin."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vit_backbones.datasets.demo_cls import generate_demo_cls

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / 'configs' / 'demo' / 'swin_t_cls_demo.py'
pytestmark = pytest.mark.slow


def run(args: list[str], check: bool = True) -> subprocess.CompletedProcess:
    out = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600,
                         env={**os.environ, 'OMP_NUM_THREADS': '1'})
    if check:
        assert out.returncode == 0, f'{args}\nstdout:\n{out.stdout[-3000:]}\nstderr:\n{out.stderr[-5000:]}'
    return out


def options(data_root: Path, iters: int) -> list[str]:
    opts = {
        'train_dataloader.dataset.data_root': data_root,
        'val_dataloader.dataset.data_root': data_root,
        'test_dataloader.dataset.data_root': data_root,
        'train_dataloader.batch_size': 4, 'train_dataloader.num_workers': 0,
        'train_dataloader.persistent_workers': False,
        'val_dataloader.num_workers': 0, 'val_dataloader.persistent_workers': False,
        'test_dataloader.num_workers': 0, 'test_dataloader.persistent_workers': False,
        'train_cfg.max_iters': iters, 'train_cfg.val_interval': iters,
        'default_hooks.checkpoint.interval': iters, 'default_hooks.logger.interval': 1,
    }
    return ['--cfg-options'] + [f'{k}={v}' for k, v in opts.items()]


@pytest.fixture(scope='module')
def tiny_config(tmp_path_factory) -> Path:
    """The demo config with a tiny Swin (the full recipe otherwise)."""
    path = tmp_path_factory.mktemp('cfg') / 'tiny_cls_demo.py'
    path.write_text(f"_base_ = [{str(CONFIG)!r}]\n"
                    "model = dict(backbone=dict(arch=dict(_delete_=True, embed_dim=32, depths=(1, 1, 1, 1), "
                    "num_heads=(1, 2, 4, 8))), head=dict(in_channels=256))\n")
    return path


def test_train_then_test_through_our_tools(tiny_config, tmp_path):
    data = tmp_path / 'demo_cls'
    generate_demo_cls(data, num_train=8, num_val=4, size=48)
    work = tmp_path / 'work'
    out = run([sys.executable, 'tools/train.py', str(tiny_config), '--work-dir', str(work)] + options(data, 3))
    logs = out.stdout + out.stderr
    assert 'Iter(train) [3/3]' in logs and 'accuracy/top1' in logs  # iteration log, validation at the end
    state = torch.load(work / 'iter_3.pth', weights_only=False)['state_dict']
    assert {k.split('.')[0] for k in state} == {'backbone', 'head'}  # what the cls-init seg demo reads
    assert (work / 'last_checkpoint').read_text().strip().endswith('iter_3.pth')
    out = run([sys.executable, 'tools/test.py', str(tiny_config), str(work / 'iter_3.pth'), '--work-dir', str(work)]
              + options(data, 3))
    assert 'accuracy/top1' in out.stdout + out.stderr  # the line tools/demo_cls.sh reads


def test_missing_data_names_the_generator(tmp_path):
    missing = tmp_path / 'nowhere'
    out = run([sys.executable, 'tools/train.py', str(CONFIG), '--work-dir', str(tmp_path / 'work')]
              + options(missing, 1), check=False)
    assert out.returncode == 2
    assert f'generate it with: python tools/make_demo_data.py {missing} --kind cls' in out.stderr
    assert 'Traceback' not in out.stderr


def test_demo_script_rejects_unknown_arguments():
    out = subprocess.run(['bash', 'tools/demo_cls.sh', '--bogus'], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2 and 'usage: bash tools/demo_cls.sh [--seg]' in out.stderr
