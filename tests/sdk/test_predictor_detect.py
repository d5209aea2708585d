"""Detection bundles end to end on a tiny untrained detector: export records the task, the Predictor returns
sdk.Detections in each frame's pixels for frames, paths, lists and batches on every available target, the
boxes equal the fake-quant model's, and the deploy path stays torch-free."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest
import torch

import calibration
import sdk
import targets
from sdk.detection.boxes import DetectParams
from sdk.evaluation import detections_of

#: installed targets that take calibrated (not power-of-two) scales
CALIBRATED = [t for t in targets.available() if not targets.get(t).power_of_two_scales]
SIZE = 32


@pytest.fixture(scope="module")
def det(tmp_path_factory):
    torch.manual_seed(0)
    train, val = sdk.data.shapes(n_train=8, n_val=4, size=SIZE, seed=0)
    model = sdk.models.create("fcos_resnet8", num_classes=train.num_classes)
    cfg = sdk.MixedPrecisionConfig.uniform(model, 8, 8)
    q = calibration.fold_bn(
        calibration.calibrate(sdk.quantize(model, cfg), train.loader(8), method="percentile")
    )
    bundle = sdk.export(
        q.eval(),
        tmp_path_factory.mktemp("det") / "det.bpnas",
        example_input=torch.from_numpy(val[0][0][None]),
        targets=CALIBRATED,
        preprocess=train.preprocess(),
        labels=list(train.class_names),
        postprocess={"score_thr": 0.02, "max_dets": 20},
    )
    return q, bundle, val


def test_the_bundle_records_task_params_and_letterbox(det):
    _, bundle, val = det
    m = bundle.manifest
    assert m.task == "detect" and m.preprocess["resize"] == "letterbox"
    assert DetectParams.from_dict(m.postprocess) == DetectParams(5, 8, score_thr=0.02, max_dets=20)
    assert m.labels == val.class_names


@pytest.mark.parametrize("name", CALIBRATED)
def test_frames_give_detections_in_frame_pixels(det, name, tmp_path):
    q, bundle, val = det
    ref = detections_of(q, val, score_thr=0.02, max_dets=20)
    with sdk.load(bundle, target=name, threads=1) as p:
        one = p.predict(val.frame(0))
        assert (
            isinstance(one, sdk.Detections) and one.boxes.dtype == np.float32 and one.labels.dtype == np.int64
        )
        got = p.predict([val.frame(i) for i in range(len(val))])
        assert isinstance(got, list) and len(got) == len(val)
        batch = p.predict(np.stack(val.frames))
        path = tmp_path / "f.png"
        cv2.imwrite(str(path), val.frame(1))
        from_path = p.predict(str(path))
    for r, g, b in zip(ref, got, batch):
        assert len(g) == len(b)
        np.testing.assert_array_equal(g.labels, r.labels)
        np.testing.assert_allclose(g.boxes, r.boxes, atol=1e-3)
    np.testing.assert_array_equal(from_path.boxes, got[1].boxes)
    assert all(n in val.class_names for d in got for n in d.names)


def test_a_wider_frame_maps_boxes_back_through_the_letterbox(det):
    _, bundle, val = det
    with sdk.load(bundle, target="onnxruntime", threads=1) as p:
        small = p.predict(val.frame(2))
        wide = p.predict(cv2.resize(val.frame(2), (4 * SIZE, 2 * SIZE), interpolation=cv2.INTER_NEAREST))
        raw = p.outputs(val.frame(2))
    assert list(raw) == [bundle.manifest.output.name]
    if len(small):  # 2x upscale + letterbox: same network input up to resampling, boxes doubled, shifted
        assert wide.boxes[:, [0, 2]].max() <= 4 * SIZE and wide.boxes[:, [1, 3]].max() <= 2 * SIZE


def test_export_refuses_a_stretching_preprocess_for_a_detector(det, tmp_path):
    q, _, val = det
    with pytest.raises(sdk.InputError, match="letterbox"):
        sdk.export(q, tmp_path / "bad.bpnas", example_input=torch.from_numpy(val[0][0][None]),
                   preprocess=sdk.Preprocess(size=(SIZE, SIZE)))  # fmt: skip


def test_deploy_path_is_torch_free(det):
    _, bundle, val = det
    code = textwrap.dedent(
        f"""
        import sys, numpy as np, sdk
        p = sdk.load({str(bundle.path)!r}, target="onnxruntime")
        d = p.predict(np.zeros((40, 50, 3), np.uint8))
        assert isinstance(d, sdk.Detections), type(d)
        assert "torch" not in sys.modules, "torch imported"
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    ("x", "match"),
    [
        (np.zeros((20, 30, 3), np.float64), "float32"),
        (np.zeros((2, 2, 2, 2, 3), np.uint8), "uint8 images must be"),
        (np.full((1, 3, SIZE, SIZE), np.nan, np.float32), "NaN"),
        ("no/such/frame.png", "no such file"),
    ],
)
def test_bad_frames_raise_the_classifier_errors(det, x, match):
    _, bundle, _ = det
    with sdk.load(bundle, target="onnxruntime", threads=1) as p, pytest.raises(sdk.InputError, match=match):
        p.predict(x)
