"""Packaging for vit_backbones, an OpenMMLab plugin of ViT-family backbones.

Configs ship the OpenMMLab way, as ``vit_backbones/.mim/configs``, which is
where mmengine looks for ``pkg::path`` configs (``<package dir>/.mim/configs/
path``). An editable install (``pip install -e .``) links that folder to the
repository's ``configs/``, so edits show up at once; a wheel gets a copy.
mmengine reads ``.mim/model-index.yml`` before falling back to that folder and
fails if the file is missing, so an empty index is written beside it unless
the repository has its own ``model-index.yml``.
"""
import os
import os.path as osp
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py
from setuptools.command.develop import develop

HERE = osp.dirname(osp.abspath(__file__))
CONFIGS = osp.join(HERE, 'configs')
MODEL_INDEX = osp.join(HERE, 'model-index.yml')
MIM = osp.join('vit_backbones', '.mim')
EMPTY_INDEX = 'Import: []\n'


def _remove(path: str) -> None:
    if osp.islink(path) or osp.isfile(path):
        os.remove(path)
    elif osp.isdir(path):
        shutil.rmtree(path)


def _copy_configs(dst: str) -> None:
    _remove(dst)
    shutil.copytree(CONFIGS, dst,
                    ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))


def _write_model_index(mim_dir: str, link: bool) -> None:
    dst = osp.join(mim_dir, 'model-index.yml')
    _remove(dst)
    if not osp.isfile(MODEL_INDEX):
        with open(dst, 'w', encoding='utf-8') as f:
            f.write(EMPTY_INDEX)
    elif link:
        os.symlink(osp.relpath(MODEL_INDEX, mim_dir), dst)
    else:
        shutil.copyfile(MODEL_INDEX, dst)


def link_mim_configs() -> None:
    """Make ``vit_backbones/.mim/configs`` a link to ``../../configs``."""
    if not osp.isdir(CONFIGS):
        return
    mim_dir = osp.join(HERE, MIM)
    link = osp.join(mim_dir, 'configs')
    os.makedirs(mim_dir, exist_ok=True)
    try:
        if not (osp.islink(link)
                and os.readlink(link) == osp.relpath(CONFIGS, mim_dir)):
            _remove(link)
            os.symlink(osp.relpath(CONFIGS, mim_dir), link)
        _write_model_index(mim_dir, link=True)
    except OSError:  # no symlinks (e.g. Windows without privileges)
        _copy_configs(link)
        _write_model_index(mim_dir, link=False)


class BuildPy(build_py):
    """Adds the configs: linked for editable installs, copied for wheels."""

    def run(self) -> None:
        super().run()
        if getattr(self, 'editable_mode', False):
            link_mim_configs()
        elif osp.isdir(CONFIGS):
            mim_dir = osp.join(self.build_lib, MIM)
            _copy_configs(osp.join(mim_dir, 'configs'))
            _write_model_index(mim_dir, link=False)


class Develop(develop):
    """Legacy ``setup.py develop``: link the configs too."""

    def run(self) -> None:
        link_mim_configs()
        super().run()


setup(
    name='vit_backbones',
    version='0.1.0',
    description='Vision-transformer backbones for mmdet 3.x and mmseg 1.x, '
    'registered once as an OpenMMLab plugin',
    packages=find_packages(exclude=('tests', 'tests.*')),
    python_requires='>=3.10',
    # Ranges, not pins, so the plugin installs beside a user's OpenMMLab stack: each is the range we test on
    # (tools/install.sh sets up its newest point: torch 2.14, mmengine 0.10.7, mmcv 2.1.0, mmseg 1.2.2, mmdet 3.3.0).
    install_requires=[
        'torch>=2.1',
        'mmengine>=0.10.4,<0.11',
        'mmcv>=2.0.0rc4,<2.2.0',
        'mmsegmentation>=1.1,<1.3',
        'mmdet>=3.1,<3.4',
        'timm>=1.0,<2',
        'mmpretrain>=1.2,<1.3',  # classification: ImageClassifier, heads, ImageNet, augmentations
        'ftfy',  # mmseg imports it (text encoders) without declaring it
        'regex',  # likewise
        'numpy',
    ],
    # Only what the test suite needs beyond the above: `pip install -e .[tests]`.
    extras_require={'tests': ['pytest', 'onnx', 'onnxruntime', 'onnxscript', 'ruff']},
    cmdclass={'build_py': BuildPy, 'develop': Develop},
    zip_safe=False,
)
