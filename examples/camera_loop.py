"""A robot's perception loop: frames in, labels or boxes out, on any target, without importing torch.

    python examples/camera_loop.py runs/demo/digits.bpnas --target openvino --source 0      # a camera
    python examples/camera_loop.py runs/demo/digits.bpnas --source synthetic --frames 300   # no camera
    python examples/camera_loop.py runs/demo-detect/shapes.bpnas --source shapes --save out/  # detection

A detection bundle (manifest task "detect") returns ``sdk.Detections`` per frame; the loop draws each box
with its class name and score (``--show`` opens a window, ``--save DIR`` writes the annotated frames).
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
    if (
        source == "shapes"
    ):  # the synthetic detection scenes at 64 px, shown 4x larger (numpy + OpenCV, no torch)
        import cv2

        from sdk.detection.scenes import render_scene

        rng = np.random.default_rng(0)
        for _ in range(count):
            yield cv2.resize(render_scene(rng, 64)[0], (256, 256), interpolation=cv2.INTER_NEAREST)
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


def draw(frame: np.ndarray, dets) -> np.ndarray:
    """A copy of ``frame`` with each detection's box, class name and score drawn on it."""
    import cv2

    out = frame.copy()
    for (x1, y1, x2, y2), name, score in zip(dets.boxes, dets.names, dets.scores):
        p1, p2 = (int(round(x1)), int(round(y1))), (int(round(x2)), int(round(y2)))
        cv2.rectangle(out, p1, p2, (0, 255, 0), 1)
        cv2.putText(out, f"{name} {score:.2f}", (p1[0], max(p1[1] - 3, 8)), cv2.FONT_HERSHEY_SIMPLEX, 0.35,
                    (0, 255, 0), 1, cv2.LINE_AA)  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle")
    ap.add_argument("--target", default="x86")
    ap.add_argument("--source", default="synthetic", help="camera index, video file, 'synthetic' or 'shapes'")
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--show", action="store_true", help="detection: show the annotated frames in a window")
    ap.add_argument("--save", default=None, help="detection: write annotated frames into this folder")
    ap.add_argument("--min-score", type=float, default=0.3, help="detection: draw and count boxes above this")
    args = ap.parse_args(argv)

    import sdk

    t0 = time.perf_counter()
    predictor = sdk.load(args.bundle, target=args.target)
    print(f"loaded {args.bundle} on {args.target} in {1000 * (time.perf_counter() - t0):.0f} ms")
    detect = getattr(predictor.manifest, "task", "classify") == "detect"
    times, boxes = [], 0
    for i, frame in enumerate(frames(args.source, args.frames)):
        start = time.perf_counter()
        result = predictor.predict(frame)  # uint8 HWC BGR: preprocessed per the bundle's manifest
        times.append(time.perf_counter() - start)
        if not detect:
            k = int(np.argmax(result[0]))
            _label = predictor.labels[k] if predictor.labels else k
            continue
        keep = result.scores >= args.min_score
        shown = type(result)(result.boxes[keep], result.scores[keep], result.labels[keep], result.class_names)
        boxes += len(shown)
        if args.show or args.save:
            import cv2

            annotated = draw(frame, shown)
            if args.save:
                from pathlib import Path

                Path(args.save).mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(Path(args.save) / f"frame{i:05d}.png"), annotated)
            if args.show:
                cv2.imshow("bpnas", annotated)
                if cv2.waitKey(1) == 27:  # Esc
                    break
    if detect:
        print(f"{boxes} boxes in {len(times)} frames")
    ms = 1000 * np.asarray(times)
    print(f"{len(ms)} frames: p50 {np.percentile(ms, 50):.2f} ms, p99 {np.percentile(ms, 99):.2f} ms")
    print(f"torch imported: {'torch' in sys.modules}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
