"""Detection with bpnas, step by step: data -> detector -> train on the detection loss -> quantize (QAT) ->
export -> boxes from every installed target. About 3 minutes on 2 idle cores.

    OMP_NUM_THREADS=1 python examples/detection_walkthrough.py

Your own data instead of the synthetic scenes (class names come from the files):
    train = sdk.data.coco("images/train", "annotations/instances_train.json", size=96)
    train = sdk.data.yolo("my_set", split="train", size=96)       # my_set/images/train, my_set/labels/train
"""

from __future__ import annotations

import numpy as np
import torch

import sdk
import targets
from sdk.detection.loss import DetectionLoss
from sdk.evaluation import map_metric


def main() -> None:
    torch.manual_seed(0)
    # 1. Data: seeded synthetic scenes (5 shape classes, occlusion, textured backgrounds, exact boxes).
    train, val = sdk.data.shapes(n_train=600, n_val=150, size=64, seed=0)
    print(train, "classes:", train.class_names)

    # 2. A detector from the zoo: FCOS-style head on a ResNet-8 (or "fcos_mobilenet_v2").
    print("detectors:", [n for n in sdk.models.names() if sdk.models.task(n) == "detect"])
    det = sdk.models.create("fcos_resnet8", num_classes=train.num_classes)

    # 3. Float training on the detection loss; the validation metric is mAP@[.5:.95].
    loss = DetectionLoss(train.num_classes, det.stride)
    loader = train.loader(32, shuffle=True)
    sdk.train(det, loader, val.loader(50), epochs=8, lr=0.05, loss_fn=loss, metric_fn=map_metric)
    print("float:", sdk.evaluate(det, val))

    # 4. Quantize: 4-bit weights and activations, the head's output at 8 bits; QAT on the same loss.
    cfg = sdk.MixedPrecisionConfig.uniform(det, w_bits=4, a_bits=4)
    print(sdk.bops(det, cfg, input_shape=train.input_shape).table())
    qdet = sdk.retrain(det, cfg, loader, epochs=2, lr=0.01, loss_fn=loss)
    print("(4,4) QAT:", sdk.evaluate(qdet, val))

    # 5. Export: letterbox preprocessing, class names and the NMS parameters travel in the bundle.
    bundle = sdk.export(
        qdet,
        "runs/walkthrough/shapes.bpnas",
        example_input=torch.from_numpy(val[0][0][None]),
        targets=targets.available(),
        preprocess=train.preprocess(),
        labels=list(train.class_names),
        postprocess={"score_thr": 0.3, "iou_thr": 0.5, "max_dets": 20},
    )

    # 6. Deploy: a uint8 BGR frame of any size in, boxes in that frame's pixels out (torch not needed here).
    frame = np.ascontiguousarray(np.repeat(np.repeat(val.frame(0), 3, axis=0), 5, axis=1))  # 192x320
    for name in targets.available():
        p = sdk.load(bundle, target=name)
        dets = p.predict(frame)
        print(f"{name:<12} {len(dets)} boxes", [f"{n} {s:.2f}" for n, s in zip(dets.names, dets.scores)][:4])
        print(f"{'':<12} first box {np.round(dets.boxes[:1], 1).tolist()}  mAP {sdk.evaluate(p, val)}")
    print("ground truth (64x64 frame):", val.boxes[0].tolist(), [train.class_names[i] for i in val.labels[0]])


if __name__ == "__main__":
    main()
