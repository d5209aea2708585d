"""COCO box mAP through pycocotools (the standard tool, not a hand-written AP). Torch-free."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from sdk.detection.boxes import Detections
from sdk.errors import TargetUnavailable

__all__ = ["coco_map"]


def _coco_tools() -> tuple[Any, Any]:
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError as e:
        raise TargetUnavailable(
            "detection metrics need pycocotools; install the 'detect' extra: pip install 'bpnas[detect]'."
        ) from e
    return COCO, COCOeval


def coco_map(
    truth: Sequence[tuple[np.ndarray, np.ndarray]], detections: Sequence[Detections], num_classes: int
) -> dict[str, float]:
    """{"map": mAP@[.5:.95], "map50": mAP@.5} of ``detections`` against ``truth`` (boxes xyxy, labels) per
    image, both in the same pixels. Images without ground truth count; no detections at all scores 0."""
    COCO, COCOeval = _coco_tools()
    if len(truth) != len(detections):
        raise ValueError(f"{len(truth)} ground-truth images but {len(detections)} detection results")
    images: list[dict[str, Any]] = []
    anns: list[dict[str, Any]] = []
    dets: list[dict[str, Any]] = []
    for i, ((boxes, labels), d) in enumerate(zip(truth, detections)):
        images.append({"id": i})
        for b, c in zip(np.asarray(boxes, np.float64).reshape(-1, 4), labels):
            w, h = b[2] - b[0], b[3] - b[1]
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i,
                    "category_id": int(c),
                    "iscrowd": 0,
                    "bbox": [b[0], b[1], w, h],
                    "area": w * h,
                }
            )
        for b, s, c in zip(d.boxes.astype(np.float64), d.scores, d.labels):
            dets.append(
                {
                    "image_id": i,
                    "category_id": int(c),
                    "score": float(s),
                    "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]],
                }
            )
    if not dets or not anns:
        return {"map": 0.0, "map50": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {
            "images": images,
            "annotations": anns,
            "categories": [{"id": k, "name": str(k)} for k in range(num_classes)],
        }
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(dets), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {"map": float(max(ev.stats[0], 0.0)), "map50": float(max(ev.stats[1], 0.0))}
