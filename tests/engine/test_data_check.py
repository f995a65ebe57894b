"""Tests of the up-front dataset check used by tools/train.py and tools/test.py."""
from __future__ import annotations

from pathlib import Path

import pytest
from mmengine import Config
from mmengine.runner import Runner

from vit_backbones.datasets import CLASSES, PALETTE, generate_demo_shapes
from vit_backbones.engine import data_check
from vit_backbones.engine.data_check import check_datasets

REPO = Path(__file__).resolve().parents[2]
HELPERS = REPO / 'tests' / 'helpers'


def _ade(root: Path, split: str = 'training') -> dict:
    return dict(type='ADE20KDataset', data_root=str(root),
                data_prefix=dict(img_path=f'images/{split}', seg_map_path=f'annotations/{split}'))


def _demo(root: Path, split: str = 'train') -> dict:
    return dict(type='BaseSegDataset', data_root=str(root), img_suffix='.png', seg_map_suffix='.png',
                metainfo=dict(classes=CLASSES, palette=PALETTE),
                data_prefix=dict(img_path=f'img_dir/{split}', seg_map_path=f'ann_dir/{split}'))


def _loaders(train: dict, val: dict | None = None) -> Config:
    val_loader = dict(batch_size=1, dataset=val) if val is not None else None
    return Config(dict(train_dataloader=dict(batch_size=2, dataset=train), val_dataloader=val_loader,
                       test_dataloader=val_loader))


@pytest.fixture(scope='module')
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp('data') / 'demo_shapes'
    generate_demo_shapes(root, num_train=2, num_val=1, size=32)
    return root


def test_missing_ade20k_names_paths_and_hint(tmp_path: Path) -> None:
    root = tmp_path / 'ade' / 'ADEChallengeData2016'
    with pytest.raises(FileNotFoundError) as info:
        check_datasets(_loaders(_ade(root), _ade(root, 'validation')))
    message = str(info.value)
    assert 'ADE20KDataset' in message
    for rel in ('images/training', 'annotations/training', 'images/validation', 'annotations/validation'):
        assert str(root / rel) in message
    assert 'ADEChallengeData2016' in message and 'sceneparsing.csail.mit.edu' in message
    assert '--cfg-options train_dataloader.dataset.data_root=' in message
    assert 'test_dataloader.dataset.data_root=' in message
    assert 'Traceback' not in message and len(message.splitlines()) < 12


def test_partly_present_ade20k_reports_only_what_is_missing(tmp_path: Path) -> None:
    root = tmp_path / 'ADEChallengeData2016'
    (root / 'images' / 'training').mkdir(parents=True)
    with pytest.raises(FileNotFoundError) as info:
        check_datasets(_loaders(_ade(root)))
    assert str(root / 'annotations' / 'training') in str(info.value)
    assert str(root / 'images' / 'training') not in str(info.value)


def test_present_demo_data_passes(demo_root: Path) -> None:
    check_datasets(_loaders(_demo(demo_root), _demo(demo_root, 'val')))


def test_data_check_knows_nothing_of_the_demo_datasets(tmp_path: Path) -> None:
    """Without the config's ``data_hint``, a demo-like dataset gets the generic hint."""
    assert 'vit_backbones.datasets' not in Path(data_check.__file__).read_text()
    with pytest.raises(FileNotFoundError) as info:
        check_datasets(_loaders(_demo(tmp_path / 'demo_shapes')))
    assert 'make_demo_data' not in str(info.value)
    assert 'dataset preparation docs describe for BaseSegDataset' in str(info.value)


def test_config_data_hint_is_shown_for_every_missing_dataset(tmp_path: Path) -> None:
    ade_root = tmp_path / 'ADEChallengeData2016'
    cfg = _loaders(_demo(tmp_path / 'shapes'), _ade(ade_root, 'validation'))
    cfg.data_hint = 'run: make-data {root} --into {root}/x {a,b}'
    with pytest.raises(FileNotFoundError) as info:
        check_datasets(cfg)
    message = str(info.value)
    assert f"To get it, run: make-data {tmp_path / 'shapes'} --into {tmp_path / 'shapes'}/x {{a,b}}" in message
    assert f'To get it, run: make-data {ade_root} --into {ade_root}/x {{a,b}}' in message
    assert 'sceneparsing' not in message  # the config's hint replaces the built-in one


def test_data_hint_must_be_a_string(tmp_path: Path) -> None:
    cfg = _loaders(_demo(tmp_path / 'shapes'))
    cfg.data_hint = ['not', 'a', 'string']
    with pytest.raises(TypeError, match='data_hint'):
        check_datasets(cfg)


def test_only_the_given_loaders_are_checked(tmp_path: Path, demo_root: Path) -> None:
    cfg = _loaders(_demo(tmp_path / 'missing'), _demo(demo_root, 'val'))
    cfg.data_hint = 'generate it'
    check_datasets(cfg, loaders=('test_dataloader', ))
    with pytest.raises(FileNotFoundError, match='generate it'):
        check_datasets(cfg, loaders=('train_dataloader', ))


@pytest.mark.parametrize('config, command', [
    ('swin_t_upernet_demo.py', 'python tools/make_demo_data.py {root}\n'),
    ('mask-rcnn_pvtv2-b0_demo.py', 'python tools/make_demo_data.py {root} --kind det'),
    ('swin_t_cls_demo.py', 'python tools/make_demo_data.py {root} --kind cls'),  # mmpretrain: data_prefix='train'
])
def test_demo_configs_suggest_the_generator(tmp_path: Path, config: str, command: str) -> None:
    cfg = Config.fromfile(str(REPO / 'configs' / 'demo' / config))
    root = str(tmp_path / 'demo_data')
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = root
    with pytest.raises(FileNotFoundError) as info:
        check_datasets(cfg)
    assert f'To get it, generate it with: {command.format(root=root)}' in str(info.value) + '\n'


def test_runner_ignores_data_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """mmengine's Runner (as mmseg's/mmdet's own tools/train.py build it) accepts a config with ``data_hint``."""
    monkeypatch.syspath_prepend(str(HELPERS))
    from tiny_mmengine_modules import tiny_config
    work = tmp_path / 'work'
    cfg = Config(dict(tiny_config(str(work), max_iters=3, interval=2), data_hint='generate it with: make {root}'))
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert (work / 'iter_3.pth').is_file()
    dumped = [p.read_text() for p in work.rglob('*.py')]  # the config the runner saved beside its logs
    assert any("data_hint = 'generate it with: make {root}'" in text for text in dumped)


def test_demo_config_with_generated_data(demo_root: Path) -> None:
    cfg = Config.fromfile(str(REPO / 'configs' / 'demo' / 'swin_t_upernet_demo.py'))
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = str(demo_root)
    check_datasets(cfg)
    cfg.val_dataloader.dataset.data_root = str(demo_root.parent / 'elsewhere')
    with pytest.raises(FileNotFoundError, match='val_dataloader.dataset.data_root'):
        check_datasets(cfg)


def test_recipe_config_without_ade20k(tmp_path: Path) -> None:
    cfg = Config.fromfile(str(REPO / 'configs' / 'swin_t_upernet.py'))
    cfg.merge_from_dict({f'{k}.dataset.data_root': str(tmp_path / 'ade')
                         for k in ('train_dataloader', 'val_dataloader', 'test_dataloader')})
    with pytest.raises(FileNotFoundError, match='ADEChallengeData2016') as info:
        check_datasets(cfg)
    assert str(tmp_path / 'ade' / 'images' / 'training') in str(info.value)


def test_nested_wrappers(tmp_path: Path, demo_root: Path) -> None:
    ade_root = tmp_path / 'ADEChallengeData2016'
    concat = dict(type='ConcatDataset', datasets=[_demo(demo_root), _ade(ade_root)])
    cfg = _loaders(dict(type='RepeatDataset', times=2, dataset=concat), _demo(demo_root, 'val'))
    with pytest.raises(FileNotFoundError) as info:
        check_datasets(cfg)
    message = str(info.value)
    assert str(ade_root / 'images' / 'training') in message
    assert 'train_dataloader.dataset.dataset.datasets.1.data_root=' in message
    assert str(demo_root) not in message
    cfg.train_dataloader.dataset.dataset.datasets.pop(1)
    check_datasets(cfg)


def test_coco_style_ann_file_and_image_prefix(tmp_path: Path) -> None:
    root = tmp_path / 'coco'
    (root / 'train2017').mkdir(parents=True)
    coco = dict(type='mmdet.CocoDataset', data_root=str(root), ann_file='annotations/instances_train2017.json',
                data_prefix=dict(img='train2017/'))
    with pytest.raises(FileNotFoundError) as info:
        check_datasets(_loaders(coco))
    message = str(info.value)
    assert 'CocoDataset' in message and 'COCO 2017' in message
    assert str(root / 'annotations' / 'instances_train2017.json') in message
    assert str(root / 'train2017') + '\n' not in message
    (root / 'annotations').mkdir()
    (root / 'annotations' / 'instances_train2017.json').write_text('{}')
    check_datasets(_loaders(coco))


def test_absent_loaders_and_remote_paths_are_skipped() -> None:
    check_datasets(Config(dict(test_dataloader=None)))
    remote = dict(type='ADE20KDataset', data_root='s3://bucket/ade',
                  data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'))
    check_datasets(_loaders(remote))
