"""Your own model -> PTQ -> export -> bench on every installed target (what `bpnas quantize/export/bench` do).

    .venv/bin/python examples/export_and_benchmark.py --model mynet.py:MyNet --weights mynet.pt \\
        --data folder:photos:32 [--bits 8,8] [--out runs/mynet.bpnas]

``--data folder:ROOT:SIZE`` is an image folder, ROOT/CLASS/*.png or ROOT/train|val/CLASS/*.png, resized to
SIZE. Prints the test accuracy after PTQ and the bench table (accuracy on the test split, per target).
"""

from __future__ import annotations

import argparse

import torch

import calibration
import sdk
import targets
from sdk.bench import bench, eval_arrays
from sdk.dataspec import load_data
from sdk.modelspec import ModelSpec, build_model, load_weights


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="zoo name, package.module:Class or file.py:Class")
    ap.add_argument("--weights", required=True, help="float state_dict")
    ap.add_argument("--data", required=True, help="folder:ROOT:SIZE (or digits, cifar10:ROOT)")
    ap.add_argument("--bits", default="8,8", help="uniform W,A bits")
    ap.add_argument("--out", default="runs/own_model.bpnas")
    args = ap.parse_args()

    data = load_data(args.data)  # normalizes by the training images' mean/std, recorded in data.preprocess
    model = build_model(ModelSpec.parse(args.model), num_classes=data.num_classes)
    load_weights(model, args.weights)  # names every missing/unexpected key and shape mismatch
    w, a = (int(b) for b in args.bits.split(","))
    qmodel = calibration.ptq(model, sdk.MixedPrecisionConfig.uniform(model, w, a), data.train, progress=True)
    print(f"PTQ {w}/{a}: test accuracy {100 * sdk.evaluate(qmodel, data.test):.1f}%")

    carried = targets.available()  # every engine installed here
    bundle = sdk.export(
        qmodel,
        args.out,
        example_input=torch.zeros(data.input_shape),
        targets=carried,
        preprocess=data.preprocess,  # so sdk.load(...).predict("image.png") works on the robot
        labels=data.labels,
    )
    print(f"wrote {bundle}")
    mean, std = data.preprocess.mean, data.preprocess.std
    table = bench(bundle.path, data=eval_arrays(args.data, mean=mean, std=std), data_name=args.data)
    print(table.markdown())


if __name__ == "__main__":
    main()
