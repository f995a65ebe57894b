"""Tests of the Demo Shapes classification generator (one shape per image) and its CLI."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from mmengine.config import Config

from vit_backbones.datasets import CLS_CLASSES, demo_cls, generate_demo_cls

REPO = Path(__file__).resolve().parents[2]
TINY = dict(num_train=8, num_val=4, size=32)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob('*')) if p.is_file()}


def _load_cli():
    spec = importlib.util.spec_from_file_location('make_demo_data', REPO / 'tools' / 'make_demo_data.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _outline_class(mask: np.ndarray) -> str:
    """Names a filled shape from its geometry alone: a star is far from convex; a circle fills its enclosing
    circle; a triangle fills about 0.41 of it and a square about 0.6 (thresholds hold with margin at 64x64)."""
    points = np.argwhere(mask)[:, ::-1].astype(np.float32)  # (N, 2) x, y
    hull = np.zeros(mask.shape, np.uint8)
    cv2.fillPoly(hull, [cv2.convexHull(points.astype(np.int32))], 1)
    solidity = mask.sum() / hull.sum()
    _, radius = cv2.minEnclosingCircle(points)
    fill = mask.sum() / (np.pi * (radius + 0.5) ** 2)
    if solidity < 0.75:
        return 'star'
    if fill > 0.8:
        return 'circle'
    return 'triangle' if fill < 0.52 else 'square'


def test_classes_are_folder_order_and_the_configs() -> None:
    assert CLS_CLASSES == tuple(sorted(CLS_CLASSES)) == ('circle', 'square', 'star', 'triangle')
    cfg = Config.fromfile(str(REPO / 'configs' / 'demo' / 'swin_t_cls_demo.py'))
    assert tuple(cfg.classes) == CLS_CLASSES and cfg.model.head.num_classes == len(CLS_CLASSES)


def test_one_shape_per_image_of_the_labelled_class() -> None:
    """The painted mask is one connected shape, inside the image, whose outline is the label's class."""
    seen = {name: 0 for name in CLS_CLASSES}
    for i in range(80):
        label = i % len(CLS_CLASSES)
        image, mask = demo_cls.render_sample(np.random.default_rng([5, i]), 64, label)
        assert image.shape == (64, 64, 3) and image.dtype == np.uint8
        assert cv2.connectedComponents(mask.astype(np.uint8))[0] == 2  # background + one shape
        assert not (mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())
        radius = np.sqrt(mask.sum() / np.pi)
        assert 0.1 * 64 < radius < 0.4 * 64
        assert _outline_class(mask) == CLS_CLASSES[label], i
        seen[CLS_CLASSES[label]] += 1
        assert image[mask].std(0).max() < 25  # one flat colour (plus noise and shading): painted last, unoccluded
    assert min(seen.values()) == 20
    with pytest.raises(ValueError, match='label'):
        demo_cls.render_sample(np.random.default_rng(0), 64, len(CLS_CLASSES))


def test_layout_labels_and_files_match_the_renderer(tmp_path: Path) -> None:
    root = tmp_path / 'cls'
    info = generate_demo_cls(root, seed=2, **TINY)
    assert demo_cls.is_complete(root)
    assert json.loads((root / demo_cls.MANIFEST).read_text()) == info
    assert info['class_counts'] == {'train': [2, 2, 2, 2], 'val': [1, 1, 1, 1]}  # k % 4: balanced
    for split_id, (split, num) in enumerate((('train', 8), ('val', 4))):
        assert sorted(p.name for p in (root / split).iterdir()) == list(CLS_CLASSES)
        lines = (root / demo_cls.ann_file(split)).read_text().splitlines()
        assert len(lines) == num == sum(1 for _ in (root / split).rglob('*.png'))
        for i, line in enumerate(lines):
            rel, label = line.rsplit(' ', 1)
            assert rel == f'{CLS_CLASSES[int(label)]}/{i:06d}.png' and int(label) == i % len(CLS_CLASSES)
            expected, _ = demo_cls.render_sample(np.random.default_rng([2, split_id, i]), TINY['size'], int(label))
            written = cv2.imread(str(root / split / rel), cv2.IMREAD_UNCHANGED)
            np.testing.assert_array_equal(written, expected)  # lossless, and the label is what was painted


def test_loads_with_mmpretrain_custom_dataset(tmp_path: Path) -> None:
    """Ann files and the class-folder scan give mmpretrain the same samples and labels."""
    from mmpretrain.datasets import CustomDataset

    root = tmp_path / 'cls'
    generate_demo_cls(root, **TINY)
    by_file = CustomDataset(data_root=str(root), data_prefix='val', ann_file='meta/val.txt',
                            metainfo=dict(classes=CLS_CLASSES), pipeline=[])
    by_folder = CustomDataset(data_root=str(root), data_prefix='val', pipeline=[])
    assert by_folder.metainfo['classes'] == CLS_CLASSES
    pairs = sorted((d['img_path'], d['gt_label']) for d in by_file.load_data_list())
    assert pairs == sorted((d['img_path'], d['gt_label']) for d in by_folder.load_data_list())
    assert [label for _, label in pairs] == [0, 1, 2, 3]


def test_deterministic_for_a_seed_and_more_images_keep_the_first(tmp_path: Path) -> None:
    a = generate_demo_cls(tmp_path / 'a', seed=3, **TINY)
    b = generate_demo_cls(tmp_path / 'b', seed=3, **TINY)
    generate_demo_cls(tmp_path / 'c', seed=4, **TINY)
    assert a == b
    assert _files(tmp_path / 'a') == _files(tmp_path / 'b')
    assert _files(tmp_path / 'a') != _files(tmp_path / 'c')
    generate_demo_cls(tmp_path / 'big', seed=3, num_train=12, num_val=5, size=32)
    for rel in ('train/star/000006.png', 'val/square/000001.png'):
        assert (tmp_path / 'a' / rel).read_bytes() == (tmp_path / 'big' / rel).read_bytes()


def test_refuses_to_overwrite_and_exist_ok(tmp_path: Path) -> None:
    root = tmp_path / 'cls'
    info = generate_demo_cls(root, **TINY)
    before = _files(root)
    with pytest.raises(FileExistsError, match='force'):
        generate_demo_cls(root, **TINY)
    assert generate_demo_cls(root, exist_ok=True, num_train=1, num_val=1, size=48) == info
    assert _files(root) == before
    new = generate_demo_cls(root, force=True, num_train=5, num_val=1, size=32)
    assert new['num_train'] == 5 and len(list((root / 'train').rglob('*.png'))) == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ['cls']  # no temporary folders left
    with pytest.raises(ValueError, match='size'):
        generate_demo_cls(tmp_path / 'small', size=16)


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cli = _load_cli()
    defaults = cli.parse_args(['x', '--kind', 'cls'])
    assert (defaults.num_train, defaults.num_val, defaults.size) == (2000, 200, 64)
    seg = cli.parse_args(['x'])  # the other kinds keep their defaults
    assert (seg.kind, seg.num_train, seg.num_val, seg.size) == ('seg', 400, 50, 128)
    root = str(tmp_path / 'cls')
    args = [root, '--kind', 'cls', '--num-train', '4', '--num-val', '2', '--size', '32', '--seed', '1']
    assert cli.main(args) == 0
    assert 'wrote 4 train + 2 val images (32x32, classes: circle, square, star, triangle, 1/1/1/1' \
        in capsys.readouterr().out
    assert cli.main(args) == 1
    assert '--force' in capsys.readouterr().err
    assert cli.main([*args, '--exist-ok']) == 0
    assert 'found 4 train + 2 val' in capsys.readouterr().out
    assert cli.main([*args, '--force']) == 0
    assert json.loads((tmp_path / 'cls' / demo_cls.MANIFEST).read_text())['seed'] == 1
