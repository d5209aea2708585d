"""ONNX Runtime adapter: options, effective precision from the optimized model, profile parsing."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from runtimes import RuntimeOptions
from runtimes.base import LayerPrecision
from runtimes.onnxruntime import OrtOptions, OrtSession, load, precisions_from_model, times_from_profile
from sdk.errors import BundleError, InputError
from tests.runtimes._bundles import make_bundle, manifest_of, random_input, reference


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_bundle(tmp_path_factory.mktemp("ort"))


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    pairs = {"conv1": (4, 8), "conv2": (3, 4), "conv3": (32, 8), "fc": (8, 32)}
    return make_bundle(tmp_path_factory.mktemp("ort_mixed"), pairs=pairs)


def _load(bundle, **kw) -> OrtSession:
    return load(bundle / "model.onnx", manifest_of(bundle), RuntimeOptions(**kw))


def test_matches_reference_at_every_optimization_level(tiny):
    x = random_input(3)
    want = reference(tiny, x)
    for level in ("disable", "basic", "extended", "all"):
        s = _load(tiny, threads=2, extra={"graph_optimization": level})
        np.testing.assert_allclose(s.run(x)["logits"], want, atol=6 / 127 * 1.01, rtol=0)
        s.close()


def test_fused_layers_report_integer_kernels(tiny):
    s = _load(tiny)
    prec = {p.layer: p for p in s.effective_precision()}
    # conv2 has u8 in and a u8 output quantizer: ORT fuses it into QLinearConv
    assert prec["conv2"].kernel == "QLinearConv" and prec["conv2"].precision == "u8"
    assert not prec["conv2"].upcast
    # conv3 feeds the pool (no output quantizer), so ORT cannot fuse it: float, flagged
    assert prec["conv3"].precision == "f32" and prec["conv3"].upcast
    s.close()


def test_disabled_optimization_runs_everything_float(tiny):
    s = _load(tiny, extra={"graph_optimization": "disable"})
    assert all(p.precision == "f32" and p.upcast for p in s.effective_precision())
    s.close()


def test_float_layers_are_not_upcast(mixed):
    s = _load(mixed)
    prec = {p.layer: p for p in s.effective_precision()}
    assert prec["conv3"].precision == "f32" and not prec["conv3"].upcast  # (32, 8): float by design
    assert prec["fc"].precision == "f32" and not prec["fc"].upcast
    s.close()


def test_profiling_names_kernels_by_layer_and_cleans_up(tiny):
    s = _load(tiny, profiling=True)
    tmp = s._tmp
    for _ in range(3):
        s.run(random_input(1))
    times = s.layer_times()
    assert times is not None
    names = {t.name: t for t in times}
    assert names["conv2"].op_type == "QLinearConv"
    assert s.layer_times() is times  # cached: ORT's profiler stops at the first call
    s.close()
    import os

    assert tmp is not None and not os.path.exists(tmp)


def test_times_from_profile_drops_the_first_run():
    def node(name, ts, dur, op):
        return {"cat": "Node", "name": f"{name}_kernel_time", "ts": ts, "dur": dur, "args": {"op_name": op}}

    events = [
        {"cat": "Session", "name": "model_run", "ts": 0, "dur": 100},
        node("conv2_token_1", 10, 90, "QLinearConv"),
        {"cat": "Session", "name": "model_run", "ts": 200, "dur": 50},
        node("conv2_token_1", 210, 30, "QLinearConv"),
        node("pool", 240, 4, "GlobalAveragePool"),
        {"cat": "Session", "name": "model_run", "ts": 300, "dur": 50},
        node("conv2_token_1", 310, 10, "QLinearConv"),
    ]
    times = {t.name: t for t in times_from_profile(events, {"conv2": (8, 8)})}
    assert times["conv2"].ms == pytest.approx(0.020)  # (30 + 10) us over 2 runs
    assert times["pool"].ms == pytest.approx(0.002)


def test_precisions_from_model_lists_missing_layers(tiny):
    import onnx

    model = onnx.load(tiny / "model.onnx")
    out = precisions_from_model(model, {"conv1": (8, 8), "ghost": (8, 8)})
    assert out[1] == LayerPrecision("ghost", "missing", "unknown", upcast=False)


@pytest.mark.parametrize(
    "extra, match",
    [
        ({"graph_optimisation": "all"}, "Did you mean 'graph_optimization'"),
        ({"graph_optimization": "max"}, "graph_optimization must be one of"),
        ({"inter_op_threads": 0}, "inter_op_threads"),
        ({"providers": "CPUExecutionProvider"}, "providers"),
    ],
)
def test_bad_options_are_refused(extra, match):
    with pytest.raises(InputError, match=match):
        OrtOptions.from_extra(extra)


def test_wrong_io_names_are_a_bundle_error(tiny):
    m = manifest_of(tiny)
    manifest = dataclasses.replace(m, input=dataclasses.replace(m.input, name="images"))
    with pytest.raises(BundleError, match="images"):
        load(tiny / "model.onnx", manifest, RuntimeOptions())


def test_unloadable_artifact_is_a_bundle_error(tmp_path, tiny):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(BundleError, match="could not load"):
        load(bad, manifest_of(tiny), RuntimeOptions())


def test_closed_session_refuses_to_run(tiny):
    s = _load(tiny)
    s.close()
    with pytest.raises(InputError, match="closed"):
        s.run(random_input(1))
