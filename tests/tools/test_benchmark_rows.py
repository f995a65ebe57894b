"""Every ``tools/benchmark.py`` row builds each of its implementations and runs it (64x64, one image), so a row
added for a new family cannot rot unnoticed, and ``ours`` is the registered type the row declares (which
test_benchmark.py checks covers every registered backbone); the measuring itself is tested in test_benchmark.py."""
import importlib.util
from pathlib import Path

import pytest
import torch

from vit_backbones.registry import MODELS as REGISTRY

BENCHMARK = Path(__file__).resolve().parents[2] / 'tools' / 'benchmark.py'


def _benchmark_module():
    spec = importlib.util.spec_from_file_location('vit_backbones_benchmark_tool', BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ROWS = _benchmark_module().ROWS


@pytest.mark.parametrize('row', sorted(ROWS))
def test_every_implementation_of_a_row_builds_and_returns_maps(row):
    pytest.importorskip('timm')
    torch.manual_seed(0)
    candidates = ROWS[row].candidates()
    assert 'ours' in candidates and len(candidates) >= 2  # ours and at least one peer or equal-FLOPs baseline
    x = torch.randn(1, 3, 64, 64)
    for name, build in candidates.items():
        model = build()
        model.eval()  # (not chained: some peers return None from train())
        if name == 'ours':
            assert isinstance(model, REGISTRY.get(ROWS[row].backbone)), f'{row}: {type(model).__name__}'
        with torch.no_grad():
            outs = model(x)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        assert outs and all(torch.isfinite(o).all() for o in outs), f'{row}/{name}'
        if name.startswith('ours'):  # ours: the dense maps (peers may return tokens or pooled features)
            assert all(o.ndim == 4 for o in outs), f'{row}/{name}: {[tuple(o.shape) for o in outs]}'
