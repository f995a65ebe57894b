"""Demo Shapes COCO: the Demo Shapes images as a small COCO-format instance-segmentation set.

Shapes and backgrounds are painted by :mod:`.painting`, as in :mod:`.demo_shapes` (same hues, outlines, textures
and noise). For detection every shape is one instance: shapes lie fully inside the image and never touch each
other, so the polygon that was filled is exactly the instance's annotation (no occlusion to approximate). Circles
are filled as 32-gons.

The layout is the one mmdet's ``CocoDataset`` reads (``data_prefix=dict(img='train/')``)::

    ROOT/{train,val}/000000.png                 RGB images (stored as PNG)
    ROOT/annotations/instances_{train,val}.json COCO instances: bbox (x, y, w, h), area, iscrowd=0, polygons
    ROOT/demo_coco.json                         manifest, written last: its presence marks a complete dataset

Category ids are 1..4 in the order of :data:`CLASSES`; image and annotation ids start at 1. Polygon coordinates
follow COCO's convention (pixel ``(i, j)`` covers ``[j, j + 1) x [i, i + 1)``). Generation is deterministic: image
``k`` of a split draws from a generator seeded by ``(seed, split, k)``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .atomic import write_dataset
from .demo_shapes import PALETTE
from .painting import HUE_JITTER, HUES, background, hsv_to_bgr, polygon

CLASSES: tuple[str, ...] = ('circle', 'square', 'triangle', 'star')
DET_PALETTE: list[list[int]] = PALETTE[1:]  # demo_shapes' colours without its background entry
MANIFEST = 'demo_coco.json'
SPLITS: tuple[str, ...] = ('train', 'val')
_CIRCLE_VERTICES = 32
_GAP = 2  # minimum free pixels between two shapes


def is_complete(root: str | os.PathLike) -> bool:
    """Whether ``root`` holds a dataset this module finished writing (its manifest exists)."""
    return (Path(root) / MANIFEST).is_file()


def ann_file(split: str) -> str:
    """The annotation file of ``split``, relative to the dataset root."""
    return f'annotations/instances_{split}.json'


def _shape_polygon(kind: str, rng: np.random.Generator, cx: float, cy: float, r: float) -> np.ndarray:
    """Vertices (N, 1, 2) int32 in OpenCV pixel coordinates; circles become regular 32-gons of radius 0.8 r."""
    poly = polygon(kind, rng, cx, cy, r)
    if poly is not None:
        return poly
    ang = np.arange(_CIRCLE_VERTICES) * 2 * np.pi / _CIRCLE_VERTICES
    pts = np.stack([cx + np.cos(ang) * r * 0.8, cy + np.sin(ang) * r * 0.8], axis=1)  # (N, 2)
    return np.round(pts).astype(np.int32).reshape(-1, 1, 2)


def render_instances(rng: np.random.Generator, size: int,
                     max_tries: int = 30) -> tuple[np.ndarray, list[tuple[int, np.ndarray]]]:
    """Draws one image with 2-6 separate shapes.

    Args:
        rng: Source of randomness for this sample.
        size: Side length in pixels.
        max_tries: Placement attempts per shape; a shape that finds no free place is skipped.

    Returns:
        ``(image, instances)``: a (size, size, 3) uint8 BGR image and, per drawn shape, its 0-based class index
        and its filled polygon, (N, 1, 2) int32 in OpenCV pixel coordinates (pixel centres at integers).
    """
    img = background(rng, size)
    occupied = np.zeros((size, size), np.uint8)
    kernel = np.ones((2 * _GAP + 1, 2 * _GAP + 1), np.uint8)
    instances: list[tuple[int, np.ndarray]] = []
    for _ in range(int(rng.integers(2, 7))):
        cls_id = int(rng.integers(len(CLASSES)))
        kind = CLASSES[cls_id]
        for _ in range(max_tries):
            r = rng.uniform(0.1, 0.22) * size
            cx, cy = rng.uniform(r + 1, size - r - 2, size=2)
            poly = _shape_polygon(kind, rng, cx, cy, r)
            if poly.min() < 0 or poly.max() >= size:
                continue
            mask = np.zeros((size, size), np.uint8)
            cv2.fillPoly(mask, [poly], 1)
            if not (mask & occupied).any():
                break
        else:
            continue
        occupied |= cv2.dilate(mask, kernel)
        hue = HUES[kind] + rng.uniform(-HUE_JITTER, HUE_JITTER)
        colour = hsv_to_bgr(hue, rng.uniform(0.6, 1.0), rng.uniform(0.55, 1.0))
        shade = 1.0 + rng.uniform(-0.15, 0.15) * ((np.mgrid[0:size, 0:size][1] / size) - 0.5)  # (H, W)
        fill = np.array(colour, np.float32) * shade[..., None]  # (H, W, 3)
        on = mask.astype(bool)
        img[on] = fill[on]
        instances.append((cls_id, poly))
    img += rng.normal(0, rng.uniform(3, 10), img.shape).astype(np.float32)
    return img.round().clip(0, 255).astype(np.uint8), instances


def _annotation(poly: np.ndarray, cls_id: int, ann_id: int, image_id: int) -> dict[str, Any]:
    """The COCO annotation of one filled polygon (shifted by half a pixel into COCO coordinates)."""
    pts = poly.reshape(-1, 2).astype(np.float64) + 0.5  # (N, 2) x, y
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0)
    return dict(id=ann_id, image_id=image_id, category_id=cls_id + 1,
                bbox=[float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                area=float(cv2.contourArea(pts.astype(np.float32))), iscrowd=0,
                segmentation=[[round(float(v), 1) for v in pts.ravel()]])


def _write_split(root: Path, split: str, split_id: int, num: int, size: int, seed: int) -> list[int]:
    """Writes ``num`` images and the annotation file of one split; returns per-class instance counts."""
    img_dir = root / split
    img_dir.mkdir(parents=True)
    images, annotations = [], []
    counts = [0] * len(CLASSES)
    for i in range(num):
        rng = np.random.default_rng([seed, split_id, i])
        img, instances = render_instances(rng, size)
        name = f'{i:06d}.png'
        if not cv2.imwrite(str(img_dir / name), img):
            raise OSError(f'could not write {img_dir / name}')
        images.append(dict(id=i + 1, file_name=name, width=size, height=size))
        for cls_id, poly in instances:
            annotations.append(_annotation(poly, cls_id, len(annotations) + 1, i + 1))
            counts[cls_id] += 1
    coco = dict(info=dict(description=f'Demo Shapes COCO ({split})', version='1.0'), licenses=[], images=images,
                annotations=annotations,
                categories=[dict(id=k + 1, name=name, supercategory='shape') for k, name in enumerate(CLASSES)])
    (root / ann_file(split)).write_text(json.dumps(coco) + '\n')
    return counts


def generate_demo_coco(root: str | os.PathLike, num_train: int = 400, num_val: int = 50, size: int = 128,
                       seed: int = 0, force: bool = False, exist_ok: bool = False) -> dict[str, Any]:
    """Writes the Demo Shapes COCO dataset to ``root``.

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
        The manifest: ``classes``, ``num_train``, ``num_val``, ``size``, ``seed`` and ``instance_counts`` (per
        split, per class).

    Raises:
        FileExistsError: ``root`` exists and is not empty, and neither ``force`` nor ``exist_ok`` allows it.
    """
    root = Path(root)
    if num_train < 1 or num_val < 1 or size < 32:
        raise ValueError('need num_train >= 1, num_val >= 1 and size >= 32')

    def build(tmp: Path) -> dict[str, Any]:
        (tmp / 'annotations').mkdir(parents=True)
        counts = {split: _write_split(tmp, split, split_id, num, size, seed)
                  for split_id, (split, num) in enumerate(zip(SPLITS, (num_train, num_val)))}
        return dict(classes=list(CLASSES), num_train=num_train, num_val=num_val, size=size, seed=seed,
                    instance_counts=counts)

    return write_dataset(root, MANIFEST, build, force=force, exist_ok=exist_ok)
