"""Host-side detection math: letterbox geometry round trip, decoding, NMS, Detections."""

import numpy as np
import pytest

from sdk.detection.boxes import (
    HEAD_EXTRA,
    Detections,
    DetectParams,
    box_iou,
    decode,
    letterbox_geometry,
    letterbox_image,
    nms,
    postprocess,
)
from sdk.errors import InputError


def test_letterbox_keeps_aspect_and_round_trips_boxes():
    frame = np.zeros((30, 60, 3), np.uint8)
    frame[10:20, 20:40] = 255
    img, geo = letterbox_image(frame, (32, 32))
    assert img.shape == (32, 32, 3) and geo.ratio == pytest.approx(32 / 60)
    assert geo.pad_x == 0 and geo.pad_y == pytest.approx(8)
    assert (img[:8] == 114).all() and (img[-8:] == 114).all()  # grey bars above and below
    boxes = np.array([[20, 10, 40, 20], [0, 0, 60, 30]], np.float32)
    np.testing.assert_allclose(geo.to_frame(geo.to_network(boxes)), boxes, atol=1e-4)
    ys, xs = np.nonzero(img[..., 0] == 255)
    net = geo.to_network(boxes[:1])[0]
    assert abs(xs.min() - net[0]) <= 1 and abs(ys.min() - net[1]) <= 1


def test_letterbox_geometry_refuses_empty_frames():
    with pytest.raises(InputError, match="empty"):
        letterbox_geometry((0, 10), (32, 32))


def _head(k: int, h: int = 4, w: int = 4) -> np.ndarray:
    head = np.full((1, k + HEAD_EXTRA, h, w), -10.0, np.float32)
    head[:, k + 4] = 10.0  # centerness ~1
    return head


def test_decode_places_a_box_around_its_cell():
    params = DetectParams(num_classes=3, stride=8, score_thr=0.5)
    head = _head(3)
    head[0, 2, 1, 2] = 10.0  # class 2 at row 1, col 2: centre (20, 12)
    head[0, 3:7, 1, 2] = [1.0, 0.5, 2.0, 1.5]  # l, t, r, b in strides
    [(boxes, scores, labels)] = decode(head, params)
    np.testing.assert_allclose(boxes, [[12.0, 8.0, 36.0, 24.0]])
    assert labels.tolist() == [2] and scores[0] > 0.99


def test_decode_clamps_negative_distances_and_checks_shape():
    params = DetectParams(num_classes=1, stride=4, score_thr=0.5)
    head = _head(1)
    head[0, 0, 0, 0] = 10.0
    head[0, 1:5, 0, 0] = -3.0
    [(boxes, _, _)] = decode(head, params)
    np.testing.assert_allclose(boxes, [[2.0, 2.0, 2.0, 2.0]])
    with pytest.raises(InputError, match=r"\(N, 6, H, W\)"):
        decode(np.zeros((1, 5, 2, 2), np.float32), params)


def test_nms_is_class_aware_and_ordered():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [0, 0, 10, 10], [20, 20, 30, 30]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.95], np.float32)
    labels = np.array([0, 0, 1, 0])
    assert nms(boxes, scores, labels, 0.5, 100).tolist() == [3, 0, 2]
    assert nms(boxes, scores, labels, 0.5, 2).tolist() == [3, 0]
    assert nms(boxes, scores, labels, 0.95, 100).tolist() == [3, 0, 1, 2]


def test_box_iou():
    iou = box_iou(np.array([[0, 0, 2, 2]]), np.array([[1, 1, 3, 3], [0, 0, 2, 2], [5, 5, 5, 5]]))
    np.testing.assert_allclose(iou, [[1 / 7, 1.0, 0.0]])


def test_postprocess_maps_to_frame_pixels():
    frame = np.zeros((16, 32, 3), np.uint8)
    _, geo = letterbox_image(frame, (32, 32))  # ratio 1, pad_y 8
    params = DetectParams(num_classes=1, stride=8, score_thr=0.5)
    head = _head(1)
    head[0, 0, 1, 1] = 10.0
    head[0, 1:5, 1, 1] = 0.5  # centre (12, 12), half-side 4
    [d] = postprocess(head, params, [geo], ["thing"])
    np.testing.assert_allclose(d.boxes, [[8.0, 0.0, 16.0, 8.0]])
    assert d.names == ["thing"] and d.labels.dtype == np.int64 and d.boxes.dtype == np.float32


def test_detections_validate_and_name():
    d = Detections(np.zeros((2, 4)), [0.5, 0.4], [1, 7], ("a", "b"))
    assert len(d) == 2 and d.names == ["b", "7"]
    with pytest.raises(InputError, match="as many"):
        Detections(np.zeros((2, 4)), [0.5], [1, 2])


def test_detect_params_round_trip_and_validation():
    p = DetectParams(num_classes=5, stride=8, score_thr=0.3)
    assert DetectParams.from_dict(p.to_dict()) == p
    with pytest.raises(InputError, match="iou_thr"):
        DetectParams(num_classes=5, stride=8, iou_thr=1.5)
    with pytest.raises(InputError, match="unknown"):
        DetectParams.from_dict({**p.to_dict(), "nms": "graph"})
