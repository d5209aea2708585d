"""`bpnas demo --task detect`: the detection pipeline on the synthetic shapes scenes, printed as tables.

float training (FCOS-style ResNet-8, the detection loss) -> uniform (8,8) PTQ and (4,4) QAT -> BP-NAS at
b_max = 4 with the paper's detection candidates, paths sampled by probability -> QAT retraining -> export
-> every installed target: mAP, agreement with the PyTorch model, p50 latency (frame in, boxes out).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

__all__ = ["run_detect_demo", "DetectPreset", "DETECTION_CANDIDATES"]

#: BP-NAS Sect. 4.3's candidates for Faster R-CNN
DETECTION_CANDIDATES = ((2, 4), (3, 3), (3, 4), (3, 5), (4, 4), (4, 6), (6, 4), (4, 8))


@dataclass(frozen=True)
class DetectPreset:
    n_train: int
    n_val: int
    float_epochs: int
    qat_epochs: int
    search_epochs: int
    profile_runs: int


FULL = DetectPreset(n_train=800, n_val=200, float_epochs=12, qat_epochs=3, search_epochs=3, profile_runs=100)
QUICK = DetectPreset(n_train=48, n_val=16, float_epochs=1, qat_epochs=1, search_epochs=1, profile_runs=5)


def _section(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 100 - len(title)), flush=True)


def _p50_ms(fn: object, runs: int) -> float:
    times = []
    for _ in range(runs + 1):
        t = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t)
    return 1000 * float(np.median(times[1:]))


def _agreement(ref: list, got: list) -> float:
    """Share of the reference boxes scoring >= 0.3 that ``got`` has with the same class at IoU >= 0.99."""
    from sdk.detection.boxes import box_iou

    hit = total = 0
    for r, g in zip(ref, got):
        for box, label in zip(r.boxes[r.scores >= 0.3], r.labels[r.scores >= 0.3]):
            total += 1
            same = g.boxes[g.labels == label]
            hit += bool(len(same)) and float(box_iou(box[None], same).max()) >= 0.99
    return hit / total if total else float("nan")


def run_detect_demo(
    out_dir: str | Path = "runs/demo-detect", *, b_max: float = 4.0, seed: int = 0, quick: bool = False
) -> dict[str, object]:
    """Run the detection demo and return its figures (also printed)."""
    import calibration
    import sdk
    import targets
    from sdk.detection.loss import DetectionLoss
    from sdk.evaluation import detections_of

    preset = QUICK if quick else FULL
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    train, val = sdk.data.shapes(n_train=preset.n_train, n_val=preset.n_val, size=64, seed=seed)
    shape = train.input_shape
    model = sdk.models.create("fcos_resnet8", num_classes=train.num_classes)
    loss = DetectionLoss(train.num_classes, int(model.stride))  # type: ignore[arg-type]
    loader = train.loader(32, shuffle=True, seed=seed)

    _section(f"float training: fcos_resnet8 on {len(train)} synthetic scenes, {preset.float_epochs} epochs")
    t0 = time.perf_counter()
    sdk.train(model, loader, epochs=preset.float_epochs, lr=0.05, loss_fn=loss, progress=False, seed=seed)
    float_cfg = sdk.MixedPrecisionConfig.uniform(model, 32, 32)
    rows = [("float", sdk.evaluate(model, val), sdk.bops(model, float_cfg, input_shape=shape))]
    print(f"float mAP {rows[0][1]['map']:.3f}  ({time.perf_counter() - t0:.0f} s)")

    _section("uniform (8,8) PTQ and (4,4) QAT")
    cfg8, cfg4 = (sdk.MixedPrecisionConfig.uniform(model, b, b) for b in (8, 4))
    ptq = calibration.calibrate(sdk.quantize(model, cfg8), train.loader(32), method="percentile").eval()
    rows.append(("uniform (8,8) PTQ", sdk.evaluate(ptq, val), sdk.bops(model, cfg8, input_shape=shape)))
    q4 = sdk.retrain(
        model, cfg4, loader, epochs=preset.qat_epochs, lr=0.01, loss_fn=loss, progress=False, seed=seed
    )
    rows.append(("uniform (4,4) QAT", sdk.evaluate(q4, val), sdk.bops(model, cfg4, input_shape=shape)))

    _section(f"BP-NAS: b_max = {b_max}, the paper's detection candidates, sampled paths")
    w_set, a_set = train.split(0.6, seed=seed)
    result = sdk.search(
        model, w_set.loader(32, shuffle=True, seed=seed), a_set.loader(32, shuffle=True, seed=seed),
        b_max=b_max, candidates=DETECTION_CANDIDATES, epochs=preset.search_epochs, seed=seed,
        mode="sampled", weight_paths="sampled", loss_fn=loss, progress=False, input_shape=shape,
    )  # fmt: skip
    qmp = sdk.retrain(model, result.config, loader, epochs=preset.qat_epochs, lr=0.01, loss_fn=loss,
                      progress=False, seed=seed)  # fmt: skip
    rows.append(
        (f"BP-NAS b_max={b_max}", sdk.evaluate(qmp, val), sdk.bops(model, result.config, input_shape=shape))
    )
    print(f"\n{'model':<22} {'mAP':>6} {'mAP@.5':>7} {'avg bits':>9} {'B-Comp':>8}")
    for name, m, rep in rows:
        print(f"{name:<22} {m['map']:>6.3f} {m['map50']:>7.3f} {rep.avg_bits:>9.2f} {rep.b_comp:>7.2f}x")

    _section("export and run on every installed target (frames in, boxes out)")
    avail = targets.available(any_scales=True)  # hls4ml needs power-of-two scales (docs/fpga.md)
    x0 = torch.from_numpy(val[0][0][None])
    bundle = sdk.export(qmp.eval(), out / "shapes.bpnas", example_input=x0, targets=avail,
                        labels=list(train.class_names), preprocess=train.preprocess())  # fmt: skip
    ref = detections_of(qmp, val)
    frames = [val.frame(i) for i in range(len(val))]
    bench = []
    for name in avail:
        with sdk.load(bundle, target=name) as p:
            got = p.predict(frames)
            m = sdk.evaluate(p, val)
            ms = _p50_ms(lambda p=p: p.predict(frames[0]), preset.profile_runs)
        bench.append((name, m, _agreement(ref, got), ms))
    print(f"\n{'target':<12} {'mAP':>6} {'mAP@.5':>7} {'= torch':>8} {'p50 ms':>8}")
    for name, m, agree, ms in bench:
        print(f"{name:<12} {m['map']:>6.3f} {m['map50']:>7.3f} {100 * agree:>7.2f}% {ms:>8.2f}")
    print(f"\n(= torch: boxes scoring >= 0.3 reproduced at IoU >= 0.99, same class; p50: predict(frame) "
          f"incl. letterbox, decode and NMS; total {time.perf_counter() - t0:.0f} s)")  # fmt: skip
    return {"rows": rows, "bench": bench}
