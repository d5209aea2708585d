"""Each TensorRT rule fires on a graph that breaks it, and a graph TensorRT takes breaks none."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from export.passes.tensorrt_check import TensorRTCheck
from export.tensorrt_rules import RULES, violations
from sdk.errors import ConfigError
from tests.export._graphs import FLOAT, INT8, INT32, UINT8, Builder

Mutation = Callable[[Builder], str]


def _act(b: Builder, x: str, *, zp_type: int = INT8, zp: int = 0, integer_clip: bool = False) -> str:
    s, z = b.const(0.05), b.const(zp, zp_type)
    q = b.node("QuantizeLinear", [x, s, z])
    if integer_clip:
        q = b.node("Clip", [q, b.const(0, INT8), b.const(15, INT8)])
    return b.node("DequantizeLinear", [q, s, z])


def _weights(b: Builder, *, axis: int = 0, int32_bias: bool = False) -> tuple[str, str]:
    codes = b.const(np.ones((4, 4, 3, 3)), INT8)
    w = b.node("DequantizeLinear", [codes, b.const([0.1, 0.2, 0.3, 0.4]), b.const([0] * 4, INT8)], axis=axis)
    if not int32_bias:
        return w, b.const([0.5, -0.5, 0.25, 0.0], FLOAT)
    bias = b.node(
        "DequantizeLinear", [b.const([1, 2, 3, 4], INT32), b.const([0.01] * 4), b.const([0] * 4, INT32)]
    )
    return w, bias


def _graph(
    *, act: dict | None = None, weights: dict | None = None, quantize_x: bool = True, add: str = "dq",
    pool: dict | None = None,
) -> Builder:  # fmt: skip
    """x -> QDQ -> Conv -> float Clip -> QDQ -> Add(QDQ of x) -> MaxPool -> y: a graph TensorRT takes."""
    b = Builder()
    x = _act(b, "x", **(act or {})) if quantize_x else "x"
    w, bias = _weights(b, **(weights or {}))
    y = b.node("Conv", [x, w, bias], name="conv", pads=[1, 1, 1, 1])
    y = b.node("Clip", [y, b.const(0.0), b.const(6.0)])
    y = _act(b, y)
    other = _act(b, "x") if add == "dq" else "x"
    y = b.node("Add", [y, other], name="add")
    b.node("MaxPool", [y], "y", name="pool", kernel_shape=[2, 2], strides=[2, 2], **(pool or {}))
    return b


BREAKS: dict[str, Callable[[], object]] = {
    "opset": lambda: _with_opset(_graph().model(), 21),
    "op_types": lambda: _with_op(_graph(), "Tanh"),
    "uint8_io_only": lambda: _graph(act={"zp_type": UINT8}).model(),
    "qdq_scale_zero_point": lambda: _graph(act={"zp": 3}).model(),
    "per_channel_axis": lambda: _graph(weights={"axis": 1}).model(),
    "int8_read_by_dq_only": lambda: _graph(act={"integer_clip": True}).model(),
    "float_constants": lambda: _graph(weights={"int32_bias": True}).model(),
    "weighted_inputs_quantized": lambda: _graph(quantize_x=False).model(),
    "add_inputs_quantized": lambda: _graph(add="float").model(),
    "pool_attrs": lambda: _graph(pool={"dilations": [2, 2]}).model(),
}


def _with_opset(model: object, opset: int) -> object:
    model.opset_import[0].version = opset  # type: ignore[attr-defined]
    return model


def _with_op(b: Builder, op: str) -> object:
    b.node(op, ["y"], "z")
    m = b.model()
    m.graph.output[0].name = "z"  # type: ignore[attr-defined]
    return m


def test_every_rule_cites_a_source_and_has_a_breaking_graph():
    assert {r.name for r in RULES} == set(BREAKS)
    assert all(r.source.startswith("[") for r in RULES)


def test_a_graph_tensorrt_takes_breaks_no_rule():
    model = _graph().model()
    assert violations(model) == []
    assert TensorRTCheck().apply(model) == (model, False)


@pytest.mark.parametrize("rule", sorted(BREAKS))
def test_the_rule_fires_on_a_graph_that_breaks_it(rule: str):
    found = violations(BREAKS[rule]())  # type: ignore[arg-type]
    assert rule in {name for name, _ in found}, found
    with pytest.raises(ConfigError, match=rf"\[{rule}\]|more"):
        TensorRTCheck().apply(BREAKS[rule]())  # type: ignore[arg-type]
