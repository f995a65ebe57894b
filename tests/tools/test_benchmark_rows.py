"""Every ``tools/benchmark.py --model`` row builds each of its implementations and runs it (64x64, one image), so
a row added for a new family cannot rot unnoticed; the CLI itself is tested in test_tools_cli.py."""
import importlib.util
from pathlib import Path

import pytest
import torch

BENCHMARK = Path(__file__).resolve().parents[2] / 'tools' / 'benchmark.py'
# rows the CLI tests of test_tools_cli.py already run end to end
CLI_TESTED = {'shuffle_t', 'cvt_13', 'vit_b16', 'swin_t'}


def _benchmark_module():
    spec = importlib.util.spec_from_file_location('vit_backbones_benchmark_tool', BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MODELS = _benchmark_module().MODELS


@pytest.mark.parametrize('row', sorted(set(MODELS) - CLI_TESTED))
def test_every_implementation_of_a_row_builds_and_returns_maps(row):
    pytest.importorskip('timm')
    torch.manual_seed(0)
    candidates = MODELS[row]()
    assert 'ours' in candidates and len(candidates) >= 2  # ours and at least one peer or equal-FLOPs baseline
    x = torch.randn(1, 3, 64, 64)
    for name, build in candidates.items():
        model = build().eval()
        with torch.no_grad():
            outs = model(x)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        assert outs and all(torch.isfinite(o).all() for o in outs), f'{row}/{name}'
        if name.startswith('ours'):  # ours: the dense maps (peers may return tokens or pooled features)
            assert all(o.ndim == 4 for o in outs), f'{row}/{name}: {[tuple(o.shape) for o in outs]}'
