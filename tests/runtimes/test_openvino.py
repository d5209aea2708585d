"""OpenVINO adapter: hints, threads, async queue for big batches, runtime-graph precision, perf counters."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

pytest.importorskip("openvino", reason="needs the openvino extra: pip install 'bpnas[openvino]'")

from runtimes import RuntimeOptions  # noqa: E402
from runtimes.openvino import OpenVINOOptions, load, precisions_from_runtime_ops  # noqa: E402
from sdk.errors import BundleError, InputError  # noqa: E402
from tests.runtimes._bundles import make_bundle, manifest_of, random_input, reference  # noqa: E402

pytestmark = pytest.mark.openvino
STEP = 6.0 / 127


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_bundle(tmp_path_factory.mktemp("ov"))


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    pairs = {"conv1": (4, 8), "conv2": (3, 4), "conv3": (32, 8), "fc": (8, 32)}
    return make_bundle(tmp_path_factory.mktemp("ov_mixed"), pairs=pairs)


def _load(bundle, **kw):
    return load(bundle / "model.onnx", manifest_of(bundle), RuntimeOptions(**kw))


@pytest.mark.parametrize("hint", ["latency", "throughput"])
def test_matches_reference_with_either_hint(tiny, hint):
    s = _load(tiny, threads=2, performance_hint=hint)
    for n in (1, 3, 16):  # 16 >= async_min_batch: split over the AsyncInferQueue when nireq > 1
        x = random_input(n, seed=n)
        np.testing.assert_allclose(s.run(x)["logits"], reference(tiny, x), atol=STEP * 1.01, rtol=0)
    s.close()


def test_big_batches_go_through_the_async_queue(tiny):
    s = _load(tiny, threads=2, performance_hint="throughput", extra={"num_streams": 2, "async_min_batch": 4})
    assert s.nireq >= 2
    x = random_input(9)
    y = s.run(x)["logits"]
    assert getattr(s._local, "queue", None) is not None
    np.testing.assert_allclose(y, reference(tiny, x), atol=STEP * 1.01, rtol=0)
    s.close()


def test_quantized_layers_run_in_integer_kernels(tiny):
    s = _load(tiny)
    prec = s.effective_precision()
    assert [p.layer for p in prec] == ["conv1", "conv2", "conv3", "fc"]
    assert all(p.precision in ("u8", "i8") and not p.upcast for p in prec), prec
    s.close()


def test_float_layers_run_f32_by_default(mixed):
    s = _load(mixed)
    prec = {p.layer: p for p in s.effective_precision()}
    assert prec["conv3"].precision == "f32" and not prec["conv3"].upcast
    assert prec["conv2"].precision in ("u8", "i8")
    s.close()


def test_precision_mapping_prefers_exact_original_names():
    ops = [
        {"name": "conv1/WithoutBiases", "layerType": "Convolution", "runtimePrecision": "I8",
         "originalLayersNames": "conv1/WithoutBiases,Multiply_1,conv1,conv2.act.q"},
        {"name": "fc", "layerType": "FullyConnected", "runtimePrecision": "FP32",
         "originalLayersNames": "fc"},
        {"name": "pool", "layerType": "Reduce", "runtimePrecision": "f32", "originalLayersNames": "pool"},
    ]  # fmt: skip
    prec, names = precisions_from_runtime_ops(ops, {"conv1": (8, 8), "conv2": (8, 8), "fc": (8, 8)})
    assert [(p.layer, p.precision, p.upcast) for p in prec] == [
        ("conv1", "i8", False),
        ("conv2", "unknown", False),
        ("fc", "fp32", True),
    ]
    assert names == {"conv1/WithoutBiases": "conv1", "fc": "fc"}


def test_perf_counters_give_layer_times(tiny):
    s = _load(tiny, profiling=True)
    for _ in range(3):
        s.run(random_input(2))
    times = {t.name: t for t in s.layer_times() or []}
    assert {"conv1", "conv2", "conv3", "fc"} <= set(times)
    assert times["conv2"].op_type == "Convolution"
    s.close()


@pytest.mark.parametrize(
    "extra, match",
    [
        ({"inference_precison": "f32"}, "Did you mean 'inference_precision'"),
        ({"inference_precision": "int8"}, "inference_precision must be"),
        ({"async_min_batch": 0}, "async_min_batch"),
        ({"num_streams": -1}, "num_streams"),
    ],
)
def test_bad_options_are_refused(extra, match):
    with pytest.raises(InputError, match=match):
        OpenVINOOptions.from_extra(extra)


def test_bad_hint_is_refused(tiny):
    with pytest.raises(InputError, match="performance_hint"):
        _load(tiny, performance_hint="fast")


def test_wrong_output_name_is_a_bundle_error(tiny):
    m = manifest_of(tiny)
    manifest = dataclasses.replace(m, output=dataclasses.replace(m.output, name="probs"))
    with pytest.raises(BundleError, match="probs"):
        load(tiny / "model.onnx", manifest, RuntimeOptions())


def test_model_cache_dir_is_used(tiny, tmp_path):
    s = _load(tiny, cache_dir=tmp_path / "ovcache")
    s.run(random_input(1))
    s.close()
    assert any((tmp_path / "ovcache").iterdir())


def _with_power_of_two_scales(bundle, tmp_path):
    """The bundle's model with every activation scale rounded to a power of two (codes unchanged)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(bundle / "model.onnx"))
    q_scales = {n.input[1] for n in model.graph.node if n.op_type == "QuantizeLinear"}
    for init in model.graph.initializer:
        if init.name in q_scales:
            s = numpy_helper.to_array(init)
            init.CopyFrom(numpy_helper.from_array((2.0 ** np.round(np.log2(s))).astype(s.dtype), init.name))
    path = tmp_path / "po2.onnx"
    onnx.save(model, str(path))
    return path


def test_power_of_two_activation_scales_warn_about_tie_rounding(tiny, tmp_path):
    import warnings

    import openvino as ov

    from runtimes.openvino import OpenVinoTieWarning, power_of_two_activation_scales

    po2 = _with_power_of_two_scales(tiny, tmp_path)
    core = ov.Core()
    assert power_of_two_activation_scales(core.read_model(str(po2)))
    assert not power_of_two_activation_scales(core.read_model(str(tiny / "model.onnx")))
    with pytest.warns(OpenVinoTieWarning, match="onnxruntime' or 'integer'"):
        load(po2, manifest_of(tiny), RuntimeOptions(threads=1)).close()
    with warnings.catch_warnings():
        warnings.simplefilter("error", OpenVinoTieWarning)
        _load(tiny, threads=1).close()
