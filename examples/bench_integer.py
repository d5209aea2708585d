"""Integer runtime benchmark: throughput against ONNX Runtime FP32, and code-level parity with PyTorch.

    .venv/bin/python examples/bench_integer.py [--batches 1,2,4,8] [--runs 20] [--rounds 4] [--threads 2]
    .venv/bin/python examples/bench_integer.py --parity [--inputs 1000] [--seeds 2]

Throughput (default): ResNet-18 at 224x224 with random weights, quantized uniform (4, 4), uniform (8, 8) and a
mixed configuration, exported to the QDQ artifact and run by the integer runtime, against the float model
exported to ONNX and run by ONNX Runtime FP32; both engines get ``--threads`` threads (BLAS threads for the
integer runtime). Blocks of runs alternate between the two engines so machine load hits both alike. Prints
images/s and the ratio integer / ORT per batch size; no expected numbers.

Parity (``--parity``): every zoo model (``sdk.models.names()``, small inputs) with random BN statistics and
random mixed configurations from {(2,4),(3,3),(4,4),(4,6),(6,4),(8,8),(3,5)}, BN folded and exported. Prints
per model: the share of identical codes at every quantizer against the PyTorch fake-quant model when the
integer runtime runs end to end, the same share when each quantizer is fed the PyTorch codes of its inputs
(``run_codes(feed=...)``: no earlier difference propagates), and the identical-top-1 rate.
"""

from __future__ import annotations

import argparse
import random
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from _timing import alternating_blocks

PAIRS = ((2, 4), (3, 3), (4, 4), (4, 6), (6, 4), (8, 8), (3, 5))


# -- building -----------------------------------------------------------------------------------------------
def quantized(model: Any, config: dict[str, tuple[int, int]], calib: Any) -> Any:
    """sdk.quantize, initialise every activation quantizer on ``calib``, fold BN."""
    import torch

    import sdk
    from calibration import fold_bn

    q = sdk.quantize(model, config).eval()
    with torch.no_grad():
        q(calib)
    return fold_bn(q).eval()


def export_qdq(qmodel: Any, shape: tuple[int, ...], path: Path) -> Path:
    import torch

    from export.onnx_qdq import to_onnx

    to_onnx(qmodel, path, torch.zeros(1, *shape))
    return path


def export_float(model: Any, shape: tuple[int, ...], path: Path) -> Path:
    import torch

    x = torch.zeros(1, *shape)
    torch.onnx.export(
        model, (x,), str(path), input_names=["input"], output_names=["logits"], opset_version=17,
        dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}}, dynamo=False,
    )  # fmt: skip
    return path


def configs(model: Any) -> dict[str, dict[str, tuple[int, int]]]:
    import sdk

    names = sdk.quant.quantizable_layer_names(model)
    mixed = {n: PAIRS[i % len(PAIRS)] for i, n in enumerate(names)}
    return {"w4a4": {n: (4, 4) for n in names}, "w8a8": {n: (8, 8) for n in names}, "mixed": mixed}


# -- throughput ---------------------------------------------------------------------------------------------
def throughput(args: argparse.Namespace) -> None:
    import onnxruntime as ort
    import torch

    import sdk
    from runtimes.base import RuntimeOptions
    from runtimes.integer import load_model

    torch.manual_seed(0)
    shape = (3, args.size, args.size)
    model = sdk.models.create("resnet18", num_classes=1000).eval()
    calib = torch.randn(8, *shape)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as d:
        so = ort.SessionOptions()
        so.intra_op_num_threads = args.threads
        so.inter_op_num_threads = 1
        ref = ort.InferenceSession(str(export_float(model, shape, Path(d) / "float.onnx")), so,
                                   providers=["CPUExecutionProvider"])  # fmt: skip
        print(
            f"ResNet-18 {args.size}x{args.size}, {args.threads} threads, "
            f"{args.runs} runs a batch in {args.rounds} alternating blocks"
        )
        for label, cfg in configs(model).items():
            path = export_qdq(quantized(model, cfg, calib), shape, Path(d) / f"{label}.onnx")
            sess = load_model(path, options=RuntimeOptions(threads=args.threads))
            kinds = sorted({layer.gemm for layer in sess.layers()})
            print(f"\n[{label}] GEMM containers: {', '.join(kinds)}")
            for b in args.batches:
                x = rng.normal(size=(b, *shape)).astype(np.float32)
                sess.run(x), ref.run(None, {"input": x})  # warm up
                fns = {"int": partial(sess.run, x), "ort": partial(ref.run, None, {"input": x})}
                ms = alternating_blocks(fns, args.runs, args.rounds, settle=1)
                ips_int, ips_ort = (1e3 * b / float(np.median(ms[k])) for k in ("int", "ort"))
                print(f"  batch {b}: integer {ips_int:7.2f} img/s   ORT FP32 {ips_ort:7.2f} img/s   "
                      f"ratio {ips_int / ips_ort:.3f}x")  # fmt: skip
            sess.close()


# -- parity -------------------------------------------------------------------------------------------------
def build_zoo(name: str, seed: int) -> tuple[Any, tuple[int, ...]]:
    import torch
    from torch import nn

    import sdk
    from sdk.quant import ActQuantizer

    torch.manual_seed(seed)
    shape = (1, 8, 8) if name == "digits_cnn" else (3, 32, 32)
    model = sdk.models.create(name, num_classes=10, **({"in_channels": 1} if name == "digits_cnn" else {}))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.2)
                m.running_mean.normal_(0, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    model.eval()
    rng = random.Random(seed)
    cfg = {n: rng.choice(PAIRS) for n in sdk.quant.quantizable_layer_names(model)}
    q = quantized(model, cfg, torch.randn(16, *shape))
    with torch.no_grad():  # alphas as training leaves them, not exact data quantiles
        gen = torch.Generator().manual_seed(seed)
        for m in q.modules():
            if isinstance(m, ActQuantizer):
                m.alpha.mul_(0.9 + 0.2 * torch.rand((), generator=gen))
    return q, shape


def torch_codes(qmodel: Any, x: Any) -> tuple[dict[str, np.ndarray], np.ndarray]:
    import torch

    from sdk.quant import ActQuantizer

    codes: dict[str, np.ndarray] = {}
    hooks = []
    for name, m in qmodel.named_modules():
        if isinstance(m, ActQuantizer):
            hooks.append(m.register_forward_pre_hook(
                lambda mod, inp, name=name: codes.__setitem__(name, mod.codes(inp[0]).numpy())))  # fmt: skip
    with torch.no_grad():
        logits = qmodel(x).numpy()
    for h in hooks:
        h.remove()
    return codes, logits


def torch_name(info: Any, last: str) -> str:
    """The ActQuantizer an ONNX quantizer stands for, from the nodes reading its codes."""
    for node, op_type, index in info.consumers:
        if op_type in ("Conv", "Gemm", "MatMul"):
            return f"{node}.act_quant"
        if op_type == "Add":
            return f"{node}.quant_{'ab'[index]}"
    return f"{last}.out_quant"


def parity(args: argparse.Namespace) -> None:
    import torch

    import sdk
    from runtimes.integer import load_model

    torch.set_num_threads(args.threads)
    print(f"{'model':<14} {'seed':>4} {'codes end-to-end':>18} {'codes per quantizer':>20} {'top-1':>8}")
    with tempfile.TemporaryDirectory() as d:
        for name in sdk.models.names():
            for seed in range(args.seeds):
                q, shape = build_zoo(name, seed)
                sess = load_model(export_qdq(q, shape, Path(d) / f"{name}{seed}.onnx"))
                last = sess.layers()[-1].name
                same = {"e2e": 0, "fed": 0}
                total = top = 0
                for start in range(0, args.inputs, args.chunk):
                    x = torch.randn(min(args.chunk, args.inputs - start), *shape,
                                    generator=torch.Generator().manual_seed(1000 * seed + start))  # fmt: skip
                    ref, logits = torch_codes(q, x)
                    want = {i.name: ref[torch_name(i, last)] for i in sess.quantizers()}
                    got = sess.run_codes(x.numpy())
                    fed = sess.run_codes(x.numpy(), feed=want)
                    for k, v in want.items():
                        same["e2e"] += int((got[k] == v).sum())
                        same["fed"] += int((fed[k] == v).sum())
                        total += v.size
                    top += int((sess.run(x.numpy())["logits"].argmax(1) == logits.argmax(1)).sum())
                e2e, fed = 100 * same["e2e"] / total, 100 * same["fed"] / total
                print(f"{name:<14} {seed:>4} {e2e:>17.5f}% {fed:>19.5f}% "
                      f"{100 * top / args.inputs:>7.2f}%")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--parity", action="store_true", help="measure code parity with PyTorch instead of speed")
    p.add_argument("--batches", type=lambda s: [int(b) for b in s.split(",")], default=[1, 2, 4, 8])
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--rounds", type=int, default=4, help="alternating blocks the runs are split into")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--inputs", type=int, default=1000)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--chunk", type=int, default=100)
    args = p.parse_args()
    parity(args) if args.parity else throughput(args)


if __name__ == "__main__":
    main()
