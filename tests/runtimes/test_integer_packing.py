import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtimes.integer.packing import pack_codes, unpack_codes
from sdk.errors import BundleError


@settings(max_examples=60, deadline=None)
@given(bits=st.integers(2, 8), n=st.integers(1, 300), seed=st.integers(0, 2**16))
def test_pack_unpack_round_trips_bit_exactly(bits: int, n: int, seed: int) -> None:
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    codes = np.random.default_rng(seed).integers(lo, hi + 1, size=n)
    codes[0] = lo if seed % 2 else hi  # the range ends
    packed = pack_codes(codes, bits)
    assert packed.dtype == np.uint8 and packed.size == (n * bits + 7) // 8
    assert np.array_equal(unpack_codes(packed, bits, (n,)), codes)


def test_out_of_range_codes_and_short_data_are_refused():
    with pytest.raises(ValueError, match="outside the 3-bit range"):
        pack_codes(np.array([4]), 3)
    with pytest.raises(BundleError, match="want 2"):
        unpack_codes(np.zeros(1, np.uint8), 3, (5,))


@pytest.mark.parametrize("name", ["digits_cnn", "resnet20"])
def test_the_integer_artifact_is_packed_compact_and_bit_exact(name: str) -> None:
    """The integer target's own lowering (packed weights, compact graph) against the same graph without both:
    the same logits and codes at every quantizer, every quantizer still mapped back to its torch module."""
    import torch

    import targets
    from export.onnx_qdq import to_onnx
    from export.options import LoweringOptions
    from runtimes.base import RuntimeOptions
    from runtimes.bundle import map_layer
    from runtimes.integer import load_model
    from tests.runtimes._integer_reference import build_quantized, torch_quantizer_for, zoo_input_shape

    qmodel, pairs = build_quantized(name, seed=0, calib=8)
    example = torch.zeros(1, *zoo_input_shape(name))
    passes = targets.get("integer").lowering
    plain_passes = tuple(p for p in passes if p not in ("pack_weights", "compact_graph"))
    compact = to_onnx(qmodel, None, example, options=LoweringOptions(passes))
    plain = to_onnx(qmodel, None, example, options=LoweringOptions(plain_passes))
    assert not compact.graph.value_info and plain.graph.value_info
    meta = [{p.key for p in m.metadata_props} for m in (compact, plain)]
    assert "bpnas_config" in meta[1] and meta[0] == meta[1] - {"bpnas_config"}  # the manifest holds it
    fused = [n.name for n in compact.graph.node if n.op_type in ("QConv", "QGemm")]
    assert sorted(fused) == sorted(pairs)  # one node per layer
    assert len(compact.SerializeToString()) < 0.85 * len(plain.SerializeToString())
    opts = RuntimeOptions(threads=1)
    a, b = (
        load_model(compact, layer_bits=pairs, options=opts),
        load_model(plain, layer_bits=pairs, options=opts),
    )
    x = np.random.default_rng(3).normal(size=(8, *zoo_input_shape(name))).astype(np.float32)
    np.testing.assert_array_equal(a.run(x)["logits"], b.run(x)["logits"])
    # the same codes at every quantizer, each still mapped back to its torch module (fused layers put a
    # layer's output quantizer at the layer, so parallel branches' quantizers may come in another order)
    last = a.layers()[-1].name
    keyed = []  # torch quantizer -> (codes, the layer its ops' per-layer times map to)
    for m in (a, b):
        codes = m.run_codes(x)
        keyed.append(
            {
                tuple(torch_quantizer_for(q, last)): (codes[q.name], map_layer(q.name, pairs))
                for q in m.quantizers()
            }
        )
    got, want = keyed
    assert () not in got and got.keys() == want.keys() and len(got) == len(a.quantizers())
    assert all(np.array_equal(got[k][0], want[k][0]) and got[k][1] == want[k][1] for k in want)
    assert sum(map_layer(q.name, pairs) is not None for q in a.quantizers()) > len(pairs) // 2
    assert [(lay.name, lay.w_bits, lay.a_bits) for lay in a.layers()] == [
        (lay.name, lay.w_bits, lay.a_bits) for lay in b.layers()
    ]


def test_a_fused_node_missing_its_attributes_is_refused():
    import onnx
    from onnx import helper

    from runtimes.integer.packing import DOMAIN, PACKED_DQ, unpack_initializers

    node = helper.make_node(PACKED_DQ, ["w", "s"], ["y"], domain=DOMAIN, bits=3)  # no shape
    graph = helper.make_graph(
        [node], "g", [], [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)]
    )
    with pytest.raises(BundleError, match="malformed.*'shape'"):
        unpack_initializers(helper.make_model(graph))
