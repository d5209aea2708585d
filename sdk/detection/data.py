"""Detection data: a dataset of frames with boxes, the synthetic ``shapes`` scenes, COCO and YOLO loaders.

A ``DetectionSet`` holds frames (uint8 BGR arrays or image paths, any sizes) with boxes in each frame's
pixels. Indexing letterboxes a frame to the network size and yields ``(x, target)``: ``x`` float32
(3, H, W) normalized as ``(rgb / 255 - mean) / std``, ``target`` float32 (M, 5) rows
``[label, x1, y1, x2, y2]`` in network pixels. ``loader()`` batches them with ``collate`` (targets padded
with label -1), so a training loop sees plain ``(x, y)`` tensors. Numpy only at import: torch is imported
by ``loader``/``collate``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sdk.detection.boxes import Letterbox, letterbox_image
from sdk.detection.scenes import SHAPE_CLASSES, render_scenes
from sdk.errors import InputError

__all__ = ["DetectionSet", "shapes", "coco", "yolo", "collate", "DET_MEAN", "DET_STD"]

DET_MEAN = (0.5, 0.5, 0.5)  # fixed normalization of every detection set (RGB, after /255)
DET_STD = (0.25, 0.25, 0.25)
SCALE = 1.0 / 255.0
IMAGE_EXTS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
Frame = np.ndarray | Path


class DetectionSet:
    """Frames with per-frame boxes (xyxy, frame pixels) and labels; items are letterboxed network inputs."""

    def __init__(
        self,
        frames: Sequence[Frame],
        boxes: Sequence[np.ndarray],
        labels: Sequence[np.ndarray],
        class_names: Sequence[str],
        *,
        size: tuple[int, int] | int = 64,
    ) -> None:
        if not len(frames) == len(boxes) == len(labels):
            raise InputError("DetectionSet needs one boxes and one labels array per frame.")
        self.frames = list(frames)
        self.boxes = [np.asarray(b, np.float32).reshape(-1, 4) for b in boxes]
        self.labels = [np.asarray(lab, np.int64).reshape(-1) for lab in labels]
        self.class_names = tuple(str(c) for c in class_names)
        self.size = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        self.mean, self.std = DET_MEAN, DET_STD

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (1, 3, *self.size)

    def __len__(self) -> int:
        return len(self.frames)

    def frame(self, i: int) -> np.ndarray:
        """Frame ``i`` as a uint8 HWC BGR array (read from disk for path-backed sets)."""
        f = self.frames[i]
        if isinstance(f, np.ndarray):
            return f
        import cv2

        img = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if img is None:
            raise InputError(f"cannot read image {f}; check the file exists and is a valid image.")
        return img

    def normalize(self, img: np.ndarray) -> np.ndarray:
        """A letterboxed uint8 BGR image -> float32 (3, H, W) network input."""
        rgb = img[..., ::-1].astype(np.float32)  # the arithmetic of sdk.Preprocess, so deployment matches
        x = (rgb * np.float32(SCALE) - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(x.transpose(2, 0, 1))

    def letterboxed(self, i: int) -> tuple[np.ndarray, Letterbox]:
        return letterbox_image(self.frame(i), self.size)

    def item(self, i: int) -> tuple[np.ndarray, np.ndarray, Letterbox]:
        """Network input, target rows [label, x1, y1, x2, y2] in network pixels, and the letterbox used."""
        img, geo = self.letterboxed(i)
        boxes = geo.to_network(self.boxes[i])
        target = np.concatenate([self.labels[i][:, None].astype(np.float32), boxes], axis=1)
        return self.normalize(img), target.reshape(-1, 5), geo

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        x, target, _ = self.item(i)
        return x, target

    def subset(self, idx: Sequence[int]) -> DetectionSet:
        idx = [int(i) for i in idx]
        return DetectionSet(
            [self.frames[i] for i in idx],
            [self.boxes[i] for i in idx],
            [self.labels[i] for i in idx],
            self.class_names,
            size=self.size,
        )

    def split(self, fraction: float = 0.6, *, seed: int = 0) -> tuple[DetectionSet, DetectionSet]:
        """A seeded (fraction, 1 - fraction) split, e.g. BP-NAS's weights/architecture halves."""
        if not 0.0 < fraction < 1.0:
            raise InputError(f"split fraction must lie in (0, 1), got {fraction!r}.")
        perm = np.random.default_rng(seed).permutation(len(self))
        k = max(1, min(len(self) - 1, round(fraction * len(self))))
        return self.subset(sorted(perm[:k])), self.subset(sorted(perm[k:]))

    def preprocess(self) -> Any:
        """The deploy-time ``sdk.Preprocess`` of this set: letterbox to ``size``, the same normalization."""
        from sdk.preprocess import Preprocess

        return Preprocess(size=self.size, mean=self.mean, std=self.std, scale=SCALE, resize="letterbox")

    def loader(self, batch_size: int = 32, *, shuffle: bool = False, seed: int = 0) -> Any:
        """A torch DataLoader of ``(x (N,3,H,W), y (N,M,5))`` batches (``collate``)."""
        import torch
        from torch.utils.data import DataLoader

        gen = torch.Generator().manual_seed(seed)
        return DataLoader(self, batch_size=batch_size, shuffle=shuffle, collate_fn=collate, generator=gen)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"DetectionSet({len(self)} frames, {self.num_classes} classes, size={self.size})"


def collate(batch: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[Any, Any]:
    """Stack inputs; pad each image's (M, 5) targets to the batch's largest M with label -1 rows."""
    import torch

    x = torch.from_numpy(np.stack([b[0] for b in batch]))
    m = max([len(b[1]) for b in batch] + [1])
    y = np.zeros((len(batch), m, 5), np.float32)
    y[:, :, 0] = -1
    for i, (_, t) in enumerate(batch):
        y[i, : len(t)] = t
    return x, torch.from_numpy(y)


def shapes(
    n_train: int = 1000, n_val: int = 200, size: int = 64, seed: int = 0, *, max_objects: int = 4
) -> tuple[DetectionSet, DetectionSet]:
    """Seeded synthetic scenes (``scenes.SHAPE_CLASSES`` on textured backgrounds), nothing downloaded.

    Train and val come from independent streams of ``seed``, so the val set is the same for every
    ``n_train``.
    """
    for name, v, lo in (("n_train", n_train, 1), ("n_val", n_val, 1), ("size", size, 16)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise InputError(f"shapes {name} must be an int >= {lo}, got {v!r}.")
    s_train, s_val = np.random.SeedSequence(seed).spawn(2)
    sets = []
    for n, ss in ((n_train, s_train), (n_val, s_val)):
        imgs, boxes, labels = render_scenes(n, size, int(ss.generate_state(1)[0]), max_objects=max_objects)
        sets.append(DetectionSet(list(imgs), boxes, labels, SHAPE_CLASSES, size=size))
    return sets[0], sets[1]


def _bad(where: str, problem: str, fix: str) -> InputError:
    return InputError(f"{where}: {problem}; {fix}")


def coco(
    images_dir: str | os.PathLike[str], annotations_json: str | os.PathLike[str], *, size: int = 64
) -> DetectionSet:
    """A COCO detection set: ``annotations_json`` (images, annotations with ``bbox`` [x, y, w, h] in pixels,
    categories) over the files in ``images_dir``. Category ids map to contiguous class ids in id order;
    crowd annotations are skipped."""
    path, root = Path(annotations_json), Path(images_dir)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"cannot read COCO annotations {path}: {e}; pass a COCO instances JSON file.") from e
    if not isinstance(doc, dict) or not all(isinstance(doc.get(k), list) for k in ("images", "categories")):
        raise InputError(f"{path}: not a COCO detection file (needs 'images' and 'categories' lists).")
    cats = sorted(doc["categories"], key=lambda c: c["id"])
    cat_index = {c["id"]: i for i, c in enumerate(cats)}
    images = {}
    for i, im in enumerate(doc["images"]):
        try:
            images[im["id"]] = (root / im["file_name"], float(im["width"]), float(im["height"]))
        except (KeyError, TypeError, ValueError):
            raise _bad(
                f"{path} images[{i}]", "needs id, file_name, width and height", "fix the entry"
            ) from None
    per_image: dict[Any, list[tuple[int, list[float]]]] = {k: [] for k in images}
    for i, ann in enumerate(doc.get("annotations", [])):
        where = f"{path} annotations[{i}] (id {ann.get('id')})"
        if ann.get("iscrowd", 0):
            continue
        if ann.get("image_id") not in images:
            raise _bad(where, f"image_id {ann.get('image_id')!r} is not in 'images'", "fix the image_id")
        if ann.get("category_id") not in cat_index:
            raise _bad(
                where,
                f"unknown category_id {ann.get('category_id')!r} (known: {sorted(cat_index)})",
                "add the category or fix the id",
            )
        _, w, h = images[ann["image_id"]]
        bbox = ann.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, (int, float)) for v in bbox)):
            raise _bad(where, f"bbox must be [x, y, width, height] numbers, got {bbox!r}", "fix the bbox")
        x, y, bw, bh = (float(v) for v in bbox)
        if bw <= 0 or bh <= 0 or x < 0 or y < 0 or x + bw > w + 0.5 or y + bh > h + 0.5:
            raise _bad(
                where,
                f"bbox {bbox} is empty or outside its {w:g}x{h:g} image",
                "boxes are [x, y, width, height] in pixels inside the image",
            )
        per_image[ann["image_id"]].append((cat_index[ann["category_id"]], [x, y, x + bw, y + bh]))
    ids = sorted(images)
    missing = [str(images[k][0]) for k in ids if not images[k][0].is_file()]
    if missing:
        raise InputError(
            f"{len(missing)} images listed in {path} are missing, e.g. {missing[0]}; check images_dir."
        )
    boxes = [np.asarray([b for _, b in per_image[k]], np.float32).reshape(-1, 4) for k in ids]
    labels = [np.asarray([c for c, _ in per_image[k]], np.int64) for k in ids]
    names = [str(c.get("name", c["id"])) for c in cats]
    return DetectionSet([images[k][0] for k in ids], boxes, labels, names, size=size)


def _yolo_names(root: Path) -> list[str] | None:
    """Class names from ``root/classes.txt`` (one per line) or the ``names:`` entry of ``root/data.yaml``."""
    txt = root / "classes.txt"
    if txt.is_file():
        return [ln.strip() for ln in txt.read_text(encoding="utf-8").splitlines() if ln.strip()]
    yml = root / "data.yaml"
    if not yml.is_file():
        return None
    lines = yml.read_text(encoding="utf-8").splitlines()
    for i, ln in enumerate(lines):
        if not ln.startswith("names:"):
            continue
        rest = ln[len("names:") :].strip()
        if rest.startswith("["):
            return [n.strip().strip("'\"") for n in rest.strip("[]").split(",") if n.strip()]
        names = []
        for item in lines[i + 1 :]:
            if not item.startswith((" ", "\t", "-")) or not item.strip():
                break
            names.append(item.strip().lstrip("-").split(":", 1)[-1].strip().strip("'\""))
        return names
    return None


def _read_yolo_labels(path: Path, num_classes: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(labels, normalized cxcywh) of one YOLO label file; bad lines raise naming file and line."""
    cls, rows = [], []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        where = f"{path}:{n}"
        if len(parts) != 5:
            raise _bad(where, f"expected 'class cx cy w h', got {line.strip()!r}", "fix the line")
        try:
            c, vals = float(parts[0]), [float(v) for v in parts[1:]]
        except ValueError:
            raise _bad(where, f"non-numeric field in {line.strip()!r}", "fix the line") from None
        if c != int(c) or c < 0 or (num_classes is not None and c >= num_classes):
            known = f" (the set has {num_classes} classes)" if num_classes is not None else ""
            raise _bad(
                where, f"unknown class id {parts[0]}{known}", "use ids 0..num_classes-1 or fix the names"
            )
        cx, cy, w, h = vals
        if (
            w <= 0
            or h <= 0
            or cx - w / 2 < -1e-6
            or cy - h / 2 < -1e-6
            or cx + w / 2 > 1 + 1e-6
            or cy + h / 2 > 1 + 1e-6
        ):
            raise _bad(
                where,
                f"box {vals} is empty or outside the image",
                "YOLO boxes are normalized cx cy w h with the whole box inside [0, 1]",
            )
        cls.append(int(c))
        rows.append(vals)
    return np.asarray(cls, np.int64), np.asarray(rows, np.float32).reshape(-1, 4)


def yolo(
    root: str | os.PathLike[str], *, split: str | None = None, size: int = 64, num_classes: int | None = None
) -> DetectionSet:
    """A YOLO txt set: ``root/images[/split]/*.jpg`` with ``root/labels[/split]/<stem>.txt`` (one
    ``class cx cy w h`` line per box, normalized; a missing file means no objects). Class names come from
    ``root/classes.txt`` or ``root/data.yaml``; without them ``num_classes`` (or the largest id) decides."""
    import cv2

    base = Path(root)
    img_dir = base / "images" / split if split else base / "images"
    lab_dir = base / "labels" / split if split else base / "labels"
    if not img_dir.is_dir():
        raise InputError(
            f"no image folder {img_dir}; a YOLO set is ROOT/images[/SPLIT] + ROOT/labels[/SPLIT]."
        )
    files = sorted(p for p in img_dir.iterdir() if p.suffix.lower() in IMAGE_EXTS)
    if not files:
        subs = sorted(p.name for p in img_dir.iterdir() if p.is_dir())
        hint = f" pass split= one of {subs}" if subs else " add images"
        raise InputError(f"no images in {img_dir};{hint}.")
    names = _yolo_names(base)
    k = len(names) if names is not None else num_classes
    boxes, labels = [], []
    for f in files:
        lab_file = lab_dir / f"{f.stem}.txt"
        cls, rows = (
            _read_yolo_labels(lab_file, k)
            if lab_file.is_file()
            else (np.zeros(0, np.int64), np.zeros((0, 4), np.float32))
        )
        hw = cv2.imread(str(f), cv2.IMREAD_UNCHANGED)
        if hw is None:
            raise InputError(f"cannot read image {f}; check the file is a valid image.")
        h, w = hw.shape[:2]
        xyxy = np.stack(
            [
                (rows[:, 0] - rows[:, 2] / 2) * w,
                (rows[:, 1] - rows[:, 3] / 2) * h,
                (rows[:, 0] + rows[:, 2] / 2) * w,
                (rows[:, 1] + rows[:, 3] / 2) * h,
            ],
            axis=1,
        ).clip(0, [w, h, w, h])
        boxes.append(xyxy.astype(np.float32))
        labels.append(cls)
    if names is None:
        top = max([int(lab.max()) for lab in labels if len(lab)] + [-1]) + 1
        names = [str(i) for i in range(max(top, num_classes or 0))]
    return DetectionSet(files, boxes, labels, names, size=size)
