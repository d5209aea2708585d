from onnx import TensorProto, helper

from export.passes import IoContract


def test_input_output_names_and_batch_axis():
    g = helper.make_graph(
        [helper.make_node("Relu", ["x0"], ["out0"])],
        "g",
        [helper.make_tensor_value_info("x0", TensorProto.FLOAT, ["s77", 3, 8, 8])],
        [helper.make_tensor_value_info("out0", TensorProto.FLOAT, ["s77", 3, 8, 8])],
    )
    out, changed = IoContract().apply(helper.make_model(g))
    assert changed
    assert out.graph.input[0].name == "input" and out.graph.output[0].name == "logits"
    assert out.graph.node[0].input[0] == "input" and out.graph.node[0].output[0] == "logits"
    assert out.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    assert IoContract().apply(out)[1] is False
