"""TensorRT adapter. The pure logic (options, build mode, cache keys, profile shapes, inspector parsing) runs
everywhere; the engine tests need an NVIDIA GPU with TensorRT and skip elsewhere."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from runtimes import tensorrt as trt_adapter
from runtimes.base import LayerPrecision, RuntimeOptions, Session
from runtimes.tensorrt import (
    TensorRTOptions,
    bpnas_layer_name,
    build_mode,
    bundle_layers,
    engine_cache_key,
    file_sha256,
    layer_precisions_from_inspector,
    profile_shapes,
)
from sdk.errors import BundleError, InputError, TargetUnavailable

ROOT = Path(__file__).resolve().parents[2]
GPU_REASON = "TensorRT/CUDA not available: needs an NVIDIA GPU with TensorRT"
needs_gpu = pytest.mark.skipif(not trt_adapter.available(), reason=GPU_REASON)


# -- import and availability ---------------------------------------------------------------------------------
def test_import_costs_nothing():
    code = "import sys, runtimes.tensorrt; print(sorted({'tensorrt', 'cuda', 'torch'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _has_tensorrt() -> bool:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(_has_tensorrt(), reason="tensorrt is installed here")
def test_missing_tensorrt_names_the_extra(tmp_path):
    assert trt_adapter.available() is False
    with pytest.raises(TargetUnavailable, match=r"pip install 'bpnas\[tensorrt\]'.*NVIDIA GPU"):
        trt_adapter.load(tmp_path / "model.onnx", {}, RuntimeOptions())


def _install(monkeypatch, trt: types.ModuleType, cudart: types.SimpleNamespace) -> None:
    """Make ``import tensorrt`` and ``from cuda.bindings import runtime`` return these stand-ins."""
    cuda, bindings = types.ModuleType("cuda"), types.ModuleType("cuda.bindings")
    bindings.runtime = cudart  # type: ignore[attr-defined]
    cuda.bindings = bindings  # type: ignore[attr-defined]
    for name, mod in [("tensorrt", trt), ("cuda", cuda), ("cuda.bindings", bindings)]:
        monkeypatch.setitem(sys.modules, name, mod)
    monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", cudart)


def test_no_cuda_device_is_target_unavailable(monkeypatch, tmp_path):
    no_device = types.SimpleNamespace(cudaGetDeviceCount=lambda: (0, 0))  # cudaSuccess, zero devices
    _install(monkeypatch, types.ModuleType("tensorrt"), no_device)
    assert trt_adapter.available() is False
    with pytest.raises(TargetUnavailable, match=r"no CUDA device.*pip install 'bpnas\[tensorrt\]'"):
        trt_adapter.load(tmp_path / "model.onnx", {}, RuntimeOptions(target="jetson"))


# -- options -------------------------------------------------------------------------------------------------
def test_options_defaults():
    opts = TensorRTOptions.from_extra({}, target="tensorrt")
    assert (opts.dla_core, opts.fp16_fallback, opts.workspace_mb, opts.max_batch) == (None, True, None, 32)


def test_options_unknown_key_suggests():
    with pytest.raises(InputError, match="Did you mean 'max_batch'"):
        TensorRTOptions.from_extra({"max_bacth": 8}, target="tensorrt")


BAD_EXTRAS = [{"max_batch": 0}, {"max_batch": True}, {"max_batch": 8.0}, {"dla_core": -1}, {"dla_core": "0"},
              {"workspace_mb": 0}, {"fp16_fallback": "on"}]  # fmt: skip


@pytest.mark.parametrize("extra", BAD_EXTRAS)
def test_options_bad_values(extra):
    with pytest.raises(InputError):
        TensorRTOptions.from_extra(extra, target="jetson")


def test_dla_core_only_on_jetson():
    assert TensorRTOptions.from_extra({"dla_core": 1}, target="jetson").dla_core == 1
    with pytest.raises(InputError, match="only valid for target 'jetson'"):
        TensorRTOptions.from_extra({"dla_core": 0}, target="tensorrt")


# -- build mode, profile, cache key --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("version", "has_flags", "mode"),
    [
        ("10.0.1", True, "weak"),
        ("10.3.0.30", True, "weak"),  # JetPack 6
        ("10.11.0", True, "weak"),
        ("10.12.0.36", True, "strong"),  # weak typing deprecated
        ("10.16.1", True, "strong"),
        ("11.1.0", False, "strong"),  # INT8/FP16 flags removed
        ("10.3.0", False, "strong"),
    ],
)
def test_build_mode(version, has_flags, mode):
    assert build_mode(version, has_precision_flags=has_flags) == mode


def test_profile_shapes():
    assert profile_shapes((-1, 3, 32, 32), max_batch=16, performance_hint="latency") == (
        (1, 3, 32, 32),
        (1, 3, 32, 32),
        (16, 3, 32, 32),
    )
    assert profile_shapes([-1, 1, 8, 8], max_batch=4, performance_hint="throughput")[1] == (4, 1, 8, 8)
    with pytest.raises(InputError, match="performance_hint"):
        profile_shapes((-1, 3, 8, 8), max_batch=4, performance_hint="fast")


@pytest.mark.parametrize("shape", [(1, 3, 32, 32), (-1, 3, -1, 32), (-1, 32, 32)])
def test_profile_shapes_need_dynamic_batch_only(shape):
    with pytest.raises(BundleError):
        profile_shapes(shape, max_batch=8, performance_hint="latency")


def _key(**change):
    args = {
        "artifact_sha256": "ab" * 32,
        "gpu_name": "NVIDIA GeForce RTX 3080",
        "cc": (8, 6),
        "trt_version": "10.3.0",
        "build": {"mode": "weak", "max_batch": 32, "fp16_fallback": True},
    }
    return engine_cache_key(**{**args, **change})


def test_cache_key_names_gpu_and_versions():
    key = _key()
    assert key == _key()
    assert key.startswith("nvidia-geforce-rtx-3080-sm86-trt10.3.0-")
    assert _key(gpu_name="Orin (nvgpu)").startswith("orin-nvgpu-sm86-")


@pytest.mark.parametrize(
    "change",
    [
        {"artifact_sha256": "cd" * 32},
        {"gpu_name": "NVIDIA A100"},
        {"cc": (8, 7)},
        {"trt_version": "10.3.1"},
        {"build": {"mode": "strong", "max_batch": 32, "fp16_fallback": True}},
        {"build": {"mode": "weak", "max_batch": 8, "fp16_fallback": True}},
    ],
)
def test_cache_key_changes_with_every_input(change):
    assert _key(**change) != _key()


def test_file_sha256(tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(b"x" * 3_000_000)
    assert file_sha256(path) == hashlib.sha256(b"x" * 3_000_000).hexdigest()


# -- inspector JSON -> LayerPrecision ------------------------------------------------------------------------
def _tensor(name, fmt, dims=(8, 16, 8, 8)):
    return {"Name": name, "Location": "Device", "Dimensions": list(dims), "Format/Datatype": fmt}


def _conv(name, in_fmt, weights, out_fmt="Row major linear FP32", layer_type="CaskConvolution", **extra):
    layer = {
        "Name": name,
        "LayerType": layer_type,
        "Inputs": [_tensor("a", in_fmt)],
        "Outputs": [_tensor("b", out_fmt)],
        "ParameterType": "Convolution",
        "Kernel": [3, 3],
        "Stride": [1, 1],
        "OutMaps": 16,
        "Groups": 1,
        "Bias": {"Type": "Float", "Count": 16},
        "TacticName": "sm86_xmma_fprop_implicit_gemm",
        "TacticValue": "0x1",
    }
    if weights is not None:
        layer["Weights"] = {"Type": weights, "Count": 432}
    return {**layer, **extra}


INT8_VEC = "Thirty-two wide channel vectorized row major Int8 format"
# An engine's IEngineInspector.get_engine_information(LayerInformationFormat.JSON) output with DETAILED
# verbosity, in the documented layout (keys as in trtexec --exportLayerInfo); constructed, not captured.
# fmt: off
INSPECTOR_JSON = json.dumps({
    "Layers": [
        {"Name": "QuantizeLinear_2", "LayerType": "Reformat", "ParameterType": "Reformat", "Origin": "QDQ",
         "Inputs": [_tensor("input", "Row major linear FP32")],
         "Outputs": [_tensor("input_q", "Four wide channel vectorized row major Int8 format")]},
        _conv("stem.weight + Conv_3", "Row major linear FP32", "Float"),
        _conv("conv1.weight + QuantizeLinear_7 + Conv_9 + Relu_10", INT8_VEC, "Int8", out_fmt=INT8_VEC),
        _conv("layer1.0.conv1.weight + QuantizeLinear_20 + Conv_22",
              "Channel major FP16 format where channel % 8 == 0", "Half"),
        _conv("layer1.0.dw.weight + QuantizeLinear_30 + Conv_32", INT8_VEC, "Int8",
              layer_type="CudaDepthwiseConvolution"),
        _conv("conv0.weight + QuantizeLinear_5 + Conv_6 + MaxPool_12", "Row major Int8 format", None,
              layer_type="ConvActPool", ParameterType="ConvActPool"),
        {"Name": "MaxPool_40", "LayerType": "TiledPooling", "ParameterType": "Pooling",
         "Inputs": [_tensor("p", INT8_VEC)], "Outputs": [_tensor("q", INT8_VEC)]},
        {"Name": "{ForeignNode[/layer2/conv/Conv.../layer3/conv/Conv]}", "LayerType": "Myelin",
         "Inputs": [_tensor("m", "Half")], "Outputs": [_tensor("n", "Half")], "TacticName": "myelin"},
        _conv("fc.weight + QuantizeLinear_309 + Gemm_311 + fc.bias + (Unnamed Layer* 360) [Shuffle]",
              INT8_VEC, "Int8"),
        {"Name": "copied_squeeze_after_(Unnamed Layer* 361) [ElementWise]", "LayerType": "NoOp",
         "Inputs": [_tensor("r", "Row major linear FP32")],
         "Outputs": [_tensor("logits", "Row major linear FP32")]},
    ],
    "Bindings": ["input", "logits"],
})
# fmt: on


def test_inspector_precisions():
    got = layer_precisions_from_inspector(INSPECTOR_JSON, float_layers={"stem"})
    assert got == [
        LayerPrecision("stem", "CaskConvolution", "f32", upcast=False),  # deployed float: not an upcast
        LayerPrecision("conv1", "CaskConvolution", "i8", upcast=False),
        LayerPrecision("layer1.0.conv1", "CaskConvolution", "f16", upcast=True),  # Q/DQ did not fuse
        LayerPrecision("layer1.0.dw", "CudaDepthwiseConvolution", "i8", upcast=False),
        LayerPrecision("conv0", "ConvActPool", "i8", upcast=False),  # no "Weights": input type decides
        LayerPrecision("{ForeignNode[/layer2/conv/Conv.../layer3/conv/Conv]}", "Myelin", "unknown", False),
        LayerPrecision("fc", "CaskConvolution", "i8", upcast=False),  # FP32 output, int8 math
    ]


def test_inspector_float_weights_on_int8_input_is_an_upcast():
    info = {"Layers": [_conv("c.weight + Conv_1", INT8_VEC, "Float")]}
    assert layer_precisions_from_inspector(info) == [LayerPrecision("c", "CaskConvolution", "f32", True)]


def test_inspector_names_only_yields_nothing():
    info = json.dumps({"Layers": ["conv1.weight + QuantizeLinear_7 + Conv_9", "MaxPool_12"], "Bindings": []})
    assert layer_precisions_from_inspector(info) == []


@pytest.mark.parametrize(
    ("engine_name", "known", "expected"),
    [
        ("layer1.0.conv1.weight + QuantizeLinear_20 + Conv_22", None, "layer1.0.conv1"),
        ("fc.weight + QuantizeLinear_309 + Gemm_311 + fc.bias", None, "fc"),
        ("/layer1/layer1.0/conv1/Conv + /layer1/layer1.0/relu/Relu", None, "layer1.0.conv1"),
        ("/layer1/layer1.0/conv1/Conv", ["conv1", "layer1.0.conv1"], "layer1.0.conv1"),
        ("/layer1/0/conv1/Conv", ["conv1", "layer1.0.conv1"], "layer1.0.conv1"),
        ("conv1.weight + QuantizeLinear_7 + Conv_9", ["conv1", "layer1.0.conv1"], "conv1"),
        ("Conv_9 + Relu_10", None, "Conv_9 + Relu_10"),
        ("layer1.0.conv1.w + /layer1.0.conv1/DQ + layer1.0.conv1", ["layer1.0.conv1"], "layer1.0.conv1"),
        ("layer1.0.conv1 + /relu/Relu", ["layer1.0.conv1", "relu"], "layer1.0.conv1"),
        ("layer1.0.conv1 + /relu/Relu", None, "layer1.0.conv1 + /relu/Relu"),  # no guessing without names
        ("other.weight + Conv_1", ["conv1"], "other.weight + Conv_1"),
    ],
)
def test_bpnas_layer_name(engine_name, known, expected):
    assert bpnas_layer_name(engine_name, known) == expected


def test_bundle_layers_from_manifest_config():
    manifest = {"config": {"format_version": 1, "layers": {"stem": [32, 32], "conv1": [4, 4], "fc": [8, 32]}}}
    assert bundle_layers(manifest) == (["stem", "conv1", "fc"], {"stem", "fc"})
    assert bundle_layers({}) == ([], set())


# -- a QDQ model per docs/DESIGN.md section 4 (int8 weights -> DequantizeLinear, node names = layer names),
# with a float bias and plain Q -> DQ activations: TensorRT's DequantizeLinear takes no int32 input.
def _qdq_onnx(path: Path) -> None:
    rng = np.random.default_rng(0)
    nodes, inits = [], []

    def const(name, value):
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def act(x, scale, tag):
        s, z = const(f"{tag}.scale", np.float32(scale)), const(f"{tag}.zp", np.int8(0))
        nodes.append(helper.make_node("QuantizeLinear", [x, s, z], [f"{tag}.q"], name=f"{tag}/Q"))
        nodes.append(
            helper.make_node("DequantizeLinear", [f"{tag}.q", s, z], [f"{tag}.dq"], name=f"{tag}/DQ")
        )
        return f"{tag}.dq"

    def weight(layer, w):
        scale = (np.abs(w).reshape(len(w), -1).max(axis=1) / 127).astype(np.float32)
        wq = np.round(w / scale.reshape(-1, *[1] * (w.ndim - 1))).astype(np.int8)
        args = [const(f"{layer}.weight", wq), const(f"{layer}.w_scale", scale)]
        args.append(const(f"{layer}.w_zp", np.zeros(len(w), np.int8)))
        nodes.append(helper.make_node("DequantizeLinear", args, [f"{layer}.w"], name=f"/{layer}/DQ", axis=0))
        return f"{layer}.w"

    conv_w = weight("conv1", rng.normal(0, 0.3, (8, 3, 3, 3)).astype(np.float32))
    bias = const("conv1.bias", rng.normal(0, 0.1, 8).astype(np.float32))
    nodes.append(
        helper.make_node(
            "Conv", [act("input", 4 / 127, "in"), conv_w, bias], ["c"], name="conv1", pads=[1] * 4
        )
    )
    nodes.append(helper.make_node("Relu", ["c"], ["r"], name="/relu/Relu"))
    nodes.append(helper.make_node("GlobalAveragePool", [act("r", 3 / 127, "a1")], ["g"], name="/pool/GAP"))
    nodes.append(helper.make_node("Flatten", ["g"], ["f"], name="/flatten/Flatten"))
    fc_w = weight("fc", rng.normal(0, 0.3, (4, 8)).astype(np.float32))
    fc_b = const("fc.bias", rng.normal(0, 0.1, 4).astype(np.float32))
    nodes.append(
        helper.make_node("Gemm", [act("f", 2 / 127, "a2"), fc_w, fc_b], ["logits"], name="fc", transB=1)
    )
    graph = helper.make_graph(
        nodes,
        "qdq",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 4])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)


MANIFEST = {"config": {"format_version": 1, "layers": {"conv1": [8, 8], "fc": [8, 8]}}}


@pytest.fixture(scope="module")
def qdq_model(tmp_path_factory) -> tuple[Path, np.ndarray, np.ndarray]:
    """The model, an input batch, and onnxruntime's logits for it (the reference the GPU tests compare to)."""
    import onnxruntime as ort

    path = tmp_path_factory.mktemp("trt") / "model.onnx"
    _qdq_onnx(path)
    x = np.random.default_rng(1).uniform(-2, 2, (5, 3, 8, 8)).astype(np.float32)
    ref = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(["logits"], {"input": x})[0]
    return path, x, ref


def test_fixture_model_is_valid_qdq(qdq_model):
    path, x, ref = qdq_model
    ops = {n.op_type for n in onnx.load(path).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv", "Gemm"} <= ops
    assert ref.shape == (5, 4) and np.isfinite(ref).all()


# -- engine tests (NVIDIA GPU with TensorRT; written against the documented API, skipped elsewhere) ----------
@pytest.mark.tensorrt
@needs_gpu
@pytest.mark.parametrize("hint", ["latency", "throughput"])
def test_engine_matches_onnxruntime(qdq_model, tmp_path, hint):
    path, x, ref = qdq_model
    opts = RuntimeOptions(cache_dir=tmp_path, performance_hint=hint, extra={"max_batch": 2})
    session = trt_adapter.load(path, MANIFEST, opts)
    try:
        assert isinstance(session, Session)
        got = session.run(x)  # 5 images through a max_batch=2 profile: three chunks
        assert got.shape == ref.shape and got.dtype == np.float32
        np.testing.assert_allclose(got, ref, atol=0.1 * np.abs(ref).max())  # int8 rounding order may differ
        assert session.layer_times() is None  # profiling was off
        precisions = {p.layer: p for p in session.effective_precision()}
        assert precisions["conv1"].precision == "i8" and not precisions["conv1"].upcast
        assert precisions["fc"].precision == "i8" and not precisions["fc"].upcast
    finally:
        session.close()
        session.close()  # idempotent
    with pytest.raises(InputError, match="closed"):
        session.run(x)


@pytest.mark.tensorrt
@needs_gpu
def test_engine_is_cached_per_gpu_and_reused(qdq_model, tmp_path):
    path, x, _ = qdq_model
    opts = RuntimeOptions(cache_dir=tmp_path, profiling=True, extra={"max_batch": 8})
    trt_adapter.load(path, MANIFEST, opts).close()
    engines = list(tmp_path.glob("*.engine"))
    assert len(engines) == 1 and list(tmp_path.glob("timing-*.cache"))
    stamp = engines[0].stat().st_mtime_ns
    session = trt_adapter.load(path, MANIFEST, opts)  # deserialized, not rebuilt
    try:
        assert engines[0].stat().st_mtime_ns == stamp
        session.run(x)
        times = session.layer_times()
        assert times and all(t.ms >= 0 for t in times)
        with pytest.raises(InputError, match="expected input"):
            session.run(x[:, :1])
    finally:
        session.close()


# -- the build/cache/run wiring, against a CPU stand-in for the tensorrt + cuda-python calls it makes ------
# The stand-in mimics only the documented call signatures the adapter uses; "device" memory is host memory and
# the "engine" runs the ONNX model with onnxruntime. It checks the adapter's plumbing (flags per TensorRT
# version, profile, cache files, chunking, addresses, profiler), not TensorRT's behaviour.
class _FakeTensorRT(types.ModuleType):
    def __init__(self, version: str, model: Path):
        super().__init__("tensorrt")
        ns = types.SimpleNamespace
        self.__version__ = version
        self.builds: list[Any] = []  # (network flags, config) per build_serialized_network call
        self.configs: list[Any] = []
        self.runtimes: list[Any] = []
        flags = dict(FP16="FP16", GPU_FALLBACK="GPU_FALLBACK", **({"INT8": "INT8"} if version < "11" else {}))
        self.BuilderFlag, self.NetworkDefinitionCreationFlag = ns(**flags), ns(STRONGLY_TYPED=5)
        self.ProfilingVerbosity = ns(DETAILED="DETAILED", LAYER_NAMES_ONLY="LAYER_NAMES_ONLY")
        self.MemoryPoolType, self.DeviceType = ns(WORKSPACE="WORKSPACE"), ns(DLA="DLA", GPU="GPU")
        self.DataType, self.LayerInformationFormat = ns(FLOAT="FLOAT"), ns(JSON="JSON")
        self.Logger = type("Logger", (), {"WARNING": 2, "__init__": lambda self, level: None})
        self.IProfiler = type("IProfiler", (), {"__init__": lambda self: None})
        fake = self

        class Config:
            def __init__(self) -> None:
                self.flags: list[str] = []
                self.profiles: list[Any] = []
                self.pools: dict[str, int] = {}
                fake_timing = ns(serialize=lambda: b"timing")
                self.create_timing_cache = lambda data: fake_timing
                self.set_timing_cache = lambda cache, ignore_mismatch: True
                self.get_timing_cache = lambda: fake_timing
                self.set_flag = self.flags.append
                self.add_optimization_profile = self.profiles.append
                self.set_memory_pool_limit = self.pools.__setitem__
                fake.configs.append(self)

        class Builder:
            num_DLA_cores = 2

            def __init__(self, logger):
                self.create_builder_config = Config
                self.create_optimization_profile = lambda: ns(set_shape=lambda *a: setattr(self, "shapes", a))

            def create_network(self, flags):
                shape = [
                    -1,
                    *(d.dim_value for d in onnx.load(model).graph.input[0].type.tensor_type.shape.dim[1:]),
                ]
                return ns(flags=flags, num_inputs=1, get_input=lambda i: ns(name="input", shape=shape))

            def build_serialized_network(self, network, config):
                fake.builds.append((network.flags, config))
                return b"plan" + json.dumps(self.shapes[1:]).encode()

        class Context:
            def __init__(self, engine):
                self.engine, self.shape, self.addresses, self.profiler = engine, None, {}, None
                self.set_tensor_address = self.addresses.__setitem__

            def set_input_shape(self, name, shape):
                self.shape = tuple(shape)

            def get_tensor_shape(self, name):
                return self.shape if name == "input" else (self.shape[0], 4)

            def execute_async_v3(self, stream):
                import ctypes

                import onnxruntime as ort

                n = int(np.prod(self.shape))
                x = np.frombuffer((ctypes.c_float * n).from_address(self.addresses["input"]), np.float32)
                sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
                y = sess.run(["logits"], {"input": x.reshape(self.shape)})[0].astype(np.float32)
                ctypes.memmove(self.addresses["logits"], y.ctypes.data, y.nbytes)
                if self.profiler is not None:
                    self.profiler.report_layer_time("conv1 + Relu", 0.25)
                return True

        class Engine:
            num_io_tensors = 2

            def __init__(self, shapes):
                self.shapes = shapes
                self.get_tensor_name, self.get_tensor_dtype = (
                    ["input", "logits"].__getitem__,
                    lambda n: "FLOAT",
                )
                self.create_execution_context = lambda: Context(self)
                info = json.dumps({"Layers": [_conv("conv1 + Relu", INT8_VEC, "Int8")]})
                self.create_engine_inspector = lambda: ns(get_engine_information=lambda fmt: info)

            def get_tensor_profile_shape(self, name, index):
                return self.shapes

        class Runtime:
            def __init__(self, logger):
                fake.runtimes.append(self)

            def deserialize_cuda_engine(self, plan):
                return Engine(json.loads(plan[4:])) if plan.startswith(b"plan") else None

        self.Builder, self.Runtime, self.OnnxParser = (
            Builder,
            Runtime,
            lambda network, logger: ns(parse=lambda *a: True),
        )


def _fake_cudart() -> types.SimpleNamespace:
    import ctypes

    memory: dict[int, object] = {}

    def malloc(n):
        buf = ctypes.create_string_buffer(n)
        memory[ctypes.addressof(buf)] = buf
        return 0, ctypes.addressof(buf)

    return types.SimpleNamespace(
        cudaGetDeviceCount=lambda: (0, 1),
        cudaGetDevice=lambda: (0, 0),
        cudaGetDeviceProperties=lambda d: (0, types.SimpleNamespace(name=b"Fake GPU\x00", major=8, minor=6)),
        cudaStreamCreate=lambda: (0, 7),
        cudaStreamSynchronize=lambda s: (0,),
        cudaStreamDestroy=lambda s: (0,),
        cudaMalloc=malloc,
        cudaFree=lambda p: (0, memory.pop(p, None))[:1],
        cudaMemcpyKind=types.SimpleNamespace(cudaMemcpyHostToDevice=1, cudaMemcpyDeviceToHost=2),
        cudaMemcpyAsync=lambda dst, src, n, kind, stream: (0, ctypes.memmove(dst, src, n))[:1],
    )


@pytest.fixture
def fake_engine(monkeypatch, qdq_model):
    """Install the stand-in; returns a function making a fake tensorrt of a given version."""

    def install(version: str) -> _FakeTensorRT:
        fake = _FakeTensorRT(version, qdq_model[0])
        _install(monkeypatch, fake, _fake_cudart())
        trt_adapter._trt_logger.cache_clear()
        return fake

    return install


def test_wiring_weak_mode_builds_caches_and_runs(fake_engine, qdq_model, tmp_path):
    fake = fake_engine("10.3.0.30")
    path, x, ref = qdq_model
    opts = RuntimeOptions(cache_dir=tmp_path, extra={"max_batch": 2, "workspace_mb": 64})
    session = trt_adapter.load(path, MANIFEST, opts)
    assert isinstance(session, Session)
    np.testing.assert_allclose(session.run(x), ref, rtol=1e-6)  # 5 images in chunks of 2
    network_flags, config = fake.builds[0]
    assert network_flags == 0 and config.flags == ["INT8", "FP16"]
    assert config.pools == {"WORKSPACE": 64 << 20} and config.profiling_verbosity == "DETAILED"
    assert session.effective_precision() == [LayerPrecision("conv1", "CaskConvolution", "i8", upcast=False)]
    assert session.layer_times() is None
    session.close()
    (engine,) = tmp_path.glob("fake-gpu-sm86-trt10.3.0.30-*.engine")
    assert list(tmp_path.glob("timing-fake-gpu-sm86-trt10.3.0.30.cache"))
    trt_adapter.load(path, MANIFEST, opts).close()  # cached: deserialized, not rebuilt
    assert len(fake.builds) == 1
    engine.write_bytes(b"not an engine")  # e.g. written by another TensorRT: rebuilt
    trt_adapter.load(path, MANIFEST, opts).close()
    assert len(fake.builds) == 2


@pytest.mark.parametrize("version", ["10.12.0", "11.1.0"])
def test_wiring_strong_mode_sets_no_precision_flags(fake_engine, qdq_model, tmp_path, version):
    fake = fake_engine(version)
    opts = RuntimeOptions(cache_dir=tmp_path, profiling=True, extra={"fp16_fallback": True})
    with pytest.warns(UserWarning, match="fp16_fallback has no effect"):
        session = trt_adapter.load(qdq_model[0], MANIFEST, opts)
    session.run(qdq_model[1])
    network_flags, config = fake.builds[0]
    assert network_flags == 1 << 5 and config.flags == []
    assert [(t.name, t.op_type, t.ms) for t in session.layer_times() or []] == [
        ("conv1 + Relu", "CaskConvolution", 0.25)
    ]
    session.close()


def test_wiring_jetson_dla(fake_engine, qdq_model, tmp_path):
    fake = fake_engine("10.3.0")
    session = trt_adapter.load(
        qdq_model[0], MANIFEST, RuntimeOptions(cache_dir=tmp_path, extra={"dla_core": 1}, target="jetson")
    )
    session.close()
    config = fake.configs[0]
    assert (config.default_device_type, config.DLA_core) == ("DLA", 1)
    assert config.flags == ["INT8", "FP16", "GPU_FALLBACK"] and fake.runtimes[0].DLA_core == 1
    with pytest.raises(TargetUnavailable, match="2 DLA cores"):
        trt_adapter.load(
            qdq_model[0], {}, RuntimeOptions(cache_dir=tmp_path, extra={"dla_core": 2}, target="jetson")
        )
