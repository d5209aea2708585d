"""PTQ accuracy table: digits_cnn trained in float with distribution reshaping, then calibrated per observer.

Prints the test accuracy of the float model and of ``calibration.ptq`` at each bit pair with every registered
observer; nothing is hard-coded. Run from the repository root after ``make install``:
``.venv/bin/python examples/ptq_table.py`` (without it, prefix ``PYTHONPATH=.``).
"""

from __future__ import annotations

import argparse
import time

import torch

import calibration
import sdk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30, help="float training epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bits", default="8x8,4x4", help="comma-separated WxA pairs")
    parser.add_argument("--calib-batches", type=int, default=None, help="calibration batches (default: all)")
    parser.add_argument("--weight-methods", default="minmax,mse", help="comma-separated weight clip methods")
    args = parser.parse_args()
    pairs = [tuple(int(b) for b in p.split("x")) for p in args.bits.split(",")]
    weight_methods = args.weight_methods.split(",")

    torch.manual_seed(args.seed)
    data = sdk.data.digits(seed=args.seed)
    model = sdk.models.digits_cnn(num_classes=data.num_classes)
    start = time.perf_counter()
    sdk.train(model, data.train, data.val, epochs=args.epochs, reshape=True, progress=False, seed=args.seed)
    model.eval()
    float_acc = 100 * sdk.evaluate(model, data.test)
    n_test = len(data.test.dataset)  # type: ignore[arg-type]
    seconds = time.perf_counter() - start
    print(f"digits_cnn, {args.epochs} epochs of float training with reshape (k=2) in {seconds:.0f}s")
    print(f"test set: {n_test} images (1 image = {100 / n_test:.2f} pt); calibration: training split\n")

    header = f"{'activation observer':<20} {'weights':<8}" + "".join(f"{f'({w},{a})':>16}" for w, a in pairs)
    print(header)
    print("-" * len(header))
    print(f"{'float':<20} {'-':<8}" + "".join(f"{float_acc:>9.2f}       " for _ in pairs))
    worst_8bit = 0.0
    for weight_method in weight_methods:
        for method in calibration.CALIBRATORS.names():
            cells = []
            for w, a in pairs:
                cfg = sdk.MixedPrecisionConfig.uniform(model, w, a)
                q = calibration.ptq(
                    model,
                    cfg,
                    data.train,
                    method=method,
                    weight_method=weight_method,
                    num_batches=args.calib_batches,
                )
                acc = 100 * sdk.evaluate(q, data.test)
                if (w, a) == (8, 8):
                    worst_8bit = max(worst_8bit, float_acc - acc)
                cells.append(f"{acc:>9.2f} ({acc - float_acc:+5.2f})")
            print(f"{method:<20} {weight_method:<8}" + "".join(f"{c:>16}" for c in cells))
    if any(p == (8, 8) for p in pairs):
        verdict = "within" if worst_8bit <= 0.5 else "NOT within"
        print(f"\n(8,8): worst drop {worst_8bit:.2f} pt, {verdict} 0.5 pt of float")


if __name__ == "__main__":
    main()
