"""COCO mAP through pycocotools: perfect detections score 1, misses and wrong classes score less."""

import numpy as np
import pytest

from sdk.detection.boxes import Detections
from sdk.detection.metrics import coco_map

pytest.importorskip("pycocotools")

TRUTH = [
    (np.array([[0, 0, 10, 10], [20, 20, 40, 30]], np.float32), np.array([0, 1])),
    (np.array([[5, 5, 15, 25]], np.float32), np.array([1])),
]


def _dets(boxes, labels):
    return Detections(np.asarray(boxes, np.float32), np.linspace(0.9, 0.5, len(labels)), labels)


def test_perfect_detections_score_one():
    dets = [_dets(b, lab) for b, lab in TRUTH]
    m = coco_map(TRUTH, dets, 2)
    assert m["map"] == pytest.approx(1.0) and m["map50"] == pytest.approx(1.0)


def test_wrong_class_and_loose_boxes_score_less():
    wrong = [_dets(b, 1 - lab) for b, lab in TRUTH]
    assert coco_map(TRUTH, wrong, 2)["map"] == pytest.approx(0.0)
    loose = [_dets(b + np.array([1, 1, 1, 1], np.float32), lab) for b, lab in TRUTH]
    m = coco_map(TRUTH, loose, 2)
    assert m["map50"] == pytest.approx(1.0) and 0.1 < m["map"] < 1.0


def test_no_detections_score_zero():
    assert coco_map(TRUTH, [_dets(np.zeros((0, 4)), np.zeros(0, int))] * 2, 2) == {"map": 0.0, "map50": 0.0}
