"""Suite-wide options: the short and the full form of the per-family sweeps.

Checks marked ``sweep`` compile or export a whole backbone and repeat that for every registered family (tens of
seconds each). ``make test`` runs their short form: the families in :data:`SWEEP_SHORT` (the hierarchical Swin with
shifted, padded windows and cached masks; the plain ViT in its ViTDet form with padded windows, global blocks and
resized relative positions), about 100 s of a full sweep that takes about 10 minutes on 2 cores. ``pytest --full`` (or
``VIT_BACKBONES_FULL_TESTS=1``) runs the sweep over every family; run it when a family's forward changes
(``make test-full``).
"""
import os

import pytest

SWEEP_SHORT = ('SwinTransformer', 'VisionTransformer@vitdet')


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption('--full', action='store_true', default=False,
                     help='run the tests marked "sweep" for every family (default: the SWEEP_SHORT families)')


def full_run(config: pytest.Config) -> bool:
    """Whether this run asked for the full sweeps (``--full`` or ``VIT_BACKBONES_FULL_TESTS=1``)."""
    return bool(config.getoption('--full')) or os.environ.get('VIT_BACKBONES_FULL_TESTS', '') not in ('', '0')


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without ``--full``, deselect the sweep items of families outside :data:`SWEEP_SHORT` (reported as
    deselected, so a short run says what it left out)."""
    if full_run(config):
        return
    keep, drop = [], []
    for item in items:
        marker = item.get_closest_marker('sweep')
        callspec = getattr(item, 'callspec', None)
        name = callspec.params.get('name') if callspec is not None else None
        if marker is None or name is None:
            keep.append(item)
        elif name in SWEEP_SHORT:
            keep.append(item)
        else:
            drop.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture
def mmpretrain_scope():
    """mmpretrain as mmengine's default scope for one test, then the scopes exactly as before: a scope left behind
    would resolve later tests' types (e.g. ``LN2d``) in mmpretrain's registry instead of theirs."""
    from mmengine.registry import DefaultScope
    saved = DefaultScope._instance_dict.copy()
    DefaultScope.get_instance(f'mmpretrain-test-{len(saved)}', scope_name='mmpretrain')
    yield
    DefaultScope._instance_dict.clear()
    DefaultScope._instance_dict.update(saved)
