"""Host-side detection math, numpy only (the deploy path): letterboxing, head decoding, NMS, ``Detections``.

Every target runs the same head graph and hands its raw output to these functions, so boxes are identical
across engines up to the head's own codes (docs/detection.md: why NMS runs here and not in the graph).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sdk.errors import InputError

__all__ = [
    "Detections",
    "DetectParams",
    "Letterbox",
    "letterbox_geometry",
    "letterbox_image",
    "decode",
    "nms",
    "postprocess",
    "HEAD_EXTRA",
]

HEAD_EXTRA = 5  # channels after the class logits: l, t, r, b distances (in strides), centerness logit
PAD_VALUE = 114  # grey border of letterboxed frames (train and deploy use the same value)


@dataclass(frozen=True)
class Detections:
    """The detections of one image: ``boxes`` (N, 4) float32 xyxy in the frame's pixels, ``scores`` (N,)
    float32, ``labels`` (N,) int64 class ids, ``class_names`` the bundle's labels (``names`` per box)."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        if not len(boxes) == len(scores) == len(labels):
            raise InputError(
                f"Detections need as many scores and labels as boxes, got {len(boxes)}, {len(scores)}, "
                f"{len(labels)}."
            )
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "class_names", tuple(self.class_names))

    @property
    def names(self) -> list[str]:
        """The class name of every box (its id as text where the bundle has no labels)."""
        n = self.class_names
        return [n[i] if 0 <= i < len(n) else str(int(i)) for i in self.labels]

    def __len__(self) -> int:
        return len(self.scores)

    def __repr__(self) -> str:
        return f"Detections({len(self)} boxes: {', '.join(self.names[:5])}{', ...' if len(self) > 5 else ''})"


@dataclass(frozen=True)
class DetectParams:
    """What turns the head's output into detections; recorded in the bundle so every target decodes alike.

    Attributes:
        num_classes: class channels at the front of the head output.
        stride: input pixels per head cell.
        score_thr: keep boxes scoring at least this (score = sqrt(sigmoid(cls) * sigmoid(centerness))).
        iou_thr: NMS suppresses a box overlapping a better one of its class by more than this.
        max_dets: at most this many boxes per image, best first.
        pre_nms: at most this many candidates enter NMS per image.
    """

    num_classes: int
    stride: int
    score_thr: float = 0.05
    iou_thr: float = 0.6
    max_dets: int = 100
    pre_nms: int = 1000

    def __post_init__(self) -> None:
        for name in ("num_classes", "stride", "max_dets", "pre_nms"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InputError(f"DetectParams.{name} must be an int >= 1, got {v!r}.")
        for name in ("score_thr", "iou_thr"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not 0.0 <= float(v) <= 1.0:
                raise InputError(f"DetectParams.{name} must be a number in [0, 1], got {v!r}.")
            object.__setattr__(self, name, float(v))

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DetectParams:
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise InputError(
                f"unknown detection postprocess fields {unknown}; known: {list(cls.__dataclass_fields__)}."
            )
        return cls(**dict(d))


@dataclass(frozen=True)
class Letterbox:
    """How one frame was letterboxed: network = frame * ``ratio`` + (``pad_x``, ``pad_y``)."""

    ratio: float
    pad_x: float
    pad_y: float
    frame_hw: tuple[int, int]

    def to_frame(self, boxes: np.ndarray) -> np.ndarray:
        """Network-pixel xyxy boxes -> the frame's pixels, clipped to the frame."""
        out = np.asarray(boxes, dtype=np.float32).reshape(-1, 4).copy()
        out[:, [0, 2]] = (out[:, [0, 2]] - self.pad_x) / self.ratio
        out[:, [1, 3]] = (out[:, [1, 3]] - self.pad_y) / self.ratio
        h, w = self.frame_hw
        out[:, [0, 2]] = out[:, [0, 2]].clip(0, w)
        out[:, [1, 3]] = out[:, [1, 3]].clip(0, h)
        return out

    def to_network(self, boxes: np.ndarray) -> np.ndarray:
        """The frame's xyxy boxes -> network pixels (for training targets)."""
        out = np.asarray(boxes, dtype=np.float32).reshape(-1, 4).copy()
        out[:, [0, 2]] = out[:, [0, 2]] * self.ratio + self.pad_x
        out[:, [1, 3]] = out[:, [1, 3]] * self.ratio + self.pad_y
        return out


def letterbox_geometry(frame_hw: tuple[int, int], size: tuple[int, int]) -> tuple[Letterbox, tuple[int, int]]:
    """The letterbox of a ``frame_hw`` frame into ``size`` (h, w): aspect kept, centred, grey border.

    Returns the geometry and the resized (h, w) before padding.
    """
    fh, fw = int(frame_hw[0]), int(frame_hw[1])
    if fh < 1 or fw < 1:
        raise InputError(f"cannot letterbox an empty frame of shape {frame_hw}.")
    r = min(size[0] / fh, size[1] / fw)
    nh, nw = max(1, round(fh * r)), max(1, round(fw * r))
    pad_y, pad_x = (size[0] - nh) // 2, (size[1] - nw) // 2
    return Letterbox(r, float(pad_x), float(pad_y), (fh, fw)), (nh, nw)


def letterbox_image(
    frame: np.ndarray, size: tuple[int, int], *, interpolation: int | None = None
) -> tuple[np.ndarray, Letterbox]:
    """Resize a uint8 HW[C] frame into ``size`` keeping its aspect ratio, padding with grey (114);
    ``interpolation`` is an OpenCV flag (default bilinear)."""
    import cv2

    geo, (nh, nw) = letterbox_geometry(frame.shape[:2], size)
    flag = cv2.INTER_LINEAR if interpolation is None else interpolation
    out = np.full((size[0], size[1], *frame.shape[2:]), PAD_VALUE, dtype=frame.dtype)
    resized = frame if (nh, nw) == frame.shape[:2] else cv2.resize(frame, (nw, nh), interpolation=flag)
    y, x = int(geo.pad_y), int(geo.pad_x)
    out[y : y + nh, x : x + nw] = resized.reshape(nh, nw, *frame.shape[2:])
    return out, geo


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free logistic


def decode(head: np.ndarray, params: DetectParams) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Raw head output (N, K+5, H, W) -> per image (boxes xyxy in network pixels, scores, labels) above
    ``score_thr``, best ``pre_nms`` first. Distances are in strides; negatives count as 0."""
    head = np.asarray(head, dtype=np.float32)
    k = params.num_classes
    if head.ndim != 4 or head.shape[1] != k + HEAD_EXTRA:
        raise InputError(
            f"detection head output must be (N, {k + HEAD_EXTRA}, H, W) for {k} classes, got {head.shape}."
        )
    n, _, h, w = head.shape
    s = float(params.stride)
    cy, cx = np.meshgrid(
        (np.arange(h, dtype=np.float32) + 0.5) * s, (np.arange(w, dtype=np.float32) + 0.5) * s, indexing="ij"
    )
    out = []
    for i in range(n):
        cls = _sigmoid(head[i, :k].reshape(k, -1))
        ctr = _sigmoid(head[i, k + 4].reshape(-1))
        scores = np.sqrt(cls * ctr[None])  # (K, HW)
        lab, loc = np.nonzero(scores >= params.score_thr)
        sc = scores[lab, loc]
        if len(sc) > params.pre_nms:
            top = np.argsort(-sc, kind="stable")[: params.pre_nms]
            lab, loc, sc = lab[top], loc[top], sc[top]
        dist = np.maximum(head[i, k : k + 4].reshape(4, -1)[:, loc], 0.0) * s
        x, y = cx.reshape(-1)[loc], cy.reshape(-1)[loc]
        boxes = np.stack([x - dist[0], y - dist[1], x + dist[2], y + dist[3]], axis=1).astype(np.float32)
        out.append((boxes, sc.astype(np.float32), lab.astype(np.int64)))
    return out


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of xyxy boxes (M, 4) x (N, 4) -> (M, N), in float64."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    iw = np.minimum(a[:, 2:3], b[:, 2]) - np.maximum(a[:, 0:1], b[:, 0])
    ih = np.minimum(a[:, 3:4], b[:, 3]) - np.maximum(a[:, 1:2], b[:, 1])
    inter = np.maximum(iw, 0.0) * np.maximum(ih, 0.0)
    area_a = np.maximum(a[:, 2] - a[:, 0], 0.0) * np.maximum(a[:, 3] - a[:, 1], 0.0)
    area_b = np.maximum(b[:, 2] - b[:, 0], 0.0) * np.maximum(b[:, 3] - b[:, 1], 0.0)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def nms(
    boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, iou_thr: float, max_dets: int
) -> np.ndarray:
    """Greedy class-aware NMS: indices of the kept boxes, best score first (ties: lower index first).

    One IoU matrix per class (boxes of different classes never suppress each other), then the best
    ``max_dets`` over all classes.
    """
    scores = np.asarray(scores)
    labels = np.asarray(labels)
    boxes = np.asarray(boxes, dtype=np.float64)
    kept: list[np.ndarray] = []
    for c in np.unique(labels):
        idx = np.nonzero(labels == c)[0]
        idx = idx[np.argsort(-scores[idx], kind="stable")]
        iou = box_iou(boxes[idx], boxes[idx])
        alive = np.ones(len(idx), bool)
        for i in range(len(idx)):
            if alive[i]:
                alive[i + 1 :] &= iou[i, i + 1 :] <= iou_thr
        kept.append(idx[alive])
    if not kept:
        return np.zeros(0, np.int64)
    keep = np.concatenate(kept)
    order = np.lexsort((keep, -scores[keep]))  # best score first, then lower index
    return keep[order][:max_dets].astype(np.int64)


def postprocess(
    head: np.ndarray,
    params: DetectParams,
    letterboxes: Sequence[Letterbox | None],
    class_names: Sequence[str] = (),
    *,
    run_nms: bool = True,
) -> list[Detections]:
    """Head output -> one ``Detections`` per image in its frame's pixels (``None``: network pixels)."""
    out = []
    for (boxes, scores, labels), geo in zip(decode(head, params), letterboxes, strict=True):
        if run_nms:
            keep = nms(boxes, scores, labels, params.iou_thr, params.max_dets)
            boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        if geo is not None:
            boxes = geo.to_frame(boxes)
        out.append(Detections(boxes, scores, labels, tuple(class_names)))
    return out
