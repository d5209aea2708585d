"""sdk.evaluate: mAP for detectors (models and anything with predict), top-1 for classifiers."""

import numpy as np
import pytest
import torch

import sdk
from sdk.detection.boxes import Detections
from sdk.detection.data import shapes

pytest.importorskip("pycocotools")


class _Oracle:
    """A stand-in Predictor of a detect bundle that returns the ground truth of the frames it is given."""

    task = "detect"

    def __init__(self, data):
        self.by_frame = {f.tobytes(): (b, lab) for f, b, lab in zip(data.frames, data.boxes, data.labels)}

    def predict(self, frames):
        return [
            Detections(*(lambda b, lab: (b, np.ones(len(b)), lab))(*self.by_frame[f.tobytes()]))
            for f in frames
        ]


def test_predictor_like_detector_scores_perfectly():
    _, val = shapes(n_train=1, n_val=5, size=32, seed=1)
    assert sdk.evaluate(_Oracle(val), val) == {"map": pytest.approx(1.0), "map50": pytest.approx(1.0)}


def test_untrained_detector_scores_low_and_accepts_a_loader():
    _, val = shapes(n_train=1, n_val=4, size=32, seed=1)
    model = sdk.models.create("fcos_resnet8", num_classes=5)
    m = sdk.evaluate(model, val.loader(2))
    assert set(m) == {"map", "map50"} and 0.0 <= m["map"] < 0.2 and model.training


def test_classification_is_top1():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    x = torch.randn(10, 4)
    y = model(x).argmax(1)
    assert sdk.evaluate(model, [(x, y)]) == 1.0

    class _P:
        def predict(self, batch):
            return model(torch.from_numpy(batch)).detach().numpy()

    assert sdk.evaluate(_P(), [(x.numpy(), (1 - y).numpy())]) == 0.0


def test_detection_needs_a_detection_set():
    with pytest.raises(sdk.InputError, match="DetectionSet"):
        sdk.evaluate(sdk.models.create("fcos_resnet8"), [(torch.zeros(1, 3, 32, 32), torch.zeros(1))])


def test_map_metric_is_the_map_of_evaluate():
    from sdk.evaluation import map_metric

    _, val = shapes(n_train=1, n_val=3, size=32, seed=2)
    model = sdk.models.create("fcos_resnet8", num_classes=5)
    loader = val.loader(3)
    assert map_metric(model, loader) == sdk.evaluate(model, loader)["map"]
