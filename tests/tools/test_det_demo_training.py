"""The detection demo config trained for real through tools/train.py, then evaluated by tools/test.py."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vit_backbones.datasets.demo_coco import generate_demo_coco

ROOT = Path(__file__).resolve().parents[2]
CONFIG = 'configs/demo/mask-rcnn_pvtv2-b0_demo.py'
pytestmark = pytest.mark.slow


def options(data_root: Path) -> list[str]:
    root = f'{data_root}/'
    opts = {
        'train_dataloader.dataset.data_root': root,
        'val_dataloader.dataset.data_root': root,
        'test_dataloader.dataset.data_root': root,
        'val_evaluator.ann_file': f'{root}annotations/instances_val.json',
        'test_evaluator.ann_file': f'{root}annotations/instances_val.json',
        'train_dataloader.batch_size': 2, 'train_dataloader.num_workers': 0,
        'train_dataloader.persistent_workers': False,
        'val_dataloader.num_workers': 0, 'val_dataloader.persistent_workers': False,
        'test_dataloader.num_workers': 0, 'test_dataloader.persistent_workers': False,
        'train_cfg.max_epochs': 1, 'train_cfg.val_interval': 1000,
        'default_hooks.checkpoint.interval': 1, 'default_hooks.logger.interval': 1,
        'model.test_cfg.rcnn.score_thr': 0.0,  # an almost untrained model still predicts boxes and masks
    }
    return ['--cfg-options'] + [f'{k}={v}' for k, v in opts.items()]


def run(args: list[str]) -> str:
    out = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600,
                         env={**os.environ, 'OMP_NUM_THREADS': '1'})
    assert out.returncode == 0, f'{args}\nstdout:\n{out.stdout[-3000:]}\nstderr:\n{out.stderr[-5000:]}'
    return out.stdout + out.stderr


def test_train_then_test_prints_box_and_mask_map(tmp_path: Path) -> None:
    data = tmp_path / 'demo_coco'
    generate_demo_coco(data, num_train=4, num_val=2, size=96, seed=0)
    work = tmp_path / 'work'
    logs = run([sys.executable, 'tools/train.py', CONFIG, '--work-dir', str(work)] + options(data))
    assert 'Epoch(train) [1][2/2]' in logs and 'loss_mask' in logs
    checkpoint = work / 'epoch_1.pth'
    state = torch.load(checkpoint, weights_only=False)['state_dict']
    assert any(k.startswith('backbone.stages.') for k in state) and 'roi_head.mask_head.conv_logits.weight' in state
    logs = run([sys.executable, 'tools/test.py', CONFIG, str(checkpoint), '--work-dir', str(work)] + options(data))
    for metric in ('bbox', 'segm'):
        assert re.search(rf'coco/{metric}_mAP: [0-9.]+', logs), logs[-3000:]


def test_demo_without_data_stops_with_a_hint(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, 'tools/train.py', CONFIG, '--work-dir', str(tmp_path)]
                         + options(tmp_path / 'missing'), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    assert f'make_demo_data.py {tmp_path}/missing/ --kind det' in out.stderr
    assert 'Traceback' not in out.stderr
