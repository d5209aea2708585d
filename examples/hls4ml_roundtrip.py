"""hls4ml round trip: which zoo models convert, the C simulation vs the integer executor, the precision table.

For each zoo model at a small input, under a random mixed config with power-of-two scales (BN folded with
random statistics, as tests/export do): lower to QONNX, derive every hls4ml type, convert, compile the C
simulation (g++), and count the inputs whose output codes equal the integer executor's. Refusals print the
reason. Slow: each C simulation compiles for minutes (hls4ml's io_parallel unrolls every layer).

    PYTHONPATH=. OMP_NUM_THREADS=1 nice python examples/hls4ml_roundtrip.py --models digits_cnn resnet20 \
        --inputs 1000 --table
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import calibration
import sdk
from export._hls4ml_precision import derive_precisions
from export.hls4ml_export import convert, precision_table, prepare, verify_codes
from export.onnx_qdq import Traced
from export.options import LoweringOptions
from export.qonnx_export import lower_qonnx
from runtimes.integer import load_model
from sdk.errors import BpnasError

PAIRS = [(2, 4), (3, 3), (4, 4), (4, 6), (6, 4), (8, 8), (3, 5)]
SIZES = {"digits_cnn": 8, "resnet20": 8, "resnet18": 8, "resnet50": 8, "mobilenet_v2": 8}


def quantized(name: str, seed: int, side: int) -> tuple[torch.nn.Module, torch.Tensor]:
    """A random mixed config, random BN, calibrated on noise, scales rounded to powers of two."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    c = sdk.models.default_input_shape(name)[1]
    model = sdk.models.create(name, num_classes=10, in_channels=c).eval()
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            with torch.no_grad():
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) * 0.5 + 0.75)
    cfg = sdk.MixedPrecisionConfig.uniform(model, 4, 4)
    for layer in cfg:
        cfg[layer] = PAIRS[int(rng.integers(len(PAIRS)))]
    q = calibration.fold_bn(sdk.quantize(model, cfg).eval())
    with torch.no_grad():
        for _ in range(3):
            q(torch.randn(64, c, side, side, generator=g))
        for m in q.modules():  # off the value lattice, as trained alphas are (tests/export/_helpers.py)
            if isinstance(m, sdk.quant.ActQuantizer):
                m.alpha.mul_(1 + 0.05 * torch.rand((), generator=g))
        calibration.round_scales_to_power_of_two_(q)
    return q, torch.randn(1, c, side, side, generator=g)


def run(name: str, n: int, seed: int, table: bool, work: Path) -> None:
    side = SIZES.get(name, 8)
    q, example = quantized(name, seed, side)
    traced = Traced(q, example)
    qonnx = lower_qonnx(traced)
    try:
        derive_precisions(*prepare(qonnx))
        t0 = time.perf_counter()
        project = convert(qonnx, work / f"{name}-{seed}")
    except BpnasError as e:
        print(f"{name} {side}x{side} cfg{seed}: REFUSED: {e}")
        return
    build_s = time.perf_counter() - t0
    integer = load_model(traced.lower(LoweringOptions()))
    x = np.random.default_rng(seed + 7).standard_normal((n, *example.shape[1:])).astype(np.float32)
    t0 = time.perf_counter()
    same, total = verify_codes(project, lambda b: integer.run(b)["logits"], x)
    print(
        f"{name} {side}x{side} cfg{seed}: converted; C-sim output codes identical to the integer executor on "
        f"{same}/{total} inputs ({100 * same / total:.1f}%); convert+compile {build_s:.0f} s, "
        f"C-sim {1e3 * (time.perf_counter() - t0) / total:.1f} ms/input"
    )
    if table:
        print(precision_table(project.table))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["digits_cnn", "resnet20", "mobilenet_v2", "resnet18"])
    ap.add_argument("--inputs", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--table", action="store_true", help="print the per-layer precision table")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bpnas-hls4ml-") as tmp:
        for name in args.models:
            run(name, args.inputs, args.seed, args.table, Path(tmp))


if __name__ == "__main__":
    main()
