"""Seeded synthetic detection scenes: coloured shapes on textured backgrounds, with exact boxes.

Each class is a shape with a typical hue (jittered, so shape and colour both carry the class); objects vary
in size, overlap (later objects occlude earlier ones), and each box is the tight box of the object's visible
pixels. Objects left less than ``MIN_VISIBLE`` visible are dropped. Same seed, same scenes, on every machine
(numpy's PCG64 and OpenCV's integer rasteriser).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["SHAPE_CLASSES", "render_scene", "render_scenes"]

SHAPE_CLASSES = ("circle", "square", "triangle", "cross", "ring")
_HUES = (0, 30, 60, 100, 140)  # OpenCV hue (0..180) per class, jittered by +-12
MIN_VISIBLE = 0.45


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Low-frequency colour noise plus stripes or a checkerboard, then pixel noise (uint8 BGR)."""
    import cv2

    coarse = rng.uniform(40, 200, size=(4, 4, 3)).astype(np.float32)
    img: np.ndarray = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    kind = rng.integers(3)
    period = rng.uniform(4, 12)
    if kind == 0:
        angle = rng.uniform(0, math.pi)
        tex = np.sin((xx * math.cos(angle) + yy * math.sin(angle)) * 2 * math.pi / period)
    elif kind == 1:
        tex = np.sign(np.sin(xx * math.pi / period) * np.sin(yy * math.pi / period))
    else:
        tex = np.zeros((h, w), np.float32)
    img += rng.uniform(5, 25) * tex[..., None]
    img += rng.normal(0, 6, size=img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def _shape_mask(
    cls: int, h: int, w: int, box: tuple[int, int, int, int], rng: np.random.Generator
) -> np.ndarray:
    """A filled mask of class ``cls`` drawn inside the integer box (x, y, side_w, side_h)."""
    import cv2

    x, y, bw, bh = box
    mask = np.zeros((h, w), np.uint8)
    cx, cy = x + bw // 2, y + bh // 2
    if cls == 0:  # circle
        cv2.ellipse(mask, (cx, cy), (bw // 2, bh // 2), 0, 0, 360, 1, -1)
    elif cls == 1:  # square (axis-aligned rectangle)
        cv2.rectangle(mask, (x, y), (x + bw - 1, y + bh - 1), 1, -1)
    elif cls == 2:  # triangle, apex up
        pts = np.array([[cx, y], [x, y + bh - 1], [x + bw - 1, y + bh - 1]], np.int32)
        cv2.fillPoly(mask, [pts], 1)
    elif cls == 3:  # cross
        t = max(2, bw // 3)
        cv2.rectangle(mask, (cx - t // 2, y), (cx - t // 2 + t - 1, y + bh - 1), 1, -1)
        t = max(2, bh // 3)
        cv2.rectangle(mask, (x, cy - t // 2), (x + bw - 1, cy - t // 2 + t - 1), 1, -1)
    else:  # ring
        cv2.ellipse(mask, (cx, cy), (bw // 2, bh // 2), 0, 0, 360, 1, max(2, min(bw, bh) // 5))
    return mask.astype(bool)


def _colour(cls: int, rng: np.random.Generator) -> np.ndarray:
    import cv2

    hue = (_HUES[cls] + rng.integers(-12, 13)) % 180
    hsv = np.array([[[hue, rng.integers(150, 256), rng.integers(150, 256)]]], np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32)


def render_scene(
    rng: np.random.Generator, size: int, *, max_objects: int = 4, num_classes: int = len(SHAPE_CLASSES)
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One scene: (uint8 BGR image (size, size, 3), boxes (M, 4) float32 xyxy pixels, labels (M,) int64)."""
    img = _background(rng, size, size).astype(np.float32)
    n = int(rng.integers(1, max_objects + 1))
    masks, labels = [], []
    for _ in range(n):
        cls = int(rng.integers(num_classes))
        side = int(rng.uniform(0.15, 0.5) * size)
        aspect = rng.uniform(0.75, 1.33)
        bw, bh = max(6, int(side * math.sqrt(aspect))), max(6, int(side / math.sqrt(aspect)))
        bw, bh = min(bw, size), min(bh, size)
        x, y = int(rng.integers(0, size - bw + 1)), int(rng.integers(0, size - bh + 1))
        mask = _shape_mask(cls, size, size, (x, y, bw, bh), rng)
        shade = rng.uniform(0.8, 1.0, size=(size, size, 1)).astype(np.float32)  # soft shading
        img = np.where(mask[..., None], _colour(cls, rng) * shade, img)
        masks.append(mask)
        labels.append(cls)
    boxes, keep = [], []
    covered = np.zeros((size, size), bool)
    for i in range(n - 1, -1, -1):  # front to back: what later objects hide is not visible
        visible = masks[i] & ~covered
        covered |= masks[i]
        total = int(masks[i].sum())
        if total == 0 or visible.sum() < MIN_VISIBLE * total:
            continue
        ys, xs = np.nonzero(visible)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
        keep.append(labels[i])
    img += rng.normal(0, 3, size=img.shape).astype(np.float32)
    out = np.clip(np.round(img), 0, 255).astype(np.uint8)
    return out, np.asarray(boxes[::-1], np.float32).reshape(-1, 4), np.asarray(keep[::-1], np.int64)


def render_scenes(
    n: int, size: int, seed: int, *, max_objects: int = 4
) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """``n`` scenes from one seed: images (n, size, size, 3) uint8 BGR, per-image boxes and labels."""
    rng = np.random.default_rng(seed)
    images = np.empty((n, size, size, 3), np.uint8)
    boxes, labels = [], []
    for i in range(n):
        images[i], b, lab = render_scene(rng, size, max_objects=max_objects)
        boxes.append(b)
        labels.append(lab)
    return images, boxes, labels
