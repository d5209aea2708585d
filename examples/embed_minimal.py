"""The few lines a robot's process needs: load a bundle once, classify camera frames. Torch-free.

.venv/bin/python examples/embed_minimal.py model.bpnas image.png [openvino]
"""

import sys

import cv2

import sdk

predictor = sdk.load(sys.argv[1], target=sys.argv[3] if len(sys.argv) > 3 else "onnxruntime")
frame = cv2.imread(sys.argv[2])  # any uint8 BGR frame, e.g. from cv2.VideoCapture(0).read()
(best,) = sdk.classify(predictor, frame, k=3)  # softmax probabilities, most probable first
print(", ".join(f"{label} {100 * p:.1f}%" for label, p in zip(best.labels, best.probs)))
