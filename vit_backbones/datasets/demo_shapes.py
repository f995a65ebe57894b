"""Demo Shapes: a tiny synthetic segmentation dataset that a CPU can learn in minutes.

Each image shows several filled shapes (circle, square, triangle, star) on a textured, noisy background. A class
has its own hue band (jittered in hue, saturation and brightness) and its own outline, so the task is learnable
quickly, while random size, rotation, position and occlusion keep it from being trivial.

The layout is the one mmseg's ``BaseSegDataset`` reads with ``img_suffix='.png'`` and ``seg_map_suffix='.png'``::

    ROOT/img_dir/{train,val}/000000.png     RGB images (stored as PNG)
    ROOT/ann_dir/{train,val}/000000.png     uint8 label maps, 0 = background, 1..K-1 = shapes
    ROOT/demo_shapes.json                   manifest, written last: its presence marks a complete dataset

Generation is deterministic for a seed: every image draws from its own generator seeded by
``(seed, split, index)``, so changing the number of images never changes the ones already there.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .atomic import write_dataset
from .painting import HUE_JITTER, HUES, add_noise, background, hsv_to_bgr, paint_shape

CLASSES: tuple[str, ...] = ('background', 'circle', 'square', 'triangle', 'star')
PALETTE: list[list[int]] = [[0, 0, 0], [220, 40, 40], [40, 180, 70], [40, 90, 230], [240, 200, 20]]
MANIFEST = 'demo_shapes.json'
SPLITS: tuple[str, ...] = ('train', 'val')


def is_complete(root: str | os.PathLike) -> bool:
    """Whether ``root`` holds a dataset this module finished writing (its manifest exists)."""
    return (Path(root) / MANIFEST).is_file()


def render_sample(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Draws one image and its label map.

    Args:
        rng: Source of randomness for this sample.
        size: Side length in pixels.

    Returns:
        ``(image, label)``: a (size, size, 3) uint8 BGR image and a (size, size) uint8 label map.
    """
    img = background(rng, size)
    label = np.zeros((size, size), np.uint8)
    for _ in range(int(rng.integers(3, 7))):
        cls_id = int(rng.integers(1, len(CLASSES)))
        kind = CLASSES[cls_id]
        r = rng.uniform(0.09, 0.24) * size
        cx, cy = rng.uniform(0.05, 0.95, size=2) * size
        hue = HUES[kind] + rng.uniform(-HUE_JITTER, HUE_JITTER)
        colour = hsv_to_bgr(hue, rng.uniform(0.6, 1.0), rng.uniform(0.55, 1.0))
        label[paint_shape(img, rng, kind, cx, cy, r, colour)] = cls_id
    return add_noise(img, rng), label


def _write_split(root: Path, split: str, split_id: int, num: int, size: int, seed: int) -> list[int]:
    """Writes ``num`` samples of one split under ``root``; returns per-class pixel counts."""
    img_dir, ann_dir = root / 'img_dir' / split, root / 'ann_dir' / split
    img_dir.mkdir(parents=True)
    ann_dir.mkdir(parents=True)
    counts = np.zeros(len(CLASSES), np.int64)
    for i in range(num):
        rng = np.random.default_rng([seed, split_id, i])
        img, label = render_sample(rng, size)
        name = f'{i:06d}.png'
        if not (cv2.imwrite(str(img_dir / name), img) and cv2.imwrite(str(ann_dir / name), label)):
            raise OSError(f'could not write {img_dir / name}')
        counts += np.bincount(label.ravel(), minlength=len(CLASSES))
    return counts.tolist()


def generate_demo_shapes(root: str | os.PathLike, num_train: int = 400, num_val: int = 50, size: int = 128,
                         seed: int = 0, force: bool = False, exist_ok: bool = False) -> dict[str, Any]:
    """Writes the Demo Shapes dataset to ``root``.

    The dataset is built in a temporary sibling folder and renamed into place once complete, so ``root`` is never
    left half-written.

    Args:
        root: Target folder; it must not exist yet (an empty folder is fine).
        num_train: Number of training images.
        num_val: Number of validation images.
        size: Image side length in pixels.
        seed: Seed of the generator; the same seed gives byte-identical files.
        force: Replace whatever is at ``root``.
        exist_ok: If ``root`` already holds a complete dataset, return its manifest instead of raising.

    Returns:
        The manifest: ``root``, ``classes``, ``palette``, ``num_train``, ``num_val``, ``size``, ``seed`` and
        ``pixel_counts`` (per split, per class).

    Raises:
        FileExistsError: ``root`` exists and is not empty, and neither ``force`` nor ``exist_ok`` allows it.
    """
    root = Path(root)
    if num_train < 1 or num_val < 1 or size < 16:
        raise ValueError('need num_train >= 1, num_val >= 1 and size >= 16')

    def build(tmp: Path) -> dict[str, Any]:
        pixel_counts = {split: _write_split(tmp, split, split_id, num, size, seed)
                        for split_id, (split, num) in enumerate(zip(SPLITS, (num_train, num_val)))}
        return dict(classes=list(CLASSES), palette=PALETTE, num_train=num_train, num_val=num_val, size=size,
                    seed=seed, pixel_counts=pixel_counts)

    return write_dataset(root, MANIFEST, build, force=force, exist_ok=exist_ok)

