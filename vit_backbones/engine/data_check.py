"""Fail fast, with a usable message, when the data a config reads is not on disk.

Without this check a missing dataset surfaces deep inside a dataloader worker as an empty dataset or a
``FileNotFoundError`` on one image. :func:`check_datasets` walks the train/val/test dataloaders of a config
before the runner is built and reports every missing folder or annotation file at once, with how to get it.

How to get it: a config may say so itself in a top-level ``data_hint`` string (``{root}`` stands for the dataset's
``data_root``), e.g. ``data_hint = 'generate it with: python tools/make_demo_data.py {root}'``; mmengine's Runner
ignores the key. Otherwise the standard datasets (ADE20K, COCO) get their download instructions and any other
dataset a pointer to the mmseg/mmdet preparation docs. mmseg, mmdet and mmpretrain dataset configs are understood.
"""
from __future__ import annotations

import os.path as osp
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from mmengine import Config

LOADERS: tuple[str, ...] = ('train_dataloader', 'val_dataloader', 'test_dataloader')
HINT_KEY = 'data_hint'

_ADE20K_HINT = ('download ADEChallengeData2016.zip from the MIT Scene Parsing benchmark '
                '(http://sceneparsing.csail.mit.edu/) and unzip it so that {root}/images/{{training,validation}} '
                'and {root}/annotations/{{training,validation}} exist (the layout mmseg documents).')
_COCO_HINT = ('download COCO 2017 (https://cocodataset.org/#download) and unpack it so that {root}/train2017, '
              '{root}/val2017 and {root}/annotations/instances_{{train,val}}2017.json exist.')
_GENERIC_HINT = 'prepare it as the mmseg/mmdet dataset preparation docs describe for {type}, under {root}.'


def _leaf_datasets(dataset: Any, key: str) -> Iterator[tuple[str, Mapping]]:
    """Yields ``(cfg_key, dataset_cfg)`` for every real dataset inside wrappers (Repeat/Concat/MultiImageMix)."""
    if not isinstance(dataset, Mapping):
        return  # absent, or an already-built dataset object
    if isinstance(dataset.get('datasets'), (list, tuple)):
        for i, child in enumerate(dataset['datasets']):
            yield from _leaf_datasets(child, f'{key}.datasets.{i}')
    elif isinstance(dataset.get('dataset'), Mapping):
        yield from _leaf_datasets(dataset['dataset'], f'{key}.dataset')
    else:
        yield key, dataset


def _join(root: str, path: str) -> str:
    """Joins ``path`` to ``root`` the way mmengine's ``BaseDataset`` does (absolute paths win)."""
    return osp.normpath(osp.join(root, path) if root and not osp.isabs(path) else (path or root or '.'))


def _required_paths(dataset: Mapping) -> list[str]:
    """Local folders and files a dataset config needs: ``data_root`` + each ``data_prefix`` entry + ``ann_file``.

    ``data_prefix`` is a dict (mmseg, mmdet) or, as mmpretrain's datasets also take it, one image folder string.
    """
    root = dataset.get('data_root') or ''
    data_prefix = dataset.get('data_prefix') or {}
    if isinstance(data_prefix, str):
        data_prefix = dict(img_path=data_prefix)
    prefixes = [p for p in data_prefix.values() if isinstance(p, str)]
    ann_file = dataset.get('ann_file') or ''
    paths = [_join(root, p) for p in prefixes]
    if ann_file:
        paths.append(_join(root, ann_file))
    if not paths and root:
        paths.append(osp.normpath(root))
    remote = '://' in root or (dataset.get('backend_args') or {}).get('backend', 'local') != 'local'
    return [] if remote else list(dict.fromkeys(p for p in paths if '://' not in p))


def _type_name(dataset: Mapping) -> str:
    """The dataset class name without a registry scope (``mmseg.ADE20KDataset`` -> ``ADE20KDataset``)."""
    kind = dataset.get('type', 'dataset')
    return kind.__name__ if isinstance(kind, type) else str(kind).split('.')[-1]


def _config_hint(cfg: Config) -> str | None:
    """The config's own ``data_hint``, if it has one."""
    hint = cfg.get(HINT_KEY)
    if hint is not None and not isinstance(hint, str):
        raise TypeError(f'{HINT_KEY} in the config must be a string, not {type(hint).__name__}')
    return hint or None


def _hint(dataset: Mapping, root: str, config_hint: str | None = None) -> str:
    """How to obtain the data of ``dataset`` (whose absolute data root is ``root``).

    Args:
        dataset: The dataset config.
        root: Absolute path of its data root.
        config_hint: The config's ``data_hint``; each ``{root}`` in it becomes the dataset's ``data_root`` as
            written in the config (``root`` if it has none).
    """
    if config_hint:
        return config_hint.replace('{root}', str(dataset.get('data_root') or root))
    name = _type_name(dataset)
    if name.startswith('ADE20K'):
        return _ADE20K_HINT.format(root=root)
    if name.startswith('Coco') and 'Stuff' not in name:
        return _COCO_HINT.format(root=root)
    return _GENERIC_HINT.format(type=name, root=root)


def check_datasets(cfg: Config, loaders: Sequence[str] = LOADERS) -> None:
    """Checks that every dataset of the given dataloaders of ``cfg`` exists on disk.

    Paths are resolved as mmengine's ``BaseDataset`` does (``data_root`` joined with each ``data_prefix`` value
    and ``ann_file``), relative to the working directory. Remote paths (``s3://``, non-local backends) are skipped.

    Args:
        cfg: A full training/testing config; its top-level ``data_hint`` string, if any, is shown as the way to
            get every missing dataset.
        loaders: Names of the dataloader keys to check (default: train, val and test).

    Raises:
        FileNotFoundError: Some path is missing; the message names the dataset type, the missing paths, how to
            get the data and the ``--cfg-options`` that point the config at an existing copy.
        TypeError: ``data_hint`` is set but is not a string.
    """
    config_hint = _config_hint(cfg)
    problems: dict[tuple[str, str], dict[str, Any]] = {}  # (type, data_root) -> missing paths, cfg keys, hint
    for loader in loaders:
        loader_cfg = cfg.get(loader)
        if not isinstance(loader_cfg, Mapping):
            continue
        for key, dataset in _leaf_datasets(loader_cfg.get('dataset'), f'{loader}.dataset'):
            missing = [p for p in _required_paths(dataset) if not osp.exists(p)]
            if not missing:
                continue
            root = osp.abspath(dataset.get('data_root') or '.')
            entry = problems.setdefault((_type_name(dataset), root),
                                        dict(missing=[], keys=[], hint=_hint(dataset, root, config_hint)))
            entry['missing'] += [osp.abspath(p) for p in missing if osp.abspath(p) not in entry['missing']]
            entry['keys'].append(key)
    if not problems:
        return
    lines = []
    for (name, root), entry in problems.items():
        loaders = dict.fromkeys(k.split('.')[0] for k in entry['keys'])
        lines.append(f"{name} data not found (used by {', '.join(loaders)}):")
        lines += [f'  missing: {p}' for p in entry['missing']]
        lines.append(f"  To get it, {entry['hint']}")
        options = ' '.join(f'{k}.data_root=/path/to/{osp.basename(root)}' for k in entry['keys'])
        lines.append(f'  Or point the config at an existing copy: --cfg-options {options}')
    raise FileNotFoundError('\n'.join(lines))
