"""Packed integer artifact size vs the searched weight bits: every zoo model at (8,8), (4,4), mixed, searched.

Prints, per model and config, the bytes of the integer artifact (the integer target's own lowering:
``pack_weights`` then ``compact_graph``) split three ways:

- weights: the packed weight codes (``uint8``, w bits per weight) and the int8 codes of 8-bit layers;
- scales: every other constant, i.e. weight/bias/activation scales (float32), the int32 bias codes, and the
  zero points and integer clip bounds the quantizers keep (after ``compact_graph``: one of each value);
- graph: the rest, the ONNX structure (nodes, attributes, tensor names, layer names, metadata).

``ideal`` is ``sum(params * w_bits) / 8``; issue 16's bar "<= 1.10x plus the scales" reads
``(artifact - scales) / ideal <= 1.10`` (``artifact / (ideal + scales)`` is printed too).
"before" is the same lowering without ``compact_graph``; "int8" the plain QDQ artifact the other CPU targets
ship. The packed codes are read back through the integer executor's unpacking and compared with the int8
codes of the plain artifact. "mixed" draws each layer's pair from :data:`MIXED`; "searched" runs a short
BP-NAS search (``sdk.search``, b_max 3, 2 epochs of 5 steps on sklearn digits at the model's input size) for
the classifiers with inputs up to 32x32 and skips the others. The nets are untrained, with random BatchNorm
statistics (folded into the convs), so biases and scales differ per channel as after training.

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
from runtimes.integer.packing import OP, PACKED_DQ, unpack_initializers

MIXED = [(2, 4), (3, 3), (4, 4), (3, 5), (6, 4), (5, 6), (8, 8)]
CONFIGS = ("(8,8)", "(4,4)", "mixed", "searched")


def searched(model: torch.nn.Module, shape: tuple[int, int, int, int]) -> sdk.MixedPrecisionConfig:
    """A short seeded BP-NAS search on digits (a real search output, not a tuned one)."""
    _, c, h, _ = shape
    data = sdk.data.digits(upscale=max(1, h // 8), channels=c)
    train, val = data.search_split()
    result = sdk.search(
        model, train, val, b_max=3.0, epochs=2, steps_per_epoch=5, progress=False, input_shape=shape
    )
    return result.config


def config(model: torch.nn.Module, which: str, shape: tuple[int, int, int, int]) -> sdk.MixedPrecisionConfig:
    if which == "searched":
        return searched(model, shape)
    if which != "mixed":
        w, a = (int(b) for b in which.strip("()").split(","))
        return sdk.MixedPrecisionConfig.uniform(model, w, a)
    cfg = sdk.MixedPrecisionConfig.uniform(model, 4, 4)
    rng = random.Random(0)
    for layer in cfg:
        cfg[layer] = rng.choice(MIXED)
    return cfg


@torch.no_grad()
def random_bn(model: torch.nn.Module) -> None:
    """BatchNorm statistics as training leaves them (not the identity), so folded biases are not all zero."""
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.uniform_(0.5, 1.5)
            m.bias.normal_(0.0, 0.1)
            assert m.running_mean is not None and m.running_var is not None
            m.running_mean.normal_(0.0, 0.1)
            m.running_var.uniform_(0.5, 1.5)


def weight_sources(model: onnx.ModelProto) -> list[str]:
    """Initializers holding layer weight codes, in graph order: int8 codes a DequantizeLinear reads, or the
    packed bytes an ``UnpackCodes`` or a ``DequantizePacked`` reads."""
    inits = {t.name: t for t in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    out = []
    for dq in model.graph.node:
        src = dq.input[0] if dq.op_type in ("DequantizeLinear", PACKED_DQ) else ""
        if dq.op_type == PACKED_DQ or (src in inits and inits[src].data_type == onnx.TensorProto.INT8):
            out.append(src)
        elif src in producer and producer[src].op_type == OP:
            out.append(producer[src].input[0])
    return out


def split(model: onnx.ModelProto) -> tuple[int, int, int]:
    """(total, weight, scale) bytes of a serialized artifact; weight and scale count tensor data only."""
    data = {t.name: numpy_helper.to_array(t).nbytes for t in model.graph.initializer}
    weights = set(weight_sources(model))
    return (
        len(model.SerializeToString()),
        sum(data[n] for n in weights),
        sum(b for n, b in data.items() if n not in weights),
    )


def codes(model: onnx.ModelProto) -> list[np.ndarray]:
    inits = {t.name: t for t in model.graph.initializer}
    return [numpy_helper.to_array(inits[n]) for n in weight_sources(model)]


def measure(name: str, which: str) -> str:
    torch.manual_seed(0)
    _, c, h, _ = sdk.models.default_input_shape(name)
    side = min(h, 32)
    shape = (1, c, side, side)
    model = sdk.models.create(name, num_classes=10).eval()
    if which == "searched" and (side != h or sdk.models.task(name) != "classify"):
        return (
            f"| {name} | searched | skipped: a search on digits needs a classifier with inputs up to 32x32 |"
        )
    cfg = config(model, which, shape)
    random_bn(model)
    q = calibration.fold_bn(sdk.quantize(model, cfg).eval())
    with torch.no_grad():
        q(torch.randn(4, c, side, side))
    traced = Traced(q, torch.randn(*shape))
    passes = targets.get("integer").lowering
    plain = traced.lower(LoweringOptions())  # every weight an int8 code, as the other CPU targets store them
    before = traced.lower(LoweringOptions(tuple(p for p in passes if p != "compact_graph")))
    packed = traced.lower(LoweringOptions(passes))  # the integer artifact
    total, weights, scales = split(packed)
    layers = sdk.bops(q, input_shape=shape).layers
    ideal = sum(r.params * r.w_bits for r in layers) / 8
    want, got = codes(plain), codes(unpack_initializers(packed))
    same = len(want) == len(got) and all(np.array_equal(a, b) for a, b in zip(want, got))
    label = which if which != "searched" else f"searched (w {8 * ideal / sum(r.params for r in layers):.2f})"
    sizes = (len(before.SerializeToString()), len(plain.SerializeToString()))
    return (
        f"| {name} | {label} | {total:,} | {weights:,} | {ideal:,.0f} | {weights / ideal:.3f} | {scales:,} | "
        f"{total - weights - scales:,} | {(total - scales) / ideal:.3f} | {total / (ideal + scales):.3f} | "
        f"{sizes[0]:,} | {sizes[1]:,} | "
        f"{'yes' if same else 'NO'} |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=sdk.models.names())
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=CONFIGS)
    args = ap.parse_args()
    print(
        "| model | config | artifact B | weights B | Σ params·w/8 | weights / ideal | scales B | graph B "
        "| (artifact - scales) / ideal | artifact / (ideal + scales) | before compact_graph B "
        "| int8 QDQ artifact B | read back exact |"
    )
    print("|" + " --- |" * 13)
    for name in args.models:
        for which in args.configs:
            print(measure(name, which), flush=True)


if __name__ == "__main__":
    main()
