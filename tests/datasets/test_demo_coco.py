"""Tests of the synthetic Demo Shapes COCO generator, its CLI and the dataset check for detection configs."""
from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from mmengine import Config
from mmengine.registry import init_default_scope
from pycocotools.coco import COCO

from vit_backbones.datasets import DET_CLASSES, DET_PALETTE, demo_coco, generate_demo_coco
from vit_backbones.engine.data_check import check_datasets

REPO = Path(__file__).resolve().parents[2]
TINY = dict(num_train=6, num_val=3, size=64)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob('*')) if p.is_file()}


def _load_cli():
    spec = importlib.util.spec_from_file_location('make_demo_data', REPO / 'tools' / 'make_demo_data.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp('data') / 'demo_coco'
    return root, generate_demo_coco(root, num_train=12, num_val=4, size=96)


def test_constants() -> None:
    assert DET_CLASSES == ('circle', 'square', 'triangle', 'star')
    assert len(DET_PALETTE) == len(DET_CLASSES)


def test_deterministic_for_a_seed(tmp_path: Path) -> None:
    a = generate_demo_coco(tmp_path / 'a', seed=3, **TINY)
    b = generate_demo_coco(tmp_path / 'b', seed=3, **TINY)
    generate_demo_coco(tmp_path / 'c', seed=4, **TINY)
    assert a == b
    assert _files(tmp_path / 'a') == _files(tmp_path / 'b')
    assert _files(tmp_path / 'a') != _files(tmp_path / 'c')



def test_annotations_are_pinned(tmp_path: Path) -> None:
    """Seed 0 keeps placing the same instances (guards the draw order of ``datasets/painting.py``)."""
    generate_demo_coco(tmp_path / 'coco', seed=0, **TINY)
    digests = {split: hashlib.sha256((tmp_path / 'coco' / demo_coco.ann_file(split)).read_bytes()).hexdigest()
               for split in ('train', 'val')}
    assert digests == {'train': '8c7278a1c2e6955367a6c251574c6c9b928f1a1d07865676511cbbe123622439',
                       'val': 'e5d8fe0c81e463030cb9faad68a207b468e247231a4b13b9293c3a70b63cbe51'}


def test_generators_share_the_painting_module() -> None:
    """demo_coco paints with the public helpers of ``painting``, not with demo_shapes' internals."""
    from vit_backbones.datasets import demo_cls, demo_shapes, painting
    for module in (demo_coco, demo_shapes, demo_cls):
        assert module.background is painting.background
    assert demo_coco.polygon is painting.polygon
    assert demo_shapes.paint_shape is demo_cls.paint_shape is painting.paint_shape
    source = Path(demo_coco.__file__).read_text()
    assert 'from .demo_shapes import _' not in source and 'demo_shapes._' not in source

def test_more_images_keep_the_first_ones(tmp_path: Path) -> None:
    generate_demo_coco(tmp_path / 'small', num_train=2, num_val=1, size=64)
    generate_demo_coco(tmp_path / 'big', num_train=4, num_val=2, size=64)
    assert (tmp_path / 'small/train/000001.png').read_bytes() == (tmp_path / 'big/train/000001.png').read_bytes()
    small = json.loads((tmp_path / 'small' / demo_coco.ann_file('val')).read_text())
    big = json.loads((tmp_path / 'big' / demo_coco.ann_file('val')).read_text())
    assert small['annotations'] == [a for a in big['annotations'] if a['image_id'] == 1]


def test_pycocotools_loads_it(dataset: tuple[Path, dict]) -> None:
    root, info = dataset
    assert demo_coco.is_complete(root)
    assert json.loads((root / demo_coco.MANIFEST).read_text()) == info
    for split in ('train', 'val'):
        coco = COCO(str(root / demo_coco.ann_file(split)))
        assert [c['name'] for c in coco.loadCats(coco.getCatIds())] == list(DET_CLASSES)
        assert len(coco.getImgIds()) == info[f'num_{split}']
        counts = [len(coco.getAnnIds(catIds=[k + 1])) for k in range(len(DET_CLASSES))]
        assert counts == info['instance_counts'][split] and all(counts[:2]) and sum(counts) >= 2 * len(coco.imgs)
        for image in coco.loadImgs(coco.getImgIds()):
            assert (root / split / image['file_name']).is_file()
            assert cv2.imread(str(root / split / image['file_name'])).shape == (image['height'], image['width'], 3)


def test_boxes_inside_images_and_masks_match_boxes(dataset: tuple[Path, dict]) -> None:
    root, info = dataset
    coco = COCO(str(root / demo_coco.ann_file('train')))
    for image_id, image in coco.imgs.items():
        pixels = cv2.imread(str(root / 'train' / image['file_name']))
        union = np.zeros((image['height'], image['width']), np.int32)
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=[image_id])):
            x, y, w, h = ann['bbox']
            assert ann['iscrowd'] == 0 and ann['category_id'] in coco.cats
            assert 0 <= x and 0 <= y and x + w <= image['width'] and y + h <= image['height']
            assert w >= 4 and h >= 4
            mask = coco.annToMask(ann)
            ys, xs = np.nonzero(mask)
            # the rasterized polygon reaches its box, give or take the thin tips of stars and triangles
            assert abs(xs.min() - x) <= 2 and abs(xs.max() + 1 - (x + w)) <= 2
            assert abs(ys.min() - y) <= 2 and abs(ys.max() + 1 - (y + h)) <= 2
            assert abs(mask.sum() - ann['area']) <= 0.1 * ann['area'] + 4
            union += mask
            # a shape is one flat colour (plus noise and a slight shade): far less spread than its surroundings
            inner = cv2.erode(mask, np.ones((3, 3), np.uint8)).astype(bool)
            assert pixels[inner].std(axis=0).max() < 25
        assert union.max() <= 1  # instances never overlap


def test_mmdet_coco_dataset_reads_it(dataset: tuple[Path, dict]) -> None:
    from mmdet.datasets import CocoDataset
    root, info = dataset
    init_default_scope('mmdet')
    data = CocoDataset(data_root=str(root), ann_file=demo_coco.ann_file('val'), data_prefix=dict(img='val/'),
                       metainfo=dict(classes=DET_CLASSES, palette=DET_PALETTE), test_mode=True,
                       pipeline=[dict(type='LoadImageFromFile'),
                                 dict(type='LoadAnnotations', with_bbox=True, with_mask=True)])
    assert len(data) == info['num_val']
    sample = data[0]
    assert sample['img'].shape == (96, 96, 3)
    assert len(sample['gt_bboxes']) == len(sample['gt_masks']) == len(sample['gt_bboxes_labels']) > 0
    assert sample['gt_masks'].to_ndarray().any(axis=(1, 2)).all()
    assert set(sample['gt_bboxes_labels'].tolist()) <= set(range(len(DET_CLASSES)))


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    root = tmp_path / 'coco'
    info = generate_demo_coco(root, **TINY)
    before = _files(root)
    with pytest.raises(FileExistsError, match='force'):
        generate_demo_coco(root, **TINY)
    assert generate_demo_coco(root, exist_ok=True, num_train=1, num_val=1, size=32) == info
    assert _files(root) == before
    new = generate_demo_coco(root, force=True, num_train=3, num_val=1, size=48)
    assert new['num_train'] == 3 and len(list((root / 'train').iterdir())) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ['coco']  # no temporary folders left
    foreign = tmp_path / 'foreign'
    foreign.mkdir()
    (foreign / 'keep.txt').write_text('user data')
    with pytest.raises(FileExistsError):
        generate_demo_coco(foreign, exist_ok=True, **TINY)
    assert (foreign / 'keep.txt').read_text() == 'user data'


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cli = _load_cli()
    root = str(tmp_path / 'coco')
    args = [root, '--kind', 'det', '--num-train', '2', '--num-val', '1', '--size', '48', '--seed', '1']
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert 'wrote 2 train + 1 val' in out and 'instances' in out
    assert (tmp_path / 'coco' / demo_coco.ann_file('train')).is_file()
    assert cli.main(args) == 1
    assert '--force' in capsys.readouterr().err
    assert cli.main([*args, '--exist-ok']) == 0
    assert 'found 2 train + 1 val' in capsys.readouterr().out


def test_missing_demo_coco_suggests_the_generator(tmp_path: Path) -> None:
    cfg = Config.fromfile(str(REPO / 'configs' / 'demo' / 'mask-rcnn_pvtv2-b0_demo.py'))
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = str(tmp_path / 'demo_coco')
    with pytest.raises(FileNotFoundError) as info:
        check_datasets(cfg)
    message = str(info.value)
    assert f'python tools/make_demo_data.py {tmp_path / "demo_coco"} --kind det' in message
    for rel in ('train', 'val', 'annotations/instances_train.json', 'annotations/instances_val.json'):
        assert str(tmp_path / 'demo_coco' / rel) in message


def test_demo_config_with_generated_data(dataset: tuple[Path, dict]) -> None:
    cfg = Config.fromfile(str(REPO / 'configs' / 'demo' / 'mask-rcnn_pvtv2-b0_demo.py'))
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = str(dataset[0])
    check_datasets(cfg)


def test_missing_coco_names_paths_and_hint(tmp_path: Path) -> None:
    cfg = Config.fromfile(str(REPO / 'configs' / 'pvtv2_b2_mask_rcnn.py'))
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = str(tmp_path / 'coco')
    with pytest.raises(FileNotFoundError) as info:
        check_datasets(cfg)
    message = str(info.value)
    assert 'CocoDataset' in message and 'cocodataset.org' in message
    for rel in ('train2017', 'val2017', 'annotations/instances_train2017.json', 'annotations/instances_val2017.json'):
        assert str(tmp_path / 'coco' / rel) in message
