"""The short form of the per-family sweeps (tests/conftest.py): what ``make test`` leaves to ``--full``."""
from types import SimpleNamespace

import pytest

from . import conftest


class _Item(SimpleNamespace):
    def get_closest_marker(self, name: str):
        return name if name in self.markers else None


def _config(full: bool, deselected: list):
    hook = SimpleNamespace(pytest_deselected=lambda items: deselected.extend(items))
    return SimpleNamespace(getoption=lambda opt: full if opt == '--full' else None, hook=hook)


def _items() -> list:
    sweep = [_Item(markers={'sweep'}, callspec=SimpleNamespace(params={'name': n}), id=n)
             for n in ('SwinTransformer', 'CvT', 'ViTAdapter', 'VisionTransformer@vitdet')]
    other = [_Item(markers=set(), callspec=SimpleNamespace(params={'name': 'CvT'}), id='contract'),
             _Item(markers={'sweep'}, callspec=None, id='unparametrized')]
    return sweep + other


@pytest.mark.parametrize('full', [False, True])
def test_sweeps_run_short_unless_full(full, monkeypatch):
    monkeypatch.delenv('VIT_BACKBONES_FULL_TESTS', raising=False)
    items, deselected = _items(), []
    conftest.pytest_collection_modifyitems(_config(full, deselected), items)
    if full:
        assert [i.id for i in items] == [i.id for i in _items()] and not deselected
    else:
        assert [i.id for i in items] == ['SwinTransformer', 'VisionTransformer@vitdet', 'contract', 'unparametrized']
        assert sorted(i.id for i in deselected) == ['CvT', 'ViTAdapter']  # reported, not silently dropped


def test_the_environment_variable_asks_for_the_full_sweep(monkeypatch):
    monkeypatch.setenv('VIT_BACKBONES_FULL_TESTS', '1')
    items, deselected = _items(), []
    conftest.pytest_collection_modifyitems(_config(False, deselected), items)
    assert len(items) == len(_items()) and not deselected


def test_short_families_are_registered_backbones():
    from .backbones.tiny_archs import TINY
    assert set(conftest.SWEEP_SHORT) <= set(TINY)
