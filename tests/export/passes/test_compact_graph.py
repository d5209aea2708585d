import numpy as np
import onnx
from onnx import numpy_helper

from export.passes import Prune, run_passes
from export.passes.compact_graph import CompactGraph, is_compact
from export.passes.pack_weights import PackWeights
from runtimes.integer.packing import BIAS_DQ, DOMAIN, QCDQ, split_layers, unpack_initializers
from tests.export._graphs import INT8, UINT8, Builder, copy, data, run


def _net(signed_zp: int = 0) -> onnx.ModelProto:
    """x -> QCDQ(u8, 4 bits) -> conv a -> QCDQ(i8) -> conv b (stride 2) -> QCDQ(u8, 4 bits) -> y."""
    b = Builder()
    x = b.qcdq("x", 0.05, UINT8, 0, 15)
    x = b.qconv(x, "a", 4, 4, 0.05, seed=1)
    x = b.qcdq(x, 0.1, INT8, -7, 7, zp=signed_zp)
    x = b.qconv(x, "b", 4, 4, 0.1, stride=2, seed=2)
    b.qcdq(x, 0.2, UINT8, 0, 15, out="y")
    return b.model(out_shape=["N", 4, 4, 4])


def _compact(model: onnx.ModelProto) -> onnx.ModelProto:
    return run_passes(copy(model), [CompactGraph(), Prune()])


def _parts(model: onnx.ModelProto) -> onnx.ModelProto:
    """The compact graph with its fused layers split back into weight, bias, layer and quantizer nodes."""
    return split_layers(_compact(model))


def test_the_compact_graph_computes_the_same_codes_with_fewer_bytes():
    before = _net()
    after = _compact(before)
    x = data(scale=3.0)
    np.testing.assert_array_equal(run(unpack_initializers(after), x), run(before, x))
    assert after.ByteSize() < 0.8 * before.ByteSize()
    onnx.checker.check_model(after)


def test_each_layer_is_one_fused_node_with_its_weight_bias_and_output_quantizer():
    after = _compact(_net())
    assert [(n.domain, n.op_type, n.name) for n in after.graph.node] == [
        (DOMAIN, QCDQ, ""), (DOMAIN, "QConv", "a"), (DOMAIN, "QConv", "b"),
    ]  # fmt: skip
    a, b = after.graph.node[1:]
    assert len(a.input) == 7 and len(b.input) == 6  # (x, x scale, codes, w scale, bias, y scale[, zp])
    assert {t.name: t.data_type for t in after.graph.initializer}[a.input[2]] == INT8
    assert "bits" not in {x.name for x in a.attribute}  # int8 codes: an 8-bit container, not packed


def test_packed_weights_fuse_with_their_bits_and_read_back_exactly():
    before = _net()
    after = run_passes(copy(before), [PackWeights(), CompactGraph(), Prune()])
    layers = [n for n in after.graph.node if n.op_type == "QConv"]
    assert [{x.name: x.i for x in n.attribute}.get("bits") for n in layers] == [4, 4]
    x = data(scale=3.0)
    np.testing.assert_array_equal(run(unpack_initializers(after), x), run(before, x))
    assert after.ByteSize() < _compact(before).ByteSize()


def test_each_quantizer_is_one_fused_node_and_int8_ones_keep_one_zero_point():
    after = _parts(_net())
    assert [n.op_type for n in after.graph.node] == [
        "QCDQ", "DequantizeLinear", "DequantizeBias", "Conv", "QCDQ",
        "DequantizeLinear", "DequantizeBias", "Conv", "QCDQ",
    ]  # fmt: skip
    quant = [n for n in after.graph.node if n.op_type == QCDQ]
    assert all(n.domain == DOMAIN for n in quant)
    attrs = [{a.name: a.i for a in n.attribute} for n in quant]
    assert attrs == [{"hi": 15}, {"lo": -7, "hi": 7}, {"hi": 15}]
    inits = {t.name: t for t in after.graph.initializer}
    assert [len(n.input) for n in quant] == [2, 3, 2] and inits[quant[1].input[2]].data_type == INT8
    dqs = [n for n in after.graph.node if n.op_type == "DequantizeLinear"]
    assert all(len(n.input) == 2 for n in dqs)  # weights: zero points dropped


def test_a_bias_scale_is_recomputed_only_where_it_is_the_float32_product():
    before = _net()
    after = _parts(before)
    biases = [n for n in after.graph.node if n.op_type == BIAS_DQ]
    quant = [n for n in after.graph.node if n.op_type == QCDQ]
    weights = [n for n in after.graph.node if n.op_type == "DequantizeLinear"]
    assert [list(n.input[1:]) for n in biases] == [[q.input[1], w.input[1]] for q, w in zip(quant, weights)]
    nudged = copy(before)  # one channel's stored bias scale one ulp off the product: kept as stored
    t = next(t for t in nudged.graph.initializer if t.name == _bias_scale_name(nudged, "b"))
    v = numpy_helper.to_array(t).copy()
    v[0] = np.nextafter(v[0], np.float32(1))
    t.CopyFrom(numpy_helper.from_array(v, t.name))
    kinds = [n.op_type for n in _parts(nudged).graph.node]
    assert kinds.count(BIAS_DQ) == 1 and kinds.count("DequantizeLinear") == 3


def _bias_scale_name(model: onnx.ModelProto, layer: str) -> str:
    conv = next(n for n in model.graph.node if n.name == layer)
    return next(n.input[1] for n in model.graph.node if n.output[0] == conv.input[2])


def test_a_nonzero_zero_point_is_kept_and_its_quantizer_left_unfused():
    after = _parts(_net(signed_zp=1))
    dq_zps = [n.input[2] for n in after.graph.node if n.op_type == "DequantizeLinear" and len(n.input) > 2]
    assert len(dq_zps) == 1
    assert numpy_helper.to_array(next(t for t in after.graph.initializer if t.name == dq_zps[0])) == 1
    assert sum(n.op_type == QCDQ for n in after.graph.node) == 2


def test_identical_constants_are_stored_once():
    before = _net()
    after = _compact(before)
    keys = [(t.data_type, tuple(t.dims), numpy_helper.to_array(t).tobytes()) for t in after.graph.initializer]
    assert len(keys) == len(set(keys)) and len(keys) < len(before.graph.initializer) - 8


def test_names_are_short_except_layers_and_the_graph_io_and_conv_defaults_go():
    after = _compact(_net())
    g = after.graph
    tensors = {i for n in g.node for i in (*n.input, *n.output)} - {"x", "y"}
    assert tensors and all(len(t) <= 2 for t in tensors)
    assert {n.name for n in g.node} == {"", "a", "b"}
    assert [v.name for v in g.input] == ["x"] and [v.name for v in g.output] == ["y"]
    assert all(not n.HasField("name") for n in g.node if n.op_type != "QConv")
    convs = [n for n in split_layers(copy(after)).graph.node if n.op_type == "Conv"]
    assert {n.name: {a.name for a in n.attribute} for n in convs} == {"a": {"pads"}, "b": {"pads", "strides"}}


def test_it_reaches_a_fixed_point_at_once():
    after = _compact(_net())
    again, changed = CompactGraph().apply(copy(after))
    assert not changed and again == after


def test_only_a_lowering_listing_it_drops_shape_annotations_and_the_config_copy():
    assert is_compact(("pack_weights", "compact_graph"))
    assert not is_compact(("pack_weights",))


def test_a_layer_fused_alone_still_imports_its_domain():
    """An int8 layer without bias or fusable quantizer: the fused layer node is the only ai.bpnas node."""
    from onnx import TensorProto, helper

    w = numpy_helper.from_array(np.ones((2, 2, 1, 1), np.int8), "w")
    s = numpy_helper.from_array(np.full(2, 0.5, np.float32), "s")
    nodes = [
        helper.make_node("DequantizeLinear", ["w", "s"], ["wf"], axis=0),
        helper.make_node("Conv", ["x", "wf"], ["y"], name="conv"),
    ]
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 2, 2, 2]) for n in ("x", "y")]
    graph = helper.make_graph(nodes, "g", io[:1], io[1:], [w, s])
    before = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    after = _compact(before)
    assert [n.op_type for n in after.graph.node] == ["QConv"]
    onnx.checker.check_model(after)
    x = data(c=2, hw=2, n=1)
    np.testing.assert_array_equal(run(unpack_initializers(after), x), run(before, x))
