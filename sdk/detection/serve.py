"""The Predictor's "detect" step: a session's head output -> ``sdk.Detections`` in each frame's pixels.

Torch-free. Reads what the bundle recorded: ``manifest.postprocess`` (``DetectParams``), the letterbox size
from ``manifest.preprocess`` and the class names from ``manifest.labels``. Every target hands the same head
tensor to the same numpy decode + NMS, so targets differ only where their head codes differ.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from sdk.detection.boxes import Detections, DetectParams, Letterbox, letterbox_geometry, postprocess
from sdk.errors import BundleError, InputError

__all__ = ["detect_params", "detections_from_outputs", "network_size"]


def detect_params(manifest: Any) -> DetectParams:
    """The bundle's decoding parameters; a detect bundle without them is refused."""
    raw = getattr(manifest, "postprocess", None)
    if not raw:
        raise BundleError(
            "this detect bundle records no postprocess parameters; re-export it with sdk.export."
        )
    try:
        return DetectParams.from_dict(raw)
    except InputError as e:
        raise BundleError(
            f"the bundle's postprocess parameters are invalid: {e} Re-export the bundle."
        ) from None


def network_size(manifest: Any) -> tuple[int, int]:
    """(H, W) of the network input: the preprocess size, else the input tensor's spatial shape."""
    pre = getattr(manifest, "preprocess", None)
    if pre and pre.get("size"):
        h, w = pre["size"]
        return int(h), int(w)
    shape = manifest.input.shape
    return int(shape[-2]), int(shape[-1])


def detections_from_outputs(
    outputs: Mapping[str, np.ndarray],
    manifest: Any,
    frames_hw: Sequence[tuple[int, int] | None],
    *,
    params: DetectParams | None = None,
    run_nms: bool = True,
) -> list[Detections]:
    """One ``Detections`` per batch item; items that came from frames get boxes in that frame's pixels
    (``frames_hw[i]`` its (H, W)), float inputs keep network pixels."""
    head = outputs[manifest.output.name]
    params = params if params is not None else detect_params(manifest)
    size = network_size(manifest)
    geos: list[Letterbox | None] = [
        None if hw is None else letterbox_geometry(hw, size)[0] for hw in frames_hw
    ]
    names = tuple(manifest.labels or ())
    return postprocess(head, params, geos, names, run_nms=run_nms)
