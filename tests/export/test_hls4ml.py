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
    return Traced(tiny_model(seed, power_of_two=power_of_two), EXAMPLE)


def tiny_model(seed: int = 0, *, power_of_two: bool = True) -> torch.nn.Module:
    """digits_cnn width 4 (8x8), a random mixed config, random BN folded, scales calibrated on noise."""
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
    return q


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


def _qonnx_run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    """qonnx's executor; the channels-last AveragePool (hls4ml's op, unknown to qonnx) runs as ReduceMean."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.infer_shapes import InferShapes

    m = onnx.ModelProto()
    m.CopyFrom(model)
    for n in m.graph.node:
        if n.op_type == "AveragePool":
            n.CopyFrom(
                onnx.helper.make_node("ReduceMean", list(n.input), list(n.output), axes=[1, 2], keepdims=1)
            )
    for v in (m.graph.input[0], m.graph.output[0]):
        v.type.tensor_type.shape.dim[0].Clear()
        v.type.tensor_type.shape.dim[0].dim_value = 1
    m.opset_import.append(onnx.helper.make_opsetid("qonnx.custom_op.channels_last", 1))
    w = ModelWrapper(m).transform(InferShapes())
    return execute_onnx(w, {m.graph.input[0].name: x})[m.graph.output[0].name]


@pytest.mark.parametrize("residual", [False, True], ids=["digits_cnn", "resnet20-8x8"])
def test_the_channels_last_graph_computes_what_the_qonnx_graph_computes(residual):
    """qonnx's own conversion leaves a stray Transpose at residual forks; ours must be exact."""
    from export.hls4ml_export import prepare

    if residual:
        torch.manual_seed(0)
        model = sdk.models.resnet20(num_classes=10).eval()
        q = calibration.fold_bn(sdk.quantize(model, random_config(model, 1)).eval())
        with torch.no_grad():
            q(torch.randn(16, 3, 8, 8))
            calibration.round_scales_to_power_of_two_(q)
        qonnx = lower_qonnx(Traced(q, torch.randn(1, 3, 8, 8)))
        x = np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)
    else:
        qonnx = lower_qonnx(tiny())
        x = EXAMPLE.numpy()
    model, _ = prepare(qonnx)
    assert np.array_equal(_qonnx_run(model, x), _qonnx_run(qonnx, x))


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """One bundle for the integer and hls4ml targets: the session's only C-sim compile (in the export)."""
    path = tmp_path_factory.mktemp("hls4ml") / "tiny.bpnas"
    return sdk.export(tiny_model(), path, example_input=EXAMPLE, targets=["integer", "hls4ml"])


@needs_hls4ml
def test_csim_behind_predict_gives_the_integer_targets_codes(bundle):
    from export.hls4ml_export import verify_inputs

    rng = np.random.default_rng(3)
    x = np.concatenate(
        [verify_inputs(EXAMPLE.numpy(), Grid(3, -127, 127), n=64), rng.standard_normal((64, 1, 8, 8))]
    ).astype(np.float32)
    with sdk.load(bundle, target="hls4ml") as fpga, sdk.load(bundle, target="integer") as ref:
        got, want = np.asarray(fpga.predict(x)), np.asarray(ref.predict(x))
    same = int(np.all(got == want, axis=1).sum())  # both are code * 2^-F, exact in float32: same codes
    print(f"\n[hls4ml] C-sim codes identical to the integer target: {same}/{len(x)}")
    assert same == len(x)
    assert bundle.manifest.artifacts[bundle.manifest.targets["hls4ml"]].format == "hls4ml-project"


@needs_hls4ml
def test_the_shipped_project_has_no_default_types(bundle):
    import tarfile

    with tarfile.open(bundle.artifact("hls4ml")) as tar:
        defines = tar.extractfile("firmware/defines.h").read().decode()  # type: ignore[union-attr]
        names = tar.getnames()
    assert "typedef ap_fixed<16,6>" not in defines and "47,23" not in defines
    assert "AP_RND_CONV" in defines and "bpnas_hls4ml.json" in names
    assert not any(n.endswith(".so") for n in names)  # sources only; the runtime compiles


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
