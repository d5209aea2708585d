"""The Predictor's detect step on hand-made outputs: parameters from the manifest, boxes in frame pixels."""

from types import SimpleNamespace

import numpy as np
import pytest

from sdk.detection.boxes import HEAD_EXTRA, DetectParams
from sdk.detection.serve import detect_params, detections_from_outputs, network_size
from sdk.errors import BundleError


def _manifest(post=None, pre=None):
    post = DetectParams(num_classes=2, stride=8, score_thr=0.5).to_dict() if post is None else post
    return SimpleNamespace(
        output=SimpleNamespace(name="head"),
        input=SimpleNamespace(shape=(None, 3, 32, 32)),
        postprocess=post,
        preprocess=pre,
        labels=("cat", "dog"),
    )


def _head() -> np.ndarray:
    head = np.full((2, 2 + HEAD_EXTRA, 4, 4), -10.0, np.float32)
    head[:, 2 + 4] = 10.0
    head[:, 1, 1, 1] = 10.0  # a dog centred at (12, 12), 4 px to each side
    head[:, 2:6, 1, 1] = 0.5
    return head


def test_boxes_map_to_each_frame_or_stay_in_network_pixels():
    m = _manifest(pre={"size": [32, 32], "resize": "letterbox"})
    frame_box, net_box = detections_from_outputs({"head": _head()}, m, [(16, 64), None])
    assert frame_box.names == ["dog"] and net_box.names == ["dog"]
    np.testing.assert_allclose(net_box.boxes, [[8, 8, 16, 16]])
    # 16x64 letterboxed into 32x32: ratio 0.5, pad_y 12 -> (8-0)/0.5, (8-12)/0.5 clipped at 0
    np.testing.assert_allclose(frame_box.boxes, [[16, 0, 32, 8]])


def test_network_size_and_bad_parameters():
    assert network_size(_manifest()) == (32, 32)
    assert network_size(_manifest(pre={"size": [48, 64]})) == (48, 64)
    with pytest.raises(BundleError, match="no postprocess"):
        detect_params(_manifest(post={}))
    with pytest.raises(BundleError, match="invalid"):
        detect_params(_manifest(post={"num_classes": 0, "stride": 8}))
