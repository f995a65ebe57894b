"""Demo Shapes classification: one shape per image, its class the image's label (4 classes, balanced).

Each image holds exactly one filled shape (circle, square, triangle or star) painted by :mod:`.painting` as in
the other Demo Shapes sets (the class's hue band and outline, textured background, pixel noise), plus one to four
small clutter marks (strokes, blobs) in the colours of random classes, so the colours present in an image do not
by themselves name its class: the shape is the one large mark. Size (radius 0.2-0.4 of the side), rotation and
position vary; the shape always lies fully inside the image (off its border pixels) and is painted over the
clutter, never under it.

The layout is the one mmpretrain's ``CustomDataset`` reads, with annotation files (``ann_file='meta/train.txt'``,
``data_prefix='train'``) or without them (class folders; folder order is :data:`CLASSES`, which is alphabetical)::

    ROOT/{train,val}/<class>/000000.png     RGB images (stored as PNG); the number is the index in the split
    ROOT/meta/{train,val}.txt               one ``<class>/<name>.png <label>`` line per image, in index order
    ROOT/demo_cls.json                      manifest, written last: its presence marks a complete dataset

Image ``k`` of a split has class ``k % 4`` (so every split is balanced) and draws everything else from a generator
seeded by ``(seed, split, k)``: the same seed gives byte-identical files, and more images keep the first ones.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .atomic import write_dataset
from .painting import HUE_JITTER, HUES, add_noise, background, hsv_to_bgr, paint_distractors, paint_shape

CLASSES: tuple[str, ...] = ('circle', 'square', 'star', 'triangle')
MANIFEST = 'demo_cls.json'
SPLITS: tuple[str, ...] = ('train', 'val')
RADIUS_RANGE: tuple[float, float] = (0.2, 0.4)
"""Shape radius as a fraction of the image side."""
DISTRACTOR_EXTENT = 0.08
"""Largest half-length of a clutter mark as a fraction of the image side (the smallest shape radius is 0.2)."""


def is_complete(root: str | os.PathLike) -> bool:
    """Whether ``root`` holds a dataset this module finished writing (its manifest exists)."""
    return (Path(root) / MANIFEST).is_file()


def ann_file(split: str) -> str:
    """The annotation file of ``split``, relative to the dataset root."""
    return f'meta/{split}.txt'


def render_sample(rng: np.random.Generator, size: int, label: int) -> tuple[np.ndarray, np.ndarray]:
    """Draws one image holding one shape of class ``label``.

    Args:
        rng: Source of randomness for this sample.
        size: Side length in pixels.
        label: Index of the shape's class in :data:`CLASSES`.

    Returns:
        ``(image, mask)``: a (size, size, 3) uint8 BGR image and the (size, size) bool mask of the shape's pixels.

    Raises:
        ValueError: ``label`` is not a class index.
    """
    if not 0 <= label < len(CLASSES):
        raise ValueError(f'label must be in [0, {len(CLASSES)}), got {label}')
    img = background(rng, size)
    paint_distractors(img, rng, int(rng.integers(1, 5)), DISTRACTOR_EXTENT * size)
    kind = CLASSES[label]
    r = rng.uniform(*RADIUS_RANGE) * size
    cx, cy = rng.uniform(r + 1, size - 2 - r, size=2)  # outer radius r: inside, off the border pixels 0, size-1
    hue = HUES[kind] + rng.uniform(-HUE_JITTER, HUE_JITTER)
    colour = hsv_to_bgr(hue, rng.uniform(0.6, 1.0), rng.uniform(0.55, 1.0))
    mask = paint_shape(img, rng, kind, cx, cy, r, colour)
    return add_noise(img, rng), mask


def _write_split(root: Path, split: str, split_id: int, num: int, size: int, seed: int) -> list[int]:
    """Writes ``num`` samples of one split and its annotation file under ``root``; returns per-class counts."""
    for name in CLASSES:
        (root / split / name).mkdir(parents=True)
    counts = [0] * len(CLASSES)
    lines = []
    for i in range(num):
        label = i % len(CLASSES)
        img, _ = render_sample(np.random.default_rng([seed, split_id, i]), size, label)
        rel = f'{CLASSES[label]}/{i:06d}.png'
        if not cv2.imwrite(str(root / split / rel), img):
            raise OSError(f'could not write {root / split / rel}')
        lines.append(f'{rel} {label}\n')
        counts[label] += 1
    (root / ann_file(split)).parent.mkdir(exist_ok=True)
    (root / ann_file(split)).write_text(''.join(lines))
    return counts


def generate_demo_cls(root: str | os.PathLike, num_train: int = 2000, num_val: int = 200, size: int = 64,
                      seed: int = 0, force: bool = False, exist_ok: bool = False) -> dict[str, Any]:
    """Writes the Demo Shapes classification dataset to ``root``.

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
        The manifest: ``classes``, ``num_train``, ``num_val``, ``size``, ``seed`` and ``class_counts`` (per split,
        images per class).

    Raises:
        ValueError: A count is below 1 or ``size`` below 32.
        FileExistsError: ``root`` exists and is not empty, and neither ``force`` nor ``exist_ok`` allows it.
    """
    if num_train < 1 or num_val < 1 or size < 32:
        raise ValueError(f'need num_train >= 1, num_val >= 1 and size >= 32, got {num_train}, {num_val}, {size}')

    def build(tmp: Path) -> dict[str, Any]:
        class_counts = {split: _write_split(tmp, split, split_id, num, size, seed)
                        for split_id, (split, num) in enumerate(zip(SPLITS, (num_train, num_val)))}
        return dict(classes=list(CLASSES), num_train=num_train, num_val=num_val, size=size, seed=seed,
                    class_counts=class_counts)

    return write_dataset(root, MANIFEST, build, force=force, exist_ok=exist_ok)
