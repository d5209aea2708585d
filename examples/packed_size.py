"""Packed integer artifact size vs the searched weight bits: every zoo model at (8,8), (4,4) and mixed.

Prints, per model and config: the integer artifact's bytes, its packed weight bytes, the ideal
``sum(params * w_bits) / 8``, the scale + bias bytes, and the ratio ``artifact / (ideal + scales + biases)``
(the rest is the ONNX graph itself). The artifact is the integer target's own lowering (``PackWeights``
last); the codes are read back through the integer executor's unpacking and compared with the int8
codes of the plain QDQ artifact.

    PYTHONPATH=. OMP_NUM_THREADS=1 nice python examples/packed_size.py
"""

from __future__ import annotations

import argparse
import random

import numpy as np
import onnx
import torch
from onnx import numpy_helper

import calibration
import sdk
import targets
from export.onnx_qdq import Traced
from export.options import LoweringOptions
from runtimes.integer.packing import OP, unpack_initializers

MIXED = [(2, 4), (3, 3), (4, 4), (3, 5), (6, 4), (5, 6), (8, 8)]


def config(model: torch.nn.Module, which: str) -> sdk.MixedPrecisionConfig:
    if which != "mixed":
        w, a = (int(b) for b in which.strip("()").split(","))
        return sdk.MixedPrecisionConfig.uniform(model, w, a)
    cfg = sdk.MixedPrecisionConfig.uniform(model, 4, 4)
    rng = random.Random(0)
    for name in cfg:
        cfg[name] = rng.choice(MIXED)
    return cfg


def dq_codes(model: onnx.ModelProto) -> list[tuple[np.ndarray, int]]:
    """(codes, stored bytes) of every constant weight read by a DequantizeLinear, in graph order."""
    inits = {t.name: t for t in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    out = []
    for dq in model.graph.node:
        src = dq.input[0] if dq.op_type == "DequantizeLinear" else ""
        if src in inits and inits[src].data_type == onnx.TensorProto.INT8:
            codes = numpy_helper.to_array(inits[src])
            out.append((codes, codes.nbytes))
        elif src in producer and producer[src].op_type == OP:
            packed = numpy_helper.to_array(inits[producer[src].input[0]])
            out.append((np.zeros(0), packed.nbytes))
    return out


def measure(name: str, which: str) -> str:
    torch.manual_seed(0)
    _, c, h, w = sdk.models.default_input_shape(name)
    side = min(h, 32)
    model = sdk.models.create(name, num_classes=10).eval()
    q = calibration.fold_bn(sdk.quantize(model, config(model, which)).eval())
    with torch.no_grad():
        q(torch.randn(4, c, side, side))
    traced = Traced(q, torch.randn(1, c, side, side))
    plain = traced.lower(LoweringOptions())  # every weight an int8 code, as the other CPU targets store them
    packed = traced.lower(LoweringOptions(targets.get("integer").lowering))  # the integer artifact
    total = len(packed.SerializeToString())
    weights = sum(b for _, b in dq_codes(packed))
    ideal = sum(r.params * r.w_bits for r in sdk.bops(q, input_shape=(1, c, side, side)).layers) / 8
    scales = sum(
        numpy_helper.to_array(t).nbytes
        for t in packed.graph.initializer
        if t.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.INT32)
    )
    want = [c for c, _ in dq_codes(plain)]
    got = [c for c, _ in dq_codes(unpack_initializers(packed))]
    same = len(want) == len(got) and all(np.array_equal(a, b) for a, b in zip(want, got))
    return (
        f"| {name} | {which} | {total:,} | {weights:,} | {ideal:,.0f} | {weights / ideal:.3f} | {scales:,} | "
        f"{total / (ideal + scales):.3f} | {len(plain.SerializeToString()):,} | {'yes' if same else 'NO'} |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=sdk.models.names())
    ap.add_argument("--configs", nargs="+", default=["(8,8)", "(4,4)", "mixed"])
    args = ap.parse_args()
    print(
        "| model | config | artifact B | packed weights B | Σ params·w/8 | weights/ideal | scales+biases B "
        "| artifact/(ideal+scales) | unpacked int8 artifact B | read back exact |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in args.models:
        for which in args.configs:
            print(measure(name, which), flush=True)


if __name__ == "__main__":
    main()
