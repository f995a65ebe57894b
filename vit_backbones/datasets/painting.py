"""Painting helpers shared by the synthetic demo generators (:mod:`.demo_shapes`, :mod:`.demo_coco`, :mod:`.demo_cls`).

All generators draw the same look: a textured low-saturation background (:func:`background`), filled shapes
(:func:`paint_shape`) whose class sets an outline (:func:`polygon`) and, in the segmentation and detection sets, a
hue band (:data:`HUES`, jittered by up to :data:`HUE_JITTER`), and pixel noise (:func:`add_noise`). Every helper
draws from the generator it is given in a fixed order, so a change here changes the generated datasets: keep the
draws and their order as they are (``tests/datasets`` pins the output).
"""
from __future__ import annotations

import cv2
import numpy as np

__all__ = ['HUES', 'HUE_JITTER', 'add_noise', 'background', 'hsv_to_bgr', 'paint_distractors', 'paint_shape', 'polygon']

HUES: dict[str, float] = {'circle': 0.0, 'square': 125.0, 'triangle': 225.0, 'star': 52.0}
"""Centre hue (degrees) of each shape class."""

HUE_JITTER = 14.0
"""A shape's hue is drawn uniformly within +-``HUE_JITTER`` degrees of its class's centre hue."""


def hsv_to_bgr(hue_deg: float, sat: float, val: float) -> tuple[float, float, float]:
    """Converts one HSV colour to BGR the way OpenCV does for 8-bit images.

    Args:
        hue_deg: Hue in degrees (any value; taken modulo 360).
        sat: Saturation in [0, 1].
        val: Value (brightness) in [0, 1].

    Returns:
        The colour as a BGR tuple of floats in [0, 255].
    """
    hsv = np.array([[[hue_deg % 360.0 / 2.0, sat * 255.0, val * 255.0]]], dtype=np.float32)  # (1, 1, 3)
    hsv = hsv.round().clip(0, 255).astype(np.uint8)
    bgr = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return tuple(float(c) for c in bgr)


def background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Paints a low-saturation background: a colour gradient, blurred noise blobs and, half the time, stripes.

    Args:
        rng: Source of randomness for this image.
        size: Side length in pixels.

    Returns:
        A (size, size, 3) float32 BGR image, roughly in [0, 255] (not clipped).
    """
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size  # 2 x (H, W)
    c0 = np.array(hsv_to_bgr(rng.uniform(0, 360), rng.uniform(0, 0.3), rng.uniform(0.3, 0.9)), np.float32)
    c1 = np.array(hsv_to_bgr(rng.uniform(0, 360), rng.uniform(0, 0.3), rng.uniform(0.3, 0.9)), np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    t = (np.cos(angle) * xx + np.sin(angle) * yy)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    img = c0 * (1 - t[..., None]) + c1 * t[..., None]  # (H, W, 1) * (3,) -> (H, W, 3)
    blobs = cv2.GaussianBlur(rng.normal(0, 1, (size, size)).astype(np.float32), (0, 0), size / 16)
    img += blobs[..., None] / max(float(np.abs(blobs).max()), 1e-6) * rng.uniform(10, 40)  # (H, W, 1) broadcast
    if rng.random() < 0.5:  # faint stripes, a texture that is not a shape
        period = rng.uniform(6, 20)
        img += (np.sin(2 * np.pi * (xx * np.cos(angle) - yy * np.sin(angle)) * size / period) * 12)[..., None]
    return img


def polygon(kind: str, rng: np.random.Generator, cx: float, cy: float, r: float) -> np.ndarray | None:
    """Vertices of a randomly rotated square, triangle or star.

    A rotation is drawn for every kind (circles included), so the generator advances the same way whatever the
    kind; a square also draws its aspect ratio.

    Args:
        kind: ``'circle'``, ``'square'``, ``'triangle'`` or ``'star'``.
        rng: Source of randomness for this shape.
        cx: Centre x in pixels.
        cy: Centre y in pixels.
        r: Radius in pixels (distance from the centre to the outer vertices).

    Returns:
        (N, 1, 2) int32 vertices in OpenCV pixel coordinates, as ``cv2.fillPoly`` takes them; ``None`` for a
        circle, which the caller draws itself.

    Raises:
        ValueError: ``kind`` is not one of the four shapes.
    """
    rot = rng.uniform(0, 2 * np.pi)
    if kind == 'circle':
        return None
    if kind == 'square':
        aspect = rng.uniform(0.75, 1.0)
        pts = np.array([[-1, -aspect], [1, -aspect], [1, aspect], [-1, aspect]]) * r / np.sqrt(2)  # (4, 2)
    elif kind == 'triangle':
        ang = np.array([0, 2 * np.pi / 3, 4 * np.pi / 3])
        pts = np.stack([np.cos(ang), np.sin(ang)], axis=1) * r  # (3, 2)
    elif kind == 'star':
        ang = np.arange(10) * np.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, r, r * 0.45)
        pts = np.stack([np.cos(ang) * radii, np.sin(ang) * radii], axis=1)  # (10, 2)
    else:
        raise ValueError(f'unknown shape {kind!r}')
    rot_m = np.array([[np.cos(rot), -np.sin(rot)], [np.sin(rot), np.cos(rot)]])
    pts = pts @ rot_m.T + np.array([cx, cy])  # (N, 2)
    return np.round(pts).astype(np.int32).reshape(-1, 1, 2)  # (N, 2) -> (N, 1, 2)


def paint_shape(img: np.ndarray, rng: np.random.Generator, kind: str, cx: float, cy: float, r: float,
                colour: tuple[float, float, float]) -> np.ndarray:
    """Fills one shape into ``img`` in place, with a faint left-to-right shading.

    Draws the outline's randomness (:func:`polygon`), then the shading strength. A circle is filled with radius
    ``0.8 * r``.

    Args:
        img: (H, W, 3) float32 BGR image, changed in place.
        rng: Source of randomness for this shape.
        kind: ``'circle'``, ``'square'``, ``'triangle'`` or ``'star'``.
        cx: Centre x in pixels.
        cy: Centre y in pixels.
        r: Radius in pixels.
        colour: BGR fill colour in [0, 255].

    Returns:
        The (H, W) bool mask of the filled pixels.
    """
    height, width = img.shape[:2]
    mask = np.zeros((height, width), np.uint8)
    poly = polygon(kind, rng, cx, cy, r)
    if poly is None:
        cv2.circle(mask, (int(round(cx)), int(round(cy))), int(round(r * 0.8)), 1, thickness=-1)
    else:
        cv2.fillPoly(mask, [poly], 1)
    shade = 1.0 + rng.uniform(-0.15, 0.15) * ((np.mgrid[0:height, 0:width][1] / width) - 0.5)  # (H, W)
    fill = np.array(colour, np.float32) * shade[..., None]  # (H, W, 3)
    on = mask.astype(bool)
    img[on] = fill[on]
    return on


def paint_distractors(img: np.ndarray, rng: np.random.Generator, count: int, max_extent: float) -> None:
    """Paints ``count`` small clutter marks into ``img`` in place: short strokes and small ellipses.

    Each mark takes the colour of a random shape class (its :data:`HUES` band), so the colours present in an image
    do not by themselves say which shape it shows.

    Args:
        img: (H, W, 3) float32 BGR image, changed in place.
        rng: Source of randomness for these marks.
        count: Number of marks.
        max_extent: Largest half-length of a mark in pixels (keep it well below the shapes' radius).
    """
    height, width = img.shape[:2]
    hues = list(HUES.values())
    for _ in range(count):
        hue = hues[int(rng.integers(len(hues)))] + rng.uniform(-HUE_JITTER, HUE_JITTER)
        colour = hsv_to_bgr(hue, rng.uniform(0.6, 1.0), rng.uniform(0.55, 1.0))
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        length = rng.uniform(0.4, 1.0) * max_extent
        angle = rng.uniform(0, 360)
        canvas = np.zeros((height, width), np.uint8)
        if rng.random() < 0.5:  # a stroke
            dx, dy = length * np.cos(np.radians(angle)), length * np.sin(np.radians(angle))
            cv2.line(canvas, (int(round(x - dx)), int(round(y - dy))), (int(round(x + dx)), int(round(y + dy))), 1,
                     thickness=int(rng.integers(1, 3)))
        else:  # a small elongated blob
            axes = (max(1, int(round(length))), max(1, int(round(length * rng.uniform(0.3, 0.7)))))
            cv2.ellipse(canvas, (int(round(x)), int(round(y))), axes, angle, 0, 360, 1, thickness=-1)
        img[canvas.astype(bool)] = colour


def add_noise(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Adds Gaussian pixel noise of a random strength (sigma 3-10) and rounds to an image.

    Args:
        img: (H, W, 3) float32 BGR image.
        rng: Source of randomness for this image.

    Returns:
        The (H, W, 3) uint8 image.
    """
    img = img + rng.normal(0, rng.uniform(3, 10), img.shape).astype(np.float32)
    return img.round().clip(0, 255).astype(np.uint8)
