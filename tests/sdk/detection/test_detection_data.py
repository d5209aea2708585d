"""Detection data: seeded synthetic scenes, COCO and YOLO loaders with clear label errors, collate."""

import json

import cv2
import numpy as np
import pytest

import sdk
from sdk.detection.data import DetectionSet, coco, collate, shapes, yolo
from sdk.errors import InputError


def test_shapes_is_seeded_and_boxes_are_exact():
    a, va = shapes(n_train=6, n_val=3, size=48, seed=3)
    b, _ = shapes(n_train=6, n_val=3, size=48, seed=3)
    c, _ = shapes(n_train=6, n_val=3, size=48, seed=4)
    assert np.array_equal(np.stack(a.frames), np.stack(b.frames))
    assert not np.array_equal(np.stack(a.frames), np.stack(c.frames))
    assert len(va) == 3 and a.num_classes == 5 and a.class_names[0] == "circle"
    for boxes, labels in zip(a.boxes, a.labels):
        assert len(boxes) == len(labels) >= 1
        assert (
            (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= 48).all() and (boxes[:, 2:] > boxes[:, :2]).all()
        )
        assert ((labels >= 0) & (labels < 5)).all()
    x, t = a[0]
    assert x.shape == (3, 48, 48) and x.dtype == np.float32 and t.shape == (len(a.boxes[0]), 5)


def test_sdk_data_reexports():
    assert sdk.data.shapes is shapes and sdk.data.coco is coco and sdk.data.yolo is yolo


def test_collate_pads_with_minus_one():
    batch = [
        (np.zeros((3, 8, 8), np.float32), np.ones((2, 5), np.float32)),
        (np.zeros((3, 8, 8), np.float32), np.zeros((0, 5), np.float32)),
    ]
    x, y = collate(batch)
    assert tuple(x.shape) == (2, 3, 8, 8) and tuple(y.shape) == (2, 2, 5)
    assert y[1, :, 0].tolist() == [-1, -1] and y[0, :, 0].tolist() == [1, 1]


def test_letterboxed_targets_follow_the_frame(tmp_path):
    frame = np.zeros((20, 40, 3), np.uint8)
    ds = DetectionSet([frame], [np.array([[0, 0, 40, 20]])], [np.array([1])], ["a", "b"], size=32)
    _, t = ds[0]
    np.testing.assert_allclose(t, [[1, 0, 8, 32, 24]])
    tr, va = ds.subset([0, 0, 0, 0]).split(0.5, seed=0)
    assert len(tr) == 2 and len(va) == 2


def _coco_doc(bbox, category=1):
    return {
        "images": [{"id": 7, "file_name": "a.png", "width": 20, "height": 10}],
        "annotations": [{"id": 3, "image_id": 7, "category_id": category, "bbox": bbox}],
        "categories": [{"id": 1, "name": "cat"}, {"id": 4, "name": "dog"}],
    }


def test_coco_loads_and_maps_categories(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((10, 20, 3), np.uint8))
    (tmp_path / "ann.json").write_text(json.dumps(_coco_doc([2, 1, 5, 4], category=4)))
    ds = coco(tmp_path, tmp_path / "ann.json", size=32)
    assert ds.class_names == ("cat", "dog") and ds.labels[0].tolist() == [1]
    np.testing.assert_allclose(ds.boxes[0], [[2, 1, 7, 5]])
    assert ds.frame(0).shape == (10, 20, 3)


@pytest.mark.parametrize(
    ("bbox", "category", "match"),
    [
        ([15, 1, 8, 4], 1, r"annotations\[0\] \(id 3\).*outside its 20x10"),
        ([1, 1, 2, 2], 9, "unknown category_id 9"),
    ],
)
def test_coco_bad_labels_name_the_annotation(tmp_path, bbox, category, match):
    (tmp_path / "ann.json").write_text(json.dumps(_coco_doc(bbox, category)))
    with pytest.raises(InputError, match=match):
        coco(tmp_path, tmp_path / "ann.json")


def _yolo_root(tmp_path, label_text, names="a\nb\n"):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "f.png"), np.zeros((10, 20, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "images" / "g.png"), np.zeros((10, 20, 3), np.uint8))
    (tmp_path / "labels" / "f.txt").write_text(label_text)
    (tmp_path / "classes.txt").write_text(names)
    return tmp_path


def test_yolo_loads_normalized_boxes(tmp_path):
    ds = yolo(_yolo_root(tmp_path, "1 0.5 0.5 0.5 0.4\n\n"), size=32)
    assert ds.class_names == ("a", "b") and len(ds) == 2
    np.testing.assert_allclose(ds.boxes[0], [[5, 3, 15, 7]], atol=1e-5)
    assert len(ds.boxes[1]) == 0  # no label file: no objects


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("0 0.5 0.5 0.1 0.1\n2 0.5 0.5 0.1 0.1\n", r"f\.txt:2: unknown class id 2 \(the set has 2 classes\)"),
        ("0 0.9 0.5 0.4 0.1\n", r"f\.txt:1: box .* outside the image"),
        ("0 0.5 0.5 0.1\n", r"f\.txt:1: expected 'class cx cy w h'"),
    ],
)
def test_yolo_bad_labels_name_file_and_line(tmp_path, text, match):
    with pytest.raises(InputError, match=match):
        yolo(_yolo_root(tmp_path, text))


def test_yolo_names_from_data_yaml(tmp_path):
    root = _yolo_root(tmp_path, "1 0.5 0.5 0.5 0.4\n")
    (root / "classes.txt").unlink()
    (root / "data.yaml").write_text("path: .\nnames:\n  0: person\n  1: robot\n")
    assert yolo(root).class_names == ("person", "robot")
    (root / "data.yaml").write_text("names: ['x', 'y', 'z']\n")
    assert yolo(root).class_names == ("x", "y", "z")


def test_normalization_matches_the_deploy_preprocess():
    from sdk.preprocess import Preprocess

    train, _ = shapes(n_train=2, n_val=1, size=32, seed=0)
    pre = Preprocess(size=(32, 32), mean=train.mean, std=train.std)
    np.testing.assert_array_equal(train[1][0], pre(train.frame(1))[0])


def test_letterbox_preprocess_matches_the_training_inputs():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, size=(20, 40, 3), dtype=np.uint8)
    ds = DetectionSet([frame], [np.zeros((0, 4))], [np.zeros(0, int)], ["a"], size=32)
    pre = ds.preprocess()
    assert pre.resize == "letterbox" and pre.to_dict()["resize"] == "letterbox"
    np.testing.assert_array_equal(ds[0][0], pre(frame)[0])
    with pytest.raises(InputError, match="resize"):
        type(pre)(size=(32, 32), resize="crop")
