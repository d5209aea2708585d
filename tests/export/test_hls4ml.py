"""hls4ml export: types derived from the quantizers, refusals, and the C simulation vs the integer executor.

One tiny net (digits_cnn width 4 at 8x8, a random mixed config, power-of-two scales) is converted and its C
simulation compiled once per session (minutes under load); everything else runs without compiling.
"""

from __future__ import annotations

import shutil

import numpy as np
import onnx
import pytest
import torch

import calibration
import sdk
from export._hls4ml_precision import Grid, derive_precisions
from export.onnx_qdq import Traced
from export.options import LoweringOptions
from export.qonnx_export import lower_qonnx
from sdk.errors import ConfigError
from tests.export._helpers import jitter_alphas, random_config, randomize_bn

pytest.importorskip("qonnx", reason="the hls4ml export needs qonnx (pip install 'bpnas[fpga]')")
pytestmark = pytest.mark.qonnx

needs_hls4ml = pytest.mark.skipif(
    shutil.which("g++") is None or __import__("importlib").util.find_spec("hls4ml") is None,
    reason="needs hls4ml (pip install 'bpnas[fpga]') and g++ to compile the C simulation",
)


def tiny(seed: int = 0, *, power_of_two: bool = True) -> Traced:
    """The traced tiny net; its example input is ``EXAMPLE``."""
    torch.manual_seed(seed)
    model = sdk.models.digits_cnn(num_classes=10, width=4).eval()
    randomize_bn(model, seed)
    q = calibration.fold_bn(sdk.quantize(model, random_config(model, seed)).eval())
    g = torch.Generator().manual_seed(100 + seed)
    with torch.no_grad():
        for _ in range(2):
            q(torch.randn(32, 1, 8, 8, generator=g))
        jitter_alphas(q, g)
        if power_of_two:
            calibration.round_scales_to_power_of_two_(q)
    return Traced(q, EXAMPLE)


EXAMPLE = torch.linspace(-2, 2, 64).reshape(1, 1, 8, 8)


def test_grid_types_hold_exactly_their_codes():
    assert Grid(3, -7, 7, "RND_CONV", "SAT_SYM").hls() == "fixed<4,1,RND_CONV,SAT_SYM>"  # 4-bit narrow, s=1/8
    assert Grid(4, 0, 15, "RND_CONV", "SAT").hls() == "ufixed<4,0,RND_CONV,SAT>"
    assert Grid(0, -129, 128).width == 9 and Grid(0, -128, 127).width == 8 and Grid(0, 0, 256).width == 9
    assert Grid(2, -3, 5).rescaled(4) == Grid(4, -12, 20)


def test_every_tensor_gets_a_derived_type():
    from export.hls4ml_export import prepare

    model, names = prepare(lower_qonnx(tiny()))
    in_grid, rows = derive_precisions(model, names)
    assert in_grid.rounding == "RND_CONV" and in_grid.signed  # the input quantizer itself
    convs = [r for r in rows if r.op in ("Conv", "MatMul")]
    assert [r.layer for r in convs] == [*(f"features.{i}.0" for i in range(5)), "fc"]
    for r in convs:  # exact products: accumulator grid = input grid + weight grid, nothing rounds there
        assert set(r.types) == {"weight", "bias", "accum", "result"}
        assert r.types["accum"].rounding == "TRN" and r.types["accum"].saturation == "WRAP"
    quants = [r for r in rows if r.op == "Quant"]
    assert quants and all(r.types["result"].rounding == "RND_CONV" for r in quants)
    pool = next(r for r in rows if r.op == "AveragePool")
    assert pool.types["result"].frac == pool.types["accum"].frac  # 2x2 map: 2 more fraction bits, exact


def test_non_power_of_two_scales_are_refused_naming_the_quantizer():
    from export.hls4ml_export import prepare

    model, names = prepare(lower_qonnx(tiny(power_of_two=False)))
    with pytest.raises(ConfigError, match="not a power of two"):
        derive_precisions(model, names)


def test_an_average_over_a_non_power_of_two_window_is_refused():
    from export.hls4ml_export import prepare

    model, names = prepare(lower_qonnx(tiny()))
    pool = next(n for n in model.graph.node if n.op_type == "AveragePool")
    for a in pool.attribute:
        if a.name == "kernel_shape":
            a.ints[:] = [3, 3]
    with pytest.raises(ConfigError, match="averages 9 values"):
        derive_precisions(model, names)


def test_unsupported_ops_are_refused_naming_the_op():
    from export.hls4ml_export import prepare

    model, names = prepare(lower_qonnx(tiny()))
    relu = next(n for n in model.graph.node if n.op_type == "Relu")
    relu.op_type = "Sigmoid"
    with pytest.raises(ConfigError, match="Sigmoid"):
        derive_precisions(model, names)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    from export.hls4ml_export import convert

    traced = tiny()
    return traced, convert(lower_qonnx(traced), tmp_path_factory.mktemp("hls4ml") / "prj")


@needs_hls4ml
def test_csim_codes_equal_the_integer_executor(compiled):
    from export.hls4ml_export import verify_codes, verify_inputs
    from runtimes.integer import load_model

    traced, project = compiled
    integer = load_model(traced.lower(LoweringOptions()))
    rng = np.random.default_rng(3)
    x = np.concatenate(
        [verify_inputs(EXAMPLE.numpy(), project.input_grid), rng.standard_normal((32, 1, 8, 8))]
    ).astype(np.float32)
    same, total = verify_codes(project, integer.run, x)
    print(f"\n[hls4ml] C-sim codes identical to the integer executor: {same}/{total}")
    assert same == total


@needs_hls4ml
def test_no_hls4ml_type_is_left_at_a_default(compiled):
    _, project = compiled
    for layer in project.model.get_layers():
        for name, var in layer.get_layer_precision().items():
            text = str(var.precision)
            assert "16,6" not in text and "47,23" not in text, (layer.name, name, text)


@needs_hls4ml
def test_a_type_left_to_hls4ml_is_refused(tmp_path, monkeypatch):
    from export import hls4ml_export

    real = hls4ml_export.hls_config

    def drop_one(*args, **kwargs):
        config = real(*args, **kwargs)
        conv = next(k for k in config["LayerName"] if k.startswith("Conv"))
        del config["LayerName"][conv]["Precision"]["accum"]
        return config

    monkeypatch.setattr(hls4ml_export, "hls_config", drop_one)
    with pytest.raises(ConfigError, match="default precision"):
        hls4ml_export.convert(lower_qonnx(tiny()), tmp_path / "prj", compile=False)


def test_qonnx_input_is_not_modified():
    from export.hls4ml_export import prepare

    q = lower_qonnx(tiny())
    before = q.SerializeToString()
    prepare(q)
    assert q.SerializeToString() == before
    assert isinstance(q, onnx.ModelProto)
