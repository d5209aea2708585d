"""Camera frame -> network input, as the bundle manifest records it (DESIGN §5). Torch-free; uses OpenCV.

A uint8 HWC BGR frame (what ``cv2.imread`` and ``cv2.VideoCapture`` give) is resized to ``size``, converted
to RGB when ``bgr_to_rgb``, scaled, normalized as ``((pixel * scale) - mean) / std`` and laid out as float32
NCHW (or NHWC). Resizing happens on the uint8 frame, before normalization, which is cheaper and is what
the training pipeline's PIL/OpenCV resize does.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sdk.errors import InputError

__all__ = ["Preprocess", "INTERPOLATIONS", "LAYOUTS", "RESIZES"]

LAYOUTS = ("NCHW", "NHWC")
RESIZES = ("stretch", "letterbox")  # letterbox: aspect kept, centred, grey border (detection)
INTERPOLATIONS = ("nearest", "linear", "area", "cubic", "lanczos")


def _cv2() -> Any:
    import cv2

    return cv2


@dataclass(frozen=True)
class Preprocess:
    """How a frame becomes the model's input.

    Attributes:
        size: output (height, width).
        mean, std: per-channel, in the model's channel order (RGB when ``bgr_to_rgb``), after ``scale``.
        scale: multiplies the uint8 pixel first (1/255 maps to [0, 1]).
        layout: "NCHW" or "NHWC" of the produced batch.
        bgr_to_rgb: frames arrive BGR (OpenCV); convert to RGB for models trained on RGB.
        channels: 3 (color) or 1 (grayscale; color frames are converted).
        interpolation: resize filter, one of :data:`INTERPOLATIONS`.
        resize: "stretch" (to ``size``) or "letterbox" (aspect kept, centred, grey 114 border: detectors,
            whose boxes the Predictor maps back through the same geometry).
    """

    size: tuple[int, int]
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0)
    scale: float = 1.0 / 255.0
    layout: str = "NCHW"
    bgr_to_rgb: bool = True
    channels: int = 3
    interpolation: str = "linear"
    resize: str = "stretch"

    def __post_init__(self) -> None:
        size = tuple(self.size) if isinstance(self.size, (tuple, list)) else (self.size,)
        if len(size) != 2 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in size):
            raise InputError(f"Preprocess size must be (height, width) positive ints, got {self.size!r}.")
        object.__setattr__(self, "size", (int(size[0]), int(size[1])))
        if self.channels not in (1, 3):
            raise InputError(f"Preprocess channels must be 1 or 3, got {self.channels!r}.")
        for name in ("mean", "std"):
            raw = getattr(self, name)
            values = tuple(float(v) for v in (raw if isinstance(raw, Iterable) else [raw]))
            if len(values) == 1 and self.channels > 1:
                values = values * self.channels
            if len(values) != self.channels or not all(math.isfinite(v) for v in values):
                raise InputError(
                    f"Preprocess {name} needs {self.channels} finite values (one per channel), got {raw!r}."
                )
            object.__setattr__(self, name, values)
        if any(v == 0 for v in self.std):
            raise InputError(f"Preprocess std must not contain 0, got {self.std!r}.")
        if not (isinstance(self.scale, (int, float)) and math.isfinite(self.scale) and self.scale > 0):
            raise InputError(f"Preprocess scale must be a positive number, got {self.scale!r}.")
        object.__setattr__(self, "scale", float(self.scale))
        if self.layout not in LAYOUTS:
            raise InputError(f"Preprocess layout must be one of {LAYOUTS}, got {self.layout!r}.")
        if self.interpolation not in INTERPOLATIONS:
            raise InputError(
                f"Preprocess interpolation must be one of {INTERPOLATIONS}, got {self.interpolation!r}."
            )
        if self.resize not in RESIZES:
            raise InputError(f"Preprocess resize must be one of {RESIZES}, got {self.resize!r}.")
        if not isinstance(self.bgr_to_rgb, bool):
            raise InputError(f"Preprocess bgr_to_rgb must be True or False, got {self.bgr_to_rgb!r}.")

    # -- data ------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The manifest's preprocess entry (DESIGN §5); ``resize`` appears only when not the default."""
        return {
            "size": list(self.size),
            "mean": list(self.mean),
            "std": list(self.std),
            "scale": self.scale,
            "layout": self.layout,
            "bgr_to_rgb": self.bgr_to_rgb,
            "channels": self.channels,
            "interpolation": self.interpolation,
            **({"resize": self.resize} if self.resize != "stretch" else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Preprocess:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"unknown Preprocess fields {unknown}; known: {sorted(known)}.")
        d = dict(data)
        if "size" in d:
            d["size"] = tuple(d["size"])
        for k in ("mean", "std"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Per-sample shape produced: (C, H, W) for NCHW, (H, W, C) for NHWC."""
        h, w = self.size
        return (self.channels, h, w) if self.layout == "NCHW" else (h, w, self.channels)

    @property
    def frames_are_finite(self) -> bool:
        """Whether every uint8 frame provably maps to finite float32 values (pixels 0..255 stay in range
        through resizing), so a Predictor need not scan preprocessed frames for NaN/inf."""
        worst = max(
            max(abs(0.0 - m), abs(255.0 * self.scale - m)) / abs(s) for m, s in zip(self.mean, self.std)
        )
        return worst < 1e30  # float32 overflows near 3.4e38; the margin covers its rounding

    # -- applying --------------------------------------------------------------------------------------
    def check_frame(self, frame: Any, where: str = "frame") -> np.ndarray:
        """Validate one frame: uint8, (H, W, 3) BGR, (H, W, 1) or (H, W) gray. Returns it as an array."""
        if not isinstance(frame, np.ndarray):
            raise InputError(f"{where}: expected a uint8 image array (H, W, 3), got {type(frame).__name__}.")
        if frame.dtype != np.uint8:
            raise InputError(
                f"{where}: image frames must be uint8 (H, W, 3) BGR, got dtype {frame.dtype}. Pass float "
                f"input as a float32 batch shaped (N, {', '.join(map(str, self.input_shape))})."
            )
        ok = frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] in (1, 3, 4))
        if not ok or frame.shape[0] < 1 or frame.shape[1] < 1:
            raise InputError(f"{where}: expected an image shaped (H, W, 3), got shape {frame.shape}.")
        return frame

    def _color(self, frame: np.ndarray) -> np.ndarray:
        """The frame with ``self.channels`` channels in model order (HWC, uint8)."""
        cv2 = _cv2()
        if frame.ndim == 3 and frame.shape[2] == 1:
            frame = frame[:, :, 0]
        if frame.ndim == 3 and frame.shape[2] == 4:
            frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
        if self.channels == 1:
            gray = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
            return gray[:, :, None]
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) if self.bgr_to_rgb else frame

    def apply_one(self, frame: np.ndarray) -> np.ndarray:
        """One frame -> one float32 sample shaped :attr:`input_shape` (no batch axis)."""
        cv2 = _cv2()
        frame = self.check_frame(frame)
        h, w = self.size
        flags = {"nearest": cv2.INTER_NEAREST, "linear": cv2.INTER_LINEAR, "area": cv2.INTER_AREA,
                 "cubic": cv2.INTER_CUBIC, "lanczos": cv2.INTER_LANCZOS4}  # fmt: skip
        if self.resize == "letterbox":
            from sdk.detection.boxes import letterbox_image

            frame = letterbox_image(frame, (h, w), interpolation=flags[self.interpolation])[0]
        elif frame.shape[:2] != (h, w):
            frame = cv2.resize(frame, (w, h), interpolation=flags[self.interpolation])
        img = self._color(frame).astype(np.float32)
        mean = np.asarray(self.mean, np.float32)
        std = np.asarray(self.std, np.float32)
        img = (img * np.float32(self.scale) - mean) / std
        return np.ascontiguousarray(img.transpose(2, 0, 1) if self.layout == "NCHW" else img)

    def __call__(self, frames: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """A frame (H, W, 3), a uint8 batch (N, H, W, 3) or a list of frames -> float32 batch (N, ...)."""
        if isinstance(frames, np.ndarray) and frames.ndim == 4 and frames.dtype == np.uint8:
            items: Sequence[np.ndarray] = list(frames)
        elif isinstance(frames, np.ndarray):
            items = [frames]
        else:
            items = list(frames)
        if not items:
            raise InputError("got no frames; pass at least one image.")
        return np.stack([self.apply_one(self.check_frame(f, f"frame {i}")) for i, f in enumerate(items)])
