"""Preprocess: validation, dict round trip, and the frame -> NCHW arithmetic."""

from __future__ import annotations

import numpy as np
import pytest

from sdk.errors import InputError
from sdk.preprocess import Preprocess

IMAGENET = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}


def test_dict_round_trip_matches_design_schema():
    p = Preprocess(size=(32, 32), **IMAGENET)
    d = p.to_dict()
    assert set(d) == {"size", "mean", "std", "scale", "layout", "bgr_to_rgb", "channels", "interpolation"}
    assert d["size"] == [32, 32] and d["scale"] == pytest.approx(1 / 255)
    assert Preprocess.from_dict(d) == p


def test_frame_becomes_normalized_rgb_nchw():
    p = Preprocess(size=(2, 3), mean=(0.1, 0.2, 0.3), std=(0.5, 0.25, 2.0))
    frame = np.zeros((2, 3, 3), np.uint8)
    frame[..., 0], frame[..., 1], frame[..., 2] = 10, 20, 30  # B, G, R
    out = p(frame)
    assert out.shape == (1, 3, 2, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out[0, 0], (30 / 255 - 0.1) / 0.5, rtol=1e-6)  # R first
    np.testing.assert_allclose(out[0, 1], (20 / 255 - 0.2) / 0.25, rtol=1e-6)
    np.testing.assert_allclose(out[0, 2], (10 / 255 - 0.3) / 2.0, rtol=1e-6)


def test_bgr_kept_when_asked_and_nhwc_layout():
    p = Preprocess(size=(2, 2), bgr_to_rgb=False, layout="NHWC", scale=1.0)
    frame = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    out = p(frame)
    assert out.shape == (1, 2, 2, 3)
    np.testing.assert_array_equal(out[0], frame.astype(np.float32))


def test_resizes_to_size_and_batches_lists():
    p = Preprocess(size=(8, 6), interpolation="area")
    frames = [np.full((40, 30, 3), 128, np.uint8), np.full((17, 9, 3), 128, np.uint8)]
    out = p(frames)
    assert out.shape == (2, 3, 8, 6)
    np.testing.assert_allclose(out, 128 / 255, rtol=1e-6)
    assert p(np.stack([frames[0], frames[0]])).shape == (2, 3, 8, 6)  # uint8 (N, H, W, 3)


def test_grayscale_model_converts_color_frames():
    p = Preprocess(size=(4, 4), channels=1, mean=0.5, std=0.5)
    assert p.mean == (0.5,) and p.input_shape == (1, 4, 4)
    out = p(np.full((4, 4, 3), 255, np.uint8))
    np.testing.assert_allclose(out, 1.0, rtol=1e-6)
    assert p(np.zeros((4, 4), np.uint8)).shape == (1, 1, 4, 4)


def test_gray_and_bgra_frames_feed_color_models():
    p = Preprocess(size=(4, 4))
    assert p(np.zeros((4, 4), np.uint8)).shape == (1, 3, 4, 4)
    assert p(np.zeros((4, 4, 4), np.uint8)).shape == (1, 3, 4, 4)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"size": (0, 4)}, "size"),
        ({"size": (4,)}, "size"),
        ({"size": (4.0, 4)}, "size"),
        ({"size": (4, 4), "mean": (0.1, 0.2)}, "mean"),
        ({"size": (4, 4), "std": (1.0, 0.0, 1.0)}, "std"),
        ({"size": (4, 4), "std": (1.0, float("nan"), 1.0)}, "std"),
        ({"size": (4, 4), "scale": 0}, "scale"),
        ({"size": (4, 4), "layout": "CHW"}, "layout"),
        ({"size": (4, 4), "interpolation": "bilinear"}, "interpolation"),
        ({"size": (4, 4), "channels": 4}, "channels"),
        ({"size": (4, 4), "bgr_to_rgb": "yes"}, "bgr_to_rgb"),
    ],
)
def test_invalid_settings_are_refused(kwargs, match):
    with pytest.raises(InputError, match=match):
        Preprocess(**kwargs)


def test_unknown_dict_fields_are_refused():
    with pytest.raises(InputError, match="unknown Preprocess fields"):
        Preprocess.from_dict({"size": [4, 4], "mean_rgb": [0, 0, 0]})


@pytest.mark.parametrize(
    "frame, match",
    [
        (np.zeros((4, 4, 3), np.float32), "uint8"),
        (np.zeros((4, 4, 2), np.uint8), "shape"),
        (np.zeros((0, 4, 3), np.uint8), "shape"),
        ([[1, 2]], "uint8 image array"),
    ],
)
def test_bad_frames_are_refused(frame, match):
    with pytest.raises(InputError, match=match):
        Preprocess(size=(4, 4))([frame])


def test_empty_frame_list_is_refused():
    with pytest.raises(InputError, match="no frames"):
        Preprocess(size=(4, 4))([])


def test_frames_are_finite_unless_the_normalisation_overflows_float32():
    assert Preprocess(size=(8, 8), mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)).frames_are_finite
    assert Preprocess(size=(8, 8), scale=1.0, mean=(128,) * 3, std=(1e-3,) * 3).frames_are_finite
    assert not Preprocess(size=(8, 8), std=(1e-38,) * 3).frames_are_finite
