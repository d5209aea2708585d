"""A robot's perception loop: frames in, labels out, on any target, without importing torch.

    python examples/camera_loop.py runs/demo/digits.bpnas --target openvino --source 0      # a camera
    python examples/camera_loop.py runs/demo/digits.bpnas --source synthetic --frames 300   # no camera

Prints per-frame latency percentiles at the end and checks that torch never got imported.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def frames(source: str, count: int, size: tuple[int, int] = (480, 640)):
    """Yield uint8 BGR frames from a camera index, a video file, or a synthetic pattern."""
    if source == "synthetic":
        rng = np.random.default_rng(0)
        for _ in range(count):
            yield rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)
        return
    import cv2

    cap = cv2.VideoCapture(int(source) if source.isdigit() else source)
    if not cap.isOpened():
        raise SystemExit(f"cannot open video source {source!r}; try --source synthetic")
    try:
        for _ in range(count):
            ok, frame = cap.read()
            if not ok:
                return
            yield frame
    finally:
        cap.release()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle")
    ap.add_argument("--target", default="x86")
    ap.add_argument("--source", default="synthetic", help="camera index, video file, or 'synthetic'")
    ap.add_argument("--frames", type=int, default=200)
    args = ap.parse_args(argv)

    import sdk

    t0 = time.perf_counter()
    predictor = sdk.load(args.bundle, target=args.target)
    print(f"loaded {args.bundle} on {args.target} in {1000 * (time.perf_counter() - t0):.0f} ms")
    times = []
    for frame in frames(args.source, args.frames):
        start = time.perf_counter()
        logits = predictor.predict(frame)  # uint8 HWC BGR: preprocessed per the bundle's manifest
        times.append(time.perf_counter() - start)
        k = int(np.argmax(logits[0]))
        _label = predictor.labels[k] if predictor.labels else k
    ms = 1000 * np.asarray(times)
    print(f"{len(ms)} frames: p50 {np.percentile(ms, 50):.2f} ms, p99 {np.percentile(ms, 99):.2f} ms")
    print(f"torch imported: {'torch' in sys.modules}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
