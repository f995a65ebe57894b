"""Tests of the synthetic Demo Shapes generator and its CLI."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from mmengine.registry import init_default_scope
from mmseg.datasets import BaseSegDataset

from vit_backbones.datasets import CLASSES, PALETTE, demo_shapes, generate_demo_shapes, is_complete

REPO = Path(__file__).resolve().parents[2]
TINY = dict(num_train=6, num_val=2, size=48)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob('*')) if p.is_file()}


def _load_cli():
    spec = importlib.util.spec_from_file_location('make_demo_data', REPO / 'tools' / 'make_demo_data.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_constants() -> None:
    assert CLASSES[0] == 'background'
    assert len(PALETTE) == len(CLASSES)
    assert all(len(c) == 3 and all(0 <= v <= 255 for v in c) for c in PALETTE)


def test_deterministic_for_a_seed(tmp_path: Path) -> None:
    a = generate_demo_shapes(tmp_path / 'a', seed=3, **TINY)
    b = generate_demo_shapes(tmp_path / 'b', seed=3, **TINY)
    generate_demo_shapes(tmp_path / 'c', seed=4, **TINY)
    assert a == b
    assert _files(tmp_path / 'a') == _files(tmp_path / 'b')
    assert _files(tmp_path / 'a') != _files(tmp_path / 'c')



def test_output_is_pinned(tmp_path: Path) -> None:
    """Seed 0 keeps drawing the same label maps (guards the draw order of ``datasets/painting.py``).

    Pixel counts come from integer rasterisation only, so they do not depend on OpenCV's float kernels.
    """
    info = generate_demo_shapes(tmp_path / 'shapes', seed=0, **TINY)
    assert info['pixel_counts'] == {'train': [10528, 1023, 852, 548, 873], 'val': [3840, 78, 206, 372, 112]}

def test_more_images_keep_the_first_ones(tmp_path: Path) -> None:
    generate_demo_shapes(tmp_path / 'small', num_train=2, num_val=1, size=48)
    generate_demo_shapes(tmp_path / 'big', num_train=4, num_val=2, size=48)
    for rel in ('img_dir/train/000001.png', 'ann_dir/val/000000.png'):
        assert (tmp_path / 'small' / rel).read_bytes() == (tmp_path / 'big' / rel).read_bytes()


def test_layout_loads_with_mmseg(tmp_path: Path) -> None:
    root = tmp_path / 'shapes'
    info = generate_demo_shapes(root, **TINY)
    assert is_complete(root)
    assert json.loads((root / demo_shapes.MANIFEST).read_text()) == info
    init_default_scope('mmseg')
    for split, num in (('train', TINY['num_train']), ('val', TINY['num_val'])):
        dataset = BaseSegDataset(
            data_root=str(root),
            data_prefix=dict(img_path=f'img_dir/{split}', seg_map_path=f'ann_dir/{split}'),
            img_suffix='.png', seg_map_suffix='.png', reduce_zero_label=False,
            metainfo=dict(classes=CLASSES, palette=PALETTE),
            pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadAnnotations')])
        assert len(dataset) == num
        sample = dataset[0]
        assert sample['img'].shape == (TINY['size'], TINY['size'], 3)
        assert sample['gt_seg_map'].shape == (TINY['size'], TINY['size'])
        assert dataset.metainfo['classes'] == CLASSES


def test_labels_in_range_and_every_class_present(tmp_path: Path) -> None:
    root = tmp_path / 'shapes'
    info = generate_demo_shapes(root, num_train=8, num_val=2, size=64)
    seen = np.zeros(len(CLASSES), np.int64)
    for path in sorted((root / 'ann_dir' / 'train').glob('*.png')):
        label = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        assert label.dtype == np.uint8 and label.ndim == 2
        assert label.max() < len(CLASSES)
        seen += np.bincount(label.ravel(), minlength=len(CLASSES))
    assert (seen > 0).all(), seen
    assert seen.tolist() == info['pixel_counts']['train']
    image = cv2.imread(str(root / 'img_dir' / 'train' / '000000.png'), cv2.IMREAD_UNCHANGED)
    assert image.shape == (64, 64, 3) and image.std() > 5  # textured, not flat


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    root = tmp_path / 'shapes'
    info = generate_demo_shapes(root, **TINY)
    before = _files(root)
    with pytest.raises(FileExistsError, match='force'):
        generate_demo_shapes(root, **TINY)
    assert generate_demo_shapes(root, exist_ok=True, num_train=1, num_val=1, size=16) == info
    assert _files(root) == before
    new = generate_demo_shapes(root, force=True, num_train=3, num_val=1, size=32)
    assert new['num_train'] == 3 and len(list((root / 'img_dir' / 'train').iterdir())) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ['shapes']  # no temporary folders left


def test_refuses_a_foreign_folder_but_fills_an_empty_one(tmp_path: Path) -> None:
    foreign = tmp_path / 'foreign'
    foreign.mkdir()
    (foreign / 'keep.txt').write_text('user data')
    with pytest.raises(FileExistsError):
        generate_demo_shapes(foreign, exist_ok=True, **TINY)
    assert (foreign / 'keep.txt').read_text() == 'user data'
    empty = tmp_path / 'empty'
    empty.mkdir()
    generate_demo_shapes(empty, **TINY)
    assert is_complete(empty)


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cli = _load_cli()
    root = str(tmp_path / 'shapes')
    args = [root, '--num-train', '2', '--num-val', '1', '--size', '32', '--seed', '1']
    assert cli.main(args) == 0
    assert 'wrote 2 train + 1 val' in capsys.readouterr().out
    assert cli.main(args) == 1
    assert '--force' in capsys.readouterr().err
    assert cli.main([*args, '--exist-ok']) == 0
    assert 'found 2 train + 1 val' in capsys.readouterr().out
    assert cli.main([*args, '--force']) == 0
    assert json.loads((tmp_path / 'shapes' / demo_shapes.MANIFEST).read_text())['seed'] == 1
