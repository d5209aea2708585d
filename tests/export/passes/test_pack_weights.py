import numpy as np
import onnx

from export.passes.pack_weights import PackWeights
from runtimes.integer.packing import DOMAIN, OP, unpack_initializers
from tests.export._graphs import INT8, Builder


def _conv(codes: np.ndarray) -> onnx.ModelProto:
    b = Builder()
    c = b.const(codes, INT8, "conv.weight_codes")
    w = b.node("DequantizeLinear", [c, b.const([0.5, 0.25]), b.const([0, 0], INT8)], axis=0)
    b.node("Conv", ["x", w], "y", name="conv")
    return b.model()


def _codes(bits: int) -> np.ndarray:
    n = 2 ** (bits - 1) - 1
    codes = np.random.default_rng(bits).integers(-n, n + 1, size=(2, 3, 3, 3))
    codes[0, 0, 0, 0] = -n  # the clip is reached, as the weight quantizer's alpha makes it
    return codes


def test_a_3_bit_layer_stores_3_bits_per_weight_and_unpacks_exactly():
    codes = _codes(3)
    out, changed = PackWeights().apply(_conv(codes))
    assert changed and any(n.op_type == OP and n.domain == DOMAIN for n in out.graph.node)
    packed = next(t for t in out.graph.initializer if t.name.endswith("weight_packed"))
    assert len(packed.raw_data or bytes(packed.int32_data)) == (codes.size * 3 + 7) // 8  # 21 bytes for 54
    back = unpack_initializers(out)
    assert not any(n.op_type == OP for n in back.graph.node)
    dq = next(n for n in back.graph.node if n.op_type == "DequantizeLinear")
    got = next(t for t in back.graph.initializer if t.name == dq.input[0])
    assert np.array_equal(onnx.numpy_helper.to_array(got), codes)
    assert got.data_type == onnx.TensorProto.INT8


def test_the_width_is_the_layers_w_bits_and_8_bit_layers_stay_int8():
    for bits in (2, 3, 5, 7):
        out, _ = PackWeights().apply(_conv(_codes(bits)))
        unpack = next(n for n in out.graph.node if n.op_type == OP)
        assert onnx.helper.get_attribute_value(unpack.attribute[0]) == bits
    _, changed = PackWeights().apply(_conv(_codes(8)))
    assert not changed


def test_packing_reaches_a_fixed_point_and_prune_drops_the_int8_codes():
    from export.passes import Prune, run_passes

    out = run_passes(_conv(_codes(3)), [PackWeights(), Prune()])
    assert not any(
        t.data_type == onnx.TensorProto.INT8 and t.dims == [2, 3, 3, 3] for t in out.graph.initializer
    )
    assert sum(n.op_type == OP for n in out.graph.node) == 1
