"""Detection on every target: parity with the fake-quant model, the integer engine against the float64 spec,
p50 latency with and without NMS, and where NMS should run (host numpy vs ONNX NonMaxSuppression).

    OMP_NUM_THREADS=1 nice python examples/detection_bench.py --weights runs/float64.pt --n-val 500

Parity: each target's detections (frames in, ``sdk.Detections`` out) are matched to the fake-quant
PyTorch model's on the same letterboxed inputs: a reference box counts as matched when the target has a box
of the same class with IoU >= 0.99 (greedy, best score first); reported over all boxes above the bundle's
score threshold and over boxes scoring >= 0.3. The integer target's raw head codes are compared with the
float64 evaluation of the fake-quant model (DESIGN §2's reference). Latency: batch 1, one thread, p50 of
``predict(frame)`` (preprocess + engine + decode + NMS), the same without NMS, and the engine alone.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

import calibration
import sdk
import targets
from sdk.detection.boxes import box_iou, nms
from sdk.detection.serve import detections_from_outputs
from sdk.evaluation import detections_of


def _standin_model(q: torch.nn.Module) -> torch.nn.Module:
    try:
        from export._standin import standin_model  # type: ignore[import-not-found]
    except ImportError:
        from export._trace import standin_model
    return standin_model(q)


def matched(ref: list[sdk.Detections], got: list[sdk.Detections], min_score: float) -> tuple[int, int]:
    """(reference boxes with score >= min_score that ``got`` reproduces, how many there are)."""
    hit = total = 0
    for r, g in zip(ref, got):
        keep = r.scores >= min_score
        used = np.zeros(len(g), bool)
        for box, label in zip(r.boxes[keep], r.labels[keep]):
            total += 1
            cand = np.nonzero((g.labels == label) & ~used)[0]
            if len(cand):
                iou = box_iou(box[None], g.boxes[cand])[0]
                best = int(np.argmax(iou))
                if iou[best] >= 0.99:
                    used[cand[best]] = True
                    hit += 1
    return hit, total


def p50_ms(fn, runs: int) -> float:
    fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * float(np.median(times))


def nms_in_graph(
    boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, iou: float, k: int, runs: int
) -> dict:
    """p50 of ONNX NonMaxSuppression (per-class scores, as the op takes them) on ORT and OpenVINO, beside
    the host's numpy NMS on the same candidates."""
    import onnx
    from onnx import TensorProto, helper

    n_cls = int(labels.max()) + 1 if len(labels) else 1
    sc = np.zeros((1, n_cls, len(boxes)), np.float32)
    sc[0, labels, np.arange(len(boxes))] = scores
    xyxy = boxes[None, :, [1, 0, 3, 2]].astype(np.float32)  # y1 x1 y2 x2 (center_point_box=0)
    node = helper.make_node("NonMaxSuppression", ["b", "s", "k", "i", "t"], ["sel"])
    graph = helper.make_graph(
        [node], "nms",
        [helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, None, 4]),
         helper.make_tensor_value_info("s", TensorProto.FLOAT, [1, n_cls, None])],
        [helper.make_tensor_value_info("sel", TensorProto.INT64, [None, 3])],
        [helper.make_tensor("k", TensorProto.INT64, [1], [k]),
         helper.make_tensor("i", TensorProto.FLOAT, [1], [iou]),
         helper.make_tensor("t", TensorProto.FLOAT, [1], [0.0])],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    out = {"host numpy": p50_ms(lambda: nms(boxes, scores, labels, iou, k), 200)}
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    out["onnxruntime graph"] = p50_ms(lambda: sess.run(None, {"b": xyxy, "s": sc}), 200)
    try:
        import openvino as ov

        core = ov.Core()
        compiled = core.compile_model(core.read_model(model.SerializeToString(), b""), "CPU",
                                      {"INFERENCE_NUM_THREADS": 1})  # fmt: skip
        out["openvino graph"] = p50_ms(lambda: compiled([xyxy, sc]), 200)
    except Exception as e:  # noqa: BLE001 - report, do not fail the benchmark
        out["openvino graph"] = f"failed: {type(e).__name__}"
    del onnx
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", type=Path, required=True, help="float state dict of the detector")
    ap.add_argument("--model", default="fcos_resnet8")
    ap.add_argument("--config", type=Path, default=None, help="MixedPrecisionConfig JSON (default (4,4))")
    ap.add_argument("--n-val", type=int, default=500)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--out", type=Path, default=Path("runs/detection_bench"))
    ap.add_argument(
        "--targets", nargs="+", default=None, help="default: every available target taking calibrated scales"
    )
    args = ap.parse_args()
    torch.set_num_threads(1)
    train, val = sdk.data.shapes(n_train=256, n_val=args.n_val, size=args.size, seed=0)
    model = sdk.models.create(args.model, num_classes=train.num_classes)
    model.load_state_dict(torch.load(args.weights))
    cfg = (
        sdk.MixedPrecisionConfig.from_json(args.config)
        if args.config
        else sdk.MixedPrecisionConfig.uniform(model, 4, 4)
    )
    q = calibration.calibrate(sdk.quantize(model, cfg), train.loader(32), method="percentile")
    q = calibration.fold_bn(q).eval()
    names = args.targets or targets.available(any_scales=True)
    args.out.mkdir(parents=True, exist_ok=True)
    x0 = torch.from_numpy(val[0][0][None])
    bundle = sdk.export(q, args.out / "det.bpnas", example_input=x0, targets=names,
                        labels=list(train.class_names), preprocess=train.preprocess())  # fmt: skip
    ref = detections_of(q, val)
    print(
        f"fake-quant model: mAP {sdk.evaluate(q, val)} ({sum(len(d) for d in ref)} boxes, {len(val)} images)"
    )
    frames = [val.frame(i) for i in range(len(val))]
    xs = np.stack([val[i][0] for i in range(len(val))])
    spec = _standin_model(q).double()
    with torch.no_grad():
        spec_head = spec(torch.from_numpy(xs).double()).numpy()
    step = float(q.get_submodule("head").out_quant.scale().detach())
    print(f"\n{'target':<12} {'mAP':>6} {'mAP50':>6} {'match all':>10} {'match>=.3':>10} {'codes=spec':>11} "
          f"{'p50 full':>9} {'no NMS':>8} {'engine':>8}")  # fmt: skip
    for name in names:
        with sdk.load(bundle, target=name, threads=1) as p:
            got = [d for i in range(0, len(frames), 50) for d in p.predict(frames[i : i + 50])]
            m = sdk.evaluate(p, val)
            a_hit, a_tot = matched(ref, got, 0.0)
            s_hit, s_tot = matched(ref, got, 0.3)
            head = p.outputs(xs)[bundle.manifest.output.name]
            codes_equal = float((np.round(head / step) == np.round(spec_head / step)).mean())
            full = p50_ms(lambda p=p: p.predict(frames[0]), args.runs)
            no_nms = p50_ms(
                lambda p=p: detections_from_outputs(
                    p.outputs(frames[0]), p.manifest, [frames[0].shape[:2]], run_nms=False
                ),
                args.runs,
            )
            engine = p50_ms(lambda: p.outputs(xs[:1]), args.runs)
        print(f"{name:<12} {m['map']:>6.3f} {m['map50']:>6.3f} {100 * a_hit / max(a_tot, 1):>9.2f}% "
              f"{100 * s_hit / max(s_tot, 1):>9.2f}% {100 * codes_equal:>10.3f}% {full:>8.3f} {no_nms:>8.3f} "
              f"{engine:>8.3f}")  # fmt: skip
    # where NMS runs: the candidates of one typical frame, host numpy vs ONNX NonMaxSuppression
    params = q.params()
    from sdk.detection.boxes import decode

    with torch.no_grad():
        head1 = q(torch.from_numpy(xs[:8])).numpy()
    cands = max(decode(head1, params), key=lambda c: len(c[1]))
    print(f"\nNMS on {len(cands[1])} candidates (score >= {params.score_thr}), p50 ms:")
    for k, v in nms_in_graph(*cands, params.iou_thr, params.max_dets, args.runs).items():
        print(f"  {k:<20} {v if isinstance(v, str) else f'{v:.3f}'}")


if __name__ == "__main__":
    main()
