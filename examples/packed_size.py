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
seeded BP-NAS search (``sdk.search``, b_max 3, 2 epochs of 5 steps) at the measured input size (the default,
capped at 32x32): classifiers on sklearn digits, detectors on the synthetic shapes scenes with their detection
loss and candidates. The nets are untrained, with random BatchNorm
statistics (folded into the convs), so biases and scales differ per channel as after training.

    PYTHONPATH=. OMP_NUM_THREADS=1 nice python examples/packed_size.py
"""

from __future__ import annotations

import argparse
import random
from typing import Any

import numpy as np
import onnx
import torch
from onnx import numpy_helper

import calibration
import sdk
import targets
from export.onnx_qdq import Traced
from export.options import LoweringOptions
from runtimes.integer.packing import DOMAIN, FUSABLE_LAYERS, OP, PACKED_DQ, fused_layer, unpack_initializers

MIXED = [(2, 4), (3, 3), (4, 4), (3, 5), (6, 4), (5, 6), (8, 8)]
CONFIGS = ("(8,8)", "(4,4)", "mixed", "searched")
NUM_CLASSES = 10  # every net's head; the shapes scenes' classes are a subset


def searched(name: str, model: torch.nn.Module, shape: tuple[int, int, int, int]) -> sdk.MixedPrecisionConfig:
    """A short seeded BP-NAS search (a real search output, not a tuned one): classifiers on digits at the
    input size, detectors on the synthetic shapes scenes with their detection loss and candidates."""
    _, c, h, _ = shape
    kw: dict[str, Any] = {"b_max": 3.0, "epochs": 2, "steps_per_epoch": 5, "progress": False, "seed": 0}
    if sdk.models.task(name) == "detect":
        from sdk.demo_detect import DETECTION_CANDIDATES
        from sdk.detection.loss import DetectionLoss

        data, _ = sdk.data.shapes(n_train=64, n_val=8, size=h, seed=0)
        w_set, a_set = data.split(0.6, seed=0)
        train, val = w_set.loader(8, shuffle=True, seed=0), a_set.loader(8, shuffle=True, seed=0)
        kw.update(
            candidates=DETECTION_CANDIDATES, mode="sampled", weight_paths="sampled",
            loss_fn=DetectionLoss(NUM_CLASSES, int(model.stride)),
        )  # fmt: skip
    else:
        train, val = sdk.data.digits(upscale=max(1, h // 8), channels=c).search_split()
    return sdk.search(model, train, val, input_shape=shape, **kw).config


def config(
    name: str, model: torch.nn.Module, which: str, shape: tuple[int, int, int, int]
) -> sdk.MixedPrecisionConfig:
    if which == "searched":
        return searched(name, model, shape)
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
    packed bytes an ``UnpackCodes``, a ``DequantizePacked`` or a fused layer node (``QConv``, ...) reads."""
    inits = {t.name: t for t in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    layers = {fused_layer(op) for op in FUSABLE_LAYERS}
    out = []
    for dq in model.graph.node:
        if dq.domain == DOMAIN and dq.op_type in layers:
            out.append(dq.input[2])
            continue
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


def codes(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Layer name -> its int8 weight codes, in a plain QDQ graph (an expanded one included)."""
    inits = {t.name: t for t in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    return {
        n.name: numpy_helper.to_array(inits[producer[n.input[1]].input[0]])
        for n in model.graph.node
        if n.name and n.op_type in FUSABLE_LAYERS
    }


def build(name: str, which: str) -> dict[str, Any]:
    """The quantized model (random BN statistics, folded, calibrated) lowered three ways: ``plain`` (every
    weight an int8 code, as the other CPU targets store them), ``before`` (the integer lowering without
    ``compact_graph``) and ``packed`` (the integer artifact); with its BOPs layer table."""
    torch.manual_seed(0)
    _, c, h, _ = sdk.models.default_input_shape(name)
    side = min(h, 32)
    shape = (1, c, side, side)
    model = sdk.models.create(name, num_classes=NUM_CLASSES).eval()
    cfg = config(name, model, which, shape)
    random_bn(model)
    q = calibration.fold_bn(sdk.quantize(model, cfg).eval())
    with torch.no_grad():
        q(torch.randn(4, c, side, side))
    traced = Traced(q, torch.randn(*shape))
    passes = targets.get("integer").lowering
    return {
        "plain": traced.lower(LoweringOptions()),
        "before": traced.lower(LoweringOptions(tuple(p for p in passes if p != "compact_graph"))),
        "packed": traced.lower(LoweringOptions(passes)),
        "layers": sdk.bops(q, input_shape=shape).layers,
    }


def measure(name: str, which: str) -> str:
    arts = build(name, which)
    plain, before, packed, layers = arts["plain"], arts["before"], arts["packed"], arts["layers"]
    total, weights, scales = split(packed)
    ideal = sum(r.params * r.w_bits for r in layers) / 8
    want, got = codes(plain), codes(unpack_initializers(packed))
    same = want.keys() == got.keys() and all(np.array_equal(want[k], got[k]) for k in want)
    label = which if which != "searched" else f"searched (w {8 * ideal / sum(r.params for r in layers):.2f})"
    sizes = (len(before.SerializeToString()), len(plain.SerializeToString()))
    return (
        f"| {name} | {label} | {total:,} | {weights:,} | {ideal:,.0f} | {weights / ideal:.3f} | {scales:,} | "
        f"{total - weights - scales:,} | {(total - scales) / ideal:.3f} | {total / (ideal + scales):.3f} | "
        f"{sizes[0]:,} | {sizes[1]:,} | "
        f"{'yes' if same else 'NO'} |"
    )


def _field(n: int) -> int:
    """Bytes of one length-delimited protobuf field holding ``n`` bytes (tag, length varint, payload)."""
    return 1 + max(1, (n.bit_length() + 6) // 7) + n


def breakdown(model: onnx.ModelProto) -> dict[str, int]:
    """Where a serialized artifact's bytes go, by protobuf field; ``framing`` is the rest (node and
    initializer headers, dims, data types, the model's own fields)."""
    g = model.graph
    weights = set(weight_sources(model))
    data = {t.name: (t.data_type, numpy_helper.to_array(t).nbytes) for t in g.initializer}
    kinds = {onnx.TensorProto.FLOAT: "float32 scales", onnx.TensorProto.INT32: "int32 bias codes"}
    parts = dict.fromkeys(("packed weights", "float32 scales", "int32 bias codes", "zero points"), 0)
    for name, (dtype, n) in data.items():
        parts["packed weights" if name in weights else kinds.get(dtype, "zero points")] += _field(n)
    names = [n.name for n in g.node] + [t.name for t in g.initializer]  # value_info's are in its own part
    names += [x for n in g.node for x in (*n.input, *n.output)]
    parts["value_info (shape annotations)"] = sum(_field(v.ByteSize()) for v in g.value_info)
    parts["tensor and node names"] = sum(_field(len(x)) for x in names if x)
    parts["op types and domains"] = sum(_field(len(x)) for n in g.node for x in (n.op_type, n.domain) if x)
    parts["attributes"] = sum(_field(a.ByteSize()) for n in g.node for a in n.attribute)
    parts["metadata"] = sum(_field(p.ByteSize()) for p in model.metadata_props)
    total = len(model.SerializeToString())
    return {"total": total, **parts, "framing": total - sum(parts.values())}


def print_breakdown(name: str, which: str) -> None:
    """The breakdown of one model's integer artifact, before and after ``compact_graph``."""
    arts = build(name, which)
    rows = [breakdown(arts["before"]), breakdown(arts["packed"])]
    print(f"\n{name} {which}: bytes by part\n\n| part | before compact_graph | after |\n| --- | --- | --- |")
    for key in rows[0]:
        print(f"| {key} | {rows[0][key]:,} | {rows[1][key]:,} |")
    counts = [f"{len(m.graph.node)} / {len(m.graph.initializer)}" for m in (arts["before"], arts["packed"])]
    print(f"| nodes / initializers | {counts[0]} | {counts[1]} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=sdk.models.names())
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=CONFIGS)
    ap.add_argument(
        "--breakdown", nargs=2, metavar=("MODEL", "CONFIG"), help="print where one artifact's bytes go, only"
    )
    args = ap.parse_args()
    if args.breakdown:
        print_breakdown(*args.breakdown)
        return
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
