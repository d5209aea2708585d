"""Detection as a task: host-side box math (numpy), data sets, the detector's loss and COCO metrics.

Importing this package is torch-free; ``sdk.detection.loss`` (torch) is imported where training needs it.
"""

from sdk.detection.boxes import Detections, DetectParams, Letterbox, decode, letterbox_image, nms, postprocess

__all__ = ["DetectParams", "Detections", "Letterbox", "decode", "letterbox_image", "nms", "postprocess"]
