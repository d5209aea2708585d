"""``sdk.evaluate``: one entry point for models and deployed Predictors, classification or detection.

Detection returns ``{"map": mAP@[.5:.95], "map50": mAP@.5}`` (pycocotools) in each frame's own pixels;
classification returns top-1 accuracy (a float). A Predictor is evaluated without importing torch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from sdk.detection.boxes import Detections, postprocess
from sdk.detection.data import DetectionSet
from sdk.detection.metrics import coco_map
from sdk.errors import InputError

__all__ = ["evaluate", "detections_of", "map_metric"]


def _task_of(p_or_model: Any, data: Any) -> str:
    task = getattr(p_or_model, "task", None) or getattr(getattr(p_or_model, "manifest", None), "task", None)
    if task in ("classify", "detect"):
        return str(task)
    return "detect" if isinstance(_detection_set(data), DetectionSet) else "classify"


def _detection_set(data: Any) -> DetectionSet | None:
    """``data`` itself or the ``.dataset`` of a DataLoader over a DetectionSet."""
    if isinstance(data, DetectionSet):
        return data
    inner = getattr(data, "dataset", None)
    return inner if isinstance(inner, DetectionSet) else None


def _is_torch_module(obj: Any) -> bool:
    return any(c.__module__.startswith("torch.nn") and c.__name__ == "Module" for c in type(obj).__mro__)


def detections_of(
    model: Any, data: DetectionSet, *, batch_size: int = 32, **thresholds: float
) -> list[Detections]:
    """A torch detector's detections on every frame of ``data``, in the frames' pixels (eval mode)."""
    import torch

    params = model.params(**thresholds)
    was_training = model.training
    model.eval()
    out: list[Detections] = []
    try:
        with torch.no_grad():
            for start in range(0, len(data), batch_size):
                items = [data.item(i) for i in range(start, min(start + batch_size, len(data)))]
                x = torch.from_numpy(np.stack([it[0] for it in items]))
                head = model(x.to(next(model.parameters()).device)).float().cpu().numpy()
                out += postprocess(head, params, [it[2] for it in items], data.class_names)
    finally:
        model.train(was_training)
    return out


def _predictor_detections(p: Any, data: DetectionSet, batch_size: int) -> list[Detections]:
    out: list[Detections] = []
    for start in range(0, len(data), batch_size):
        frames = [data.frame(i) for i in range(start, min(start + batch_size, len(data)))]
        res = p.predict(frames)
        out += list(res)
    return out


def evaluate(p_or_model: Any, data: Any, *, batch_size: int = 32, device: Any = "cpu") -> Any:
    """Evaluate a model or Predictor on ``data``.

    Detection (a detector, or a Predictor of a "detect" bundle, on a ``DetectionSet`` or a loader over one):
    ``{"map", "map50"}``. Classification (``data`` yields ``(x, y)`` batches): top-1 accuracy.
    """
    task = _task_of(p_or_model, data)
    if task == "detect":
        ds = _detection_set(data)
        if ds is None:
            raise InputError(
                "detection evaluation needs a DetectionSet (sdk.data.shapes/coco/yolo) or a DataLoader over "
                f"one, got {type(data).__name__}."
            )
        if _is_torch_module(p_or_model):
            dets = detections_of(p_or_model.to(device), ds, batch_size=batch_size)
        else:
            dets = _predictor_detections(p_or_model, ds, batch_size)
        return coco_map(list(zip(ds.boxes, ds.labels)), dets, ds.num_classes)
    if _is_torch_module(p_or_model):
        from sdk.training import evaluate as top1

        return top1(p_or_model, data, device=device)
    return _predictor_top1(p_or_model, data)


def _predictor_top1(p: Any, data: Iterable[Sequence[Any]]) -> float:
    correct = seen = 0
    for x, y in data:
        logits = p.predict(np.asarray(x, dtype=np.float32))
        labels = np.asarray(y).reshape(-1)
        correct += int((np.asarray(logits).argmax(1) == labels).sum())
        seen += len(labels)
    if seen == 0:
        raise InputError("evaluation data yielded no samples; pass a non-empty loader.")
    return correct / seen


def map_metric(model: Any, loader: Any) -> float:
    """mAP@[.5:.95] of a detector on a loader over a DetectionSet: the ``metric_fn`` of ``sdk.train``/
    ``sdk.retrain`` for detection (higher is better, like top-1)."""
    return float(evaluate(model, loader)["map"])
