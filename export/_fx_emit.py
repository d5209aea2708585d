"""The QDQ front end: a fake-quant model to the first QDQ ONNX graph, torch.fx trace + one emitter per op.

The zoo models are fx-traceable by contract, and their ops are few, so emitting ONNX directly takes
milliseconds where ``torch.onnx.export`` takes seconds. This is the exporter's one QDQ front end: handlers
are looked up by module type (along the MRO), function or method name; a model using anything else raises
:class:`Unsupported`, which the caller reports as an InputError naming the op. The graph's conventions
(initializer names ``<layer>.weight_codes`` etc.) are what the lowering passes read; what it computes is
``export._standin.standin_model``'s arithmetic, which the parity tests hold it to.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper
from torch import fx, nn

from export._standin import layer_tensors
from export.lowering import TRACE_OPSET
from sdk.config import FLOAT_BITS
from sdk.models.layers import Add
from sdk.quant.modules import QuantAdd, QuantConv2d, QuantLinear
from sdk.quant.quantizers import ActQuantizer

__all__ = ["Unsupported", "emit"]

IR_VERSION = 10  # what ONNX Runtime >= 1.18, OpenVINO and TensorRT 10 read


class Unsupported(Exception):
    """The model uses an op the emitter has no handler for (the caller refuses the model)."""


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if isinstance(m, (QuantConv2d, QuantLinear, QuantAdd, ActQuantizer, Add)):
            return True
        return super().is_leaf_module(m, qualname)


class _Emitter:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._names: set[str] = set()

    def unique(self, hint: str) -> str:
        name, k = hint, 0
        while name in self._names:
            k += 1
            name = f"{hint}_{k}"
        self._names.add(name)
        return name

    def const(self, value: Any, hint: str) -> str:
        arr = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
        name = self.unique(hint)
        self.inits.append(numpy_helper.from_array(arr, name))
        return name

    def op(self, op_type: str, inputs: list[str], *, name: str, **attrs: Any) -> str:
        node_name = self.unique(name)
        out = self.unique(f"{node_name}_out")
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=node_name, **attrs))
        return out

    # -- quantizers ------------------------------------------------------------------------------------
    def act_quant(self, q: ActQuantizer | None, x: str, path: str) -> str:
        if q is None or q.bits >= FLOAT_BITS:
            return x
        lo, hi = q.range
        dtype = np.int8 if q.signed else np.uint8
        scale = self.const(q.scale().detach().float().reshape(()), f"{path}.scale")
        zp = self.const(np.array(0, dtype), f"{path}.zero_point")
        qx = self.op("QuantizeLinear", [x, scale, zp], name=f"{path}/quantize")
        lo_t, hi_t = (
            self.const(np.array(lo, dtype), f"{path}.lo"),
            self.const(np.array(hi, dtype), f"{path}.hi"),
        )
        qx = self.op("Clip", [qx, lo_t, hi_t], name=f"{path}/clip")
        return self.op("DequantizeLinear", [qx, scale, zp], name=f"{path}/dequantize")

    def layer_params(self, layer: QuantConv2d | QuantLinear, path: str) -> tuple[str, str | None]:
        """(weight tensor, bias tensor or None) of a quantized layer: DQ of integer codes, or float."""
        t = layer_tensors(layer)
        if t.weight_codes is not None and t.weight_scale is not None:
            codes = self.const(t.weight_codes, f"{path}.weight_codes")
            scale = self.const(t.weight_scale, f"{path}.weight_scale")
            zp = self.const(np.zeros(t.weight_scale.shape, np.int8), f"{path}.weight_zero_point")
            w = self.op("DequantizeLinear", [codes, scale, zp], name=f"{path}/weight_dq", axis=0)
        else:
            w = self.const(t.weight, f"{path}.weight")
        b = None
        if t.bias_codes is not None and t.bias_scale is not None:
            codes = self.const(t.bias_codes, f"{path}.bias_codes")
            scale = self.const(t.bias_scale, f"{path}.bias_scale")
            zp = self.const(np.zeros(t.bias_scale.shape, np.int32), f"{path}.bias_zero_point")
            b = self.op("DequantizeLinear", [codes, scale, zp], name=f"{path}/bias_dq", axis=0)
        elif t.bias is not None:
            b = self.const(t.bias, f"{path}.bias")
        return w, b


# -- handlers ------------------------------------------------------------------------------------------------
# module handler: (emitter, qualified name, module, input tensor names, fx node) -> output tensor name
ModuleHandler = Callable[[_Emitter, str, Any, list[str], fx.Node], str]


def _conv_attrs(m: nn.Conv2d) -> dict[str, Any]:
    if m.padding_mode != "zeros":
        raise Unsupported(f"Conv2d padding_mode={m.padding_mode!r}")
    left, right, top, bottom = m._reversed_padding_repeated_twice
    return {
        "kernel_shape": list(m.kernel_size),
        "strides": list(m.stride),
        "pads": [top, left, bottom, right],
        "dilations": list(m.dilation),
        "group": m.groups,
    }


def _quant_conv(e: _Emitter, path: str, m: QuantConv2d, xs: list[str], node: fx.Node) -> str:
    x = e.act_quant(m.act_quant, xs[0], f"{path}.act_quant")
    w, b = e.layer_params(m, path)
    y = e.op("Conv", [x, w] + ([b] if b else []), name=path, **_conv_attrs(m))
    return e.act_quant(m.out_quant, y, f"{path}.out_quant")


def _quant_linear(e: _Emitter, path: str, m: QuantLinear, xs: list[str], node: fx.Node) -> str:
    _require_rank(node.args[0], 2, "Linear on inputs that are not 2-D")
    x = e.act_quant(m.act_quant, xs[0], f"{path}.act_quant")
    w, b = e.layer_params(m, path)
    y = e.op("Gemm", [x, w] + ([b] if b else []), name=path, transB=1)
    return e.act_quant(m.out_quant, y, f"{path}.out_quant")


def _conv(e: _Emitter, path: str, m: nn.Conv2d, xs: list[str], node: fx.Node) -> str:
    ins = [xs[0], e.const(m.weight.detach().float(), f"{path}.weight")]
    if m.bias is not None:
        ins.append(e.const(m.bias.detach().float(), f"{path}.bias"))
    return e.op("Conv", ins, name=path, **_conv_attrs(m))


def _linear(e: _Emitter, path: str, m: nn.Linear, xs: list[str], node: fx.Node) -> str:
    _require_rank(node.args[0], 2, "Linear on inputs that are not 2-D")
    ins = [xs[0], e.const(m.weight.detach().float(), f"{path}.weight")]
    if m.bias is not None:
        ins.append(e.const(m.bias.detach().float(), f"{path}.bias"))
    return e.op("Gemm", ins, name=path, transB=1)


def _quant_add(e: _Emitter, path: str, m: QuantAdd, xs: list[str], node: fx.Node) -> str:
    a = e.act_quant(m.quant_a, xs[0], f"{path}.quant_a")
    b = e.act_quant(m.quant_b, xs[1], f"{path}.quant_b")
    return e.op("Add", [a, b], name=path)


def _clip(e: _Emitter, x: str, lo: float, hi: float, path: str) -> str:
    return e.op(
        "Clip", [x, e.const(np.float32(lo), f"{path}.min"), e.const(np.float32(hi), f"{path}.max")], name=path
    )


def _hardtanh(e: _Emitter, path: str, m: nn.Hardtanh, xs: list[str], node: fx.Node) -> str:
    return _clip(e, xs[0], m.min_val, m.max_val, path)


def _flatten(e: _Emitter, path: str, m: nn.Flatten, xs: list[str], node: fx.Node) -> str:
    return _flatten_from(e, xs[0], m.start_dim, m.end_dim, node.args[0], path)


def _flatten_from(e: _Emitter, x: str, start: int, end: int, src: Any, path: str) -> str:
    rank = _rank(src)
    if end not in (-1, rank - 1) or start not in (1, 1 - rank):
        raise Unsupported(f"flatten({start}, {end})")
    return e.op("Flatten", [x], name=path, axis=1)


def _pair(v: Any) -> list[int]:
    return list(v) if isinstance(v, (tuple, list)) else [int(v), int(v)]


def _maxpool(e: _Emitter, path: str, m: nn.MaxPool2d, xs: list[str], node: fx.Node) -> str:
    if m.return_indices:
        raise Unsupported("MaxPool2d(return_indices=True)")
    p = _pair(m.padding)
    return e.op(
        "MaxPool",
        [xs[0]],
        name=path,
        kernel_shape=_pair(m.kernel_size),
        strides=_pair(m.stride or m.kernel_size),
        pads=[p[0], p[1], p[0], p[1]],
        dilations=_pair(m.dilation),
        ceil_mode=int(m.ceil_mode),
    )


def _avgpool(e: _Emitter, path: str, m: nn.AvgPool2d, xs: list[str], node: fx.Node) -> str:
    if m.divisor_override is not None:
        raise Unsupported("AvgPool2d(divisor_override=...)")
    p = _pair(m.padding)
    return e.op(
        "AveragePool",
        [xs[0]],
        name=path,
        kernel_shape=_pair(m.kernel_size),
        strides=_pair(m.stride or m.kernel_size),
        pads=[p[0], p[1], p[0], p[1]],
        ceil_mode=int(m.ceil_mode),
        count_include_pad=int(m.count_include_pad),
    )


def _adaptive_avg(e: _Emitter, x: str, size: Any, src: Any, path: str) -> str:
    shape = _shape(src)
    out = _pair(size)
    out = [shape[2 + i] if o is None else o for i, o in enumerate(out)]
    if out == [1, 1]:
        return e.op("GlobalAveragePool", [x], name=path)
    h, w = shape[2], shape[3]
    if h % out[0] or w % out[1]:
        raise Unsupported(f"AdaptiveAvgPool2d({size}) on {h}x{w}")
    k = [h // out[0], w // out[1]]
    return e.op("AveragePool", [x], name=path, kernel_shape=k, strides=k)


def _batchnorm(e: _Emitter, path: str, m: nn.BatchNorm2d, xs: list[str], node: fx.Node) -> str:
    if m.running_mean is None or m.running_var is None:
        raise Unsupported("BatchNorm2d without running statistics")
    weight = m.weight if m.weight is not None else torch.ones_like(m.running_mean)
    bias = m.bias if m.bias is not None else torch.zeros_like(m.running_mean)
    stats = {"weight": weight, "bias": bias, "running_mean": m.running_mean, "running_var": m.running_var}
    ins = [xs[0]] + [e.const(t.detach().float(), f"{path}.{n}") for n, t in stats.items()]
    return e.op("BatchNormalization", ins, name=path, epsilon=float(m.eps))


MODULE_HANDLERS: dict[type[nn.Module], ModuleHandler] = {
    QuantConv2d: _quant_conv,
    QuantLinear: _quant_linear,
    QuantAdd: _quant_add,
    ActQuantizer: lambda e, p, m, xs, n: e.act_quant(m, xs[0], p),
    Add: lambda e, p, m, xs, n: e.op("Add", xs[:2], name=p),
    nn.Conv2d: _conv,
    nn.Linear: _linear,
    nn.ReLU: lambda e, p, m, xs, n: e.op("Relu", xs[:1], name=p),
    nn.Hardtanh: _hardtanh,  # ReLU6 is a Hardtanh(0, 6)
    nn.Sigmoid: lambda e, p, m, xs, n: e.op("Sigmoid", xs[:1], name=p),
    nn.Identity: lambda e, p, m, xs, n: xs[0],
    nn.Dropout: lambda e, p, m, xs, n: xs[0],  # export is inference
    nn.Flatten: _flatten,
    nn.MaxPool2d: _maxpool,
    nn.AvgPool2d: _avgpool,
    nn.AdaptiveAvgPool2d: lambda e, p, m, xs, n: _adaptive_avg(e, xs[0], m.output_size, n.args[0], p),
    nn.BatchNorm2d: _batchnorm,
}

# function / method handler: (emitter, node name, input tensor names, fx node) -> output tensor name
CallHandler = Callable[[_Emitter, str, list[str], fx.Node], str]


def _binary(op_type: str) -> CallHandler:
    def handle(e: _Emitter, name: str, xs: list[str], node: fx.Node) -> str:
        if len(xs) != 2 or node.kwargs.get("alpha", 1) != 1:
            raise Unsupported(f"{op_type} with {len(xs)} tensor operands")
        return e.op(op_type, xs, name=name)

    return handle


def _flatten_call(e: _Emitter, name: str, xs: list[str], node: fx.Node) -> str:
    start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
    end = node.args[2] if len(node.args) > 2 else node.kwargs.get("end_dim", -1)
    return _flatten_from(e, xs[0], int(start), int(end), node.args[0], name)  # type: ignore[arg-type]


def _relu6_call(e: _Emitter, name: str, xs: list[str], node: fx.Node) -> str:
    return _clip(e, xs[0], 0.0, 6.0, name)


def _adaptive_call(e: _Emitter, name: str, xs: list[str], node: fx.Node) -> str:
    size = node.args[1] if len(node.args) > 1 else node.kwargs["output_size"]
    return _adaptive_avg(e, xs[0], size, node.args[0], name)


def _cat_call(e: _Emitter, name: str, xs: list[str], node: fx.Node) -> str:
    dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
    rank = _rank(node)
    if not isinstance(dim, int) or not -rank <= dim < rank:
        raise Unsupported(f"cat along dim {dim!r}")
    return e.op("Concat", xs, name=name, axis=dim % rank)


CALL_HANDLERS: dict[Any, CallHandler] = {
    operator.add: _binary("Add"),
    torch.add: _binary("Add"),
    operator.mul: _binary("Mul"),
    torch.mul: _binary("Mul"),
    torch.flatten: _flatten_call,
    "flatten": _flatten_call,
    torch.relu: lambda e, n, xs, node: e.op("Relu", xs[:1], name=n),
    F.relu: lambda e, n, xs, node: e.op("Relu", xs[:1], name=n),
    "relu": lambda e, n, xs, node: e.op("Relu", xs[:1], name=n),
    F.relu6: _relu6_call,
    F.adaptive_avg_pool2d: _adaptive_call,
    torch.cat: _cat_call,
}
_LIST_INPUTS = (torch.cat,)  # calls whose first argument is a list of tensors


# -- shape helpers -------------------------------------------------------------------------------------------
def _shape(src: Any) -> list[int]:
    meta = getattr(src, "meta", {}).get("tensor_meta") if isinstance(src, fx.Node) else None
    if meta is None:
        raise Unsupported("an op whose input shape is unknown")
    return list(meta.shape)


def _rank(src: Any) -> int:
    return len(_shape(src))


def _require_rank(src: Any, rank: int, what: str) -> None:
    if _rank(src) != rank:
        raise Unsupported(what)


def _tensor_inputs(node: fx.Node, env: dict[fx.Node, str]) -> list[str]:
    xs = []
    for a in node.args:
        if isinstance(a, fx.Node):
            if a not in env:
                raise Unsupported(f"{node.format_node()} reads a non-tensor value")
            xs.append(env[a])
        elif isinstance(a, (list, tuple)) and any(isinstance(v, fx.Node) for v in a):
            listed = [v for v in a if isinstance(v, fx.Node) and v in env]
            if node.target not in _LIST_INPUTS or xs or len(listed) != len(a):
                raise Unsupported(f"{node.format_node()} takes a list of tensors")
            xs.extend(env[v] for v in listed)
    return xs


def _module_handler(m: nn.Module) -> ModuleHandler | None:
    for cls in type(m).__mro__:
        handler = MODULE_HANDLERS.get(cls)  # type: ignore[call-overload]
        if handler is not None:
            return handler
    return None


def emit(qmodel: nn.Module, example_input: torch.Tensor) -> onnx.ModelProto:
    """The QDQ graph of ``qmodel`` (eval mode) at opset 18; raises Unsupported when an op has no handler."""
    try:
        gm = fx.GraphModule(qmodel, _Tracer().trace(qmodel))
    except Exception as err:  # noqa: BLE001 - any trace failure means "use the general exporter"
        raise Unsupported(f"torch.fx cannot trace the model: {err}") from err
    x = example_input[:1].detach().float()
    with torch.no_grad():
        fx.passes.shape_prop.ShapeProp(gm).propagate(x)
    e = _Emitter()
    env: dict[fx.Node, str] = {}
    inputs: list[onnx.ValueInfoProto] = []
    outputs: list[onnx.ValueInfoProto] = []
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            if inputs:
                raise Unsupported("models with more than one input")
            env[node] = e.unique("input")
            shape: list[str | int | None] = ["N", *_shape(node)[1:]]
            inputs.append(helper.make_tensor_value_info(env[node], TensorProto.FLOAT, shape))
        elif node.op == "output":
            out = node.args[0]
            if not isinstance(out, fx.Node) or out not in env:
                raise Unsupported("models whose output is not a single tensor")
            shape = ["N", *_shape(out)[1:]]
            outputs.append(helper.make_tensor_value_info(env[out], TensorProto.FLOAT, shape))
        elif node.op == "call_module":
            mod = gm.get_submodule(node.target)
            handler = _module_handler(mod)
            if handler is None:
                raise Unsupported(f"module {type(mod).__name__} ({node.target})")
            env[node] = handler(e, str(node.target), mod, _tensor_inputs(node, env), node)
        elif node.op in ("call_function", "call_method"):
            call = CALL_HANDLERS.get(node.target)
            if call is None:
                raise Unsupported(f"{node.op} {getattr(node.target, '__name__', node.target)}")
            env[node] = call(e, node.name, _tensor_inputs(node, env), node)
        else:
            raise Unsupported(f"fx node {node.op} {node.target}")
    graph = helper.make_graph(e.nodes, "bpnas", inputs, outputs, e.inits)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", TRACE_OPSET)], producer_name="bpnas"
    )
    model.ir_version = IR_VERSION
    return model
