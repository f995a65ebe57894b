"""Every demo dataset generator is atomic: interrupted mid-way, it leaves nothing at or beside its target."""
from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import cv2
import numpy as np
import pytest

from vit_backbones.datasets import (
    demo_cls,
    demo_coco,
    demo_shapes,
    generate_demo_cls,
    generate_demo_coco,
    generate_demo_shapes,
)

GENERATORS = [  # (module whose cv2.imwrite is interrupted, generator, tiny arguments, writes before the interrupt)
    (demo_shapes, generate_demo_shapes, dict(num_train=6, num_val=2, size=48), 5),
    (demo_coco, generate_demo_coco, dict(num_train=6, num_val=3, size=64), 3),
    (demo_cls, generate_demo_cls, dict(num_train=8, num_val=4, size=32), 5),
]


@pytest.mark.parametrize('module, generate, kwargs, writes', GENERATORS, ids=lambda v: getattr(v, '__name__', ''))
def test_interrupted_generation_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module: ModuleType,
                                               generate: Callable[..., Any], kwargs: dict, writes: int) -> None:
    calls = []

    def flaky_imwrite(path: str, image: np.ndarray) -> bool:
        calls.append(path)
        if len(calls) > writes:
            raise KeyboardInterrupt
        return cv2.imencode('.png', image)[0]

    monkeypatch.setattr(module.cv2, 'imwrite', flaky_imwrite)
    with pytest.raises(KeyboardInterrupt):
        generate(tmp_path / 'data', **kwargs)
    assert len(calls) == writes + 1  # it was interrupted in the middle, not before starting
    assert list(tmp_path.iterdir()) == []
