"""A CPU stand-in for the tensorrt and cuda-python calls runtimes/tensorrt.py makes, for the plumbing tests
and ``examples/gpu_smoke_tensorrt.py --stand-in``.

It mimics the documented call signatures and return-value conventions only: "device" memory is host memory,
the "engine" runs the parsed ONNX bytes with onnxruntime, and the inspector emits JSON in the layout of the
faked version (10.x ``Format/Datatype``, 11 ``Format`` + ``Datatype``), with "N/A" types unless the execution
context is set. It checks the adapter's wiring (flags, profile, cache, return-value checks, pinned copies,
synchronizations, DLA refusal), never TensorRT's behaviour. ``fail`` names calls to make report failure.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import sys
import types
from collections.abc import Iterator
from typing import Any

import numpy as np
import onnx

ns = types.SimpleNamespace
FAILABLE = {"parse", "build", "deserialize", "set_timing_cache", "set_input_shape", "set_tensor_address",
            "execute_async_v3", "profile"}  # fmt: skip
_PLAN = b"FAKEPLAN"


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".")[:3] if p.isdigit())


class _Stream:
    def __int__(self) -> int:
        return 7


class FakeCudart(types.ModuleType):
    """cuda-python's runtime API on host memory; records pinned ranges, copies and synchronizations."""

    def __init__(self) -> None:
        super().__init__("cuda.bindings.runtime")
        self.memory: dict[int, Any] = {}
        self.pinned: dict[int, int] = {}  # address -> size
        self.copies: list[tuple[int, int, int]] = []  # (dst, src, nbytes)
        self.syncs = 0
        self.freed: list[int] = []
        self.cudaMemcpyKind = ns(cudaMemcpyHostToDevice=1, cudaMemcpyDeviceToHost=2)

    def _alloc(self, n: int) -> int:
        buf = ctypes.create_string_buffer(n)
        self.memory[ctypes.addressof(buf)] = buf
        return ctypes.addressof(buf)

    def cudaRuntimeGetVersion(self) -> tuple[int, int]:
        return 0, 12080

    def cudaDriverGetVersion(self) -> tuple[int, int]:
        return 0, 12080

    def cudaGetDeviceCount(self) -> tuple[int, int]:
        return 0, 1

    def cudaGetDevice(self) -> tuple[int, int]:
        return 0, 0

    def cudaGetDeviceProperties(self, device: int) -> tuple[int, Any]:
        return 0, ns(name=b"Fake GPU\x00", major=8, minor=6)

    def cudaStreamCreate(self) -> tuple[int, Any]:
        return 0, _Stream()

    def cudaStreamSynchronize(self, stream: Any) -> tuple[int]:
        self.syncs += 1
        return (0,)

    def cudaStreamDestroy(self, stream: Any) -> tuple[int]:
        return (0,)

    def cudaMalloc(self, n: int) -> tuple[int, int]:
        return 0, self._alloc(n)

    def cudaFree(self, ptr: int) -> tuple[int]:
        self.freed.append(ptr)
        return (0 if self.memory.pop(ptr, None) is not None else 1,)  # a double free is an error

    def cudaMallocHost(self, n: int) -> tuple[int, int]:
        ptr = self._alloc(n)
        self.pinned[ptr] = n
        return 0, ptr

    def cudaFreeHost(self, ptr: int) -> tuple[int]:
        self.pinned.pop(ptr, None)
        return self.cudaFree(ptr)

    def is_pinned(self, ptr: int, n: int) -> bool:
        return any(base <= ptr and ptr + n <= base + size for base, size in self.pinned.items())

    def cudaMemcpyAsync(self, dst: int, src: int, n: int, kind: int, stream: Any) -> tuple[int]:
        host = src if kind == self.cudaMemcpyKind.cudaMemcpyHostToDevice else dst
        if not self.is_pinned(host, n):
            raise AssertionError("cudaMemcpyAsync from pageable host memory")
        self.copies.append((dst, src, n))
        ctypes.memmove(dst, src, n)
        return (0,)


def _dims(value: onnx.ValueInfoProto) -> list[int]:
    return [d.dim_value if d.HasField("dim_value") else -1 for d in value.type.tensor_type.shape.dim]


class FakeTensorRT(types.ModuleType):
    """The tensorrt module as the adapter uses it (TensorRT ``version``'s names and JSON layout)."""

    def __init__(self, version: str = "10.16.1", *, dla_cores: int = 0, dla_refuses: tuple[str, ...] = ()):
        super().__init__("tensorrt")
        self.__version__ = version
        self.fail: set[str] = set()
        self.builds: list[Any] = []  # (network flags, config) per build
        self.dla_refuses = set(dla_refuses)  # ONNX op types can_run_on_DLA says no to
        v = _version(version)
        flags = {"GPU_FALLBACK": "GPU_FALLBACK", **({"INT8": "INT8", "FP16": "FP16"} if v < (11,) else {})}
        self.BuilderFlag, self.NetworkDefinitionCreationFlag = ns(**flags), ns(STRONGLY_TYPED=1)
        self.ProfilingVerbosity = ns(DETAILED="DETAILED", LAYER_NAMES_ONLY="LAYER_NAMES_ONLY")
        self.MemoryPoolType, self.DeviceType = ns(WORKSPACE="WORKSPACE"), ns(DLA="DLA", GPU="GPU")
        self.DataType, self.LayerInformationFormat = ns(FLOAT="FLOAT"), ns(JSON="JSON")
        self.TensorIOMode = ns(INPUT="INPUT", OUTPUT="OUTPUT")
        self.Logger = type("Logger", (), {"WARNING": 2, "__init__": lambda self, level: None})
        self.IProfiler = type("IProfiler", (), {"__init__": lambda self: None})
        self.Builder = _builder_class(self, dla_cores)
        self.Runtime = _runtime_class(self)
        self.OnnxParser = _Parser
        self.inspector_attr = "context" if v < (10, 12) else "execution_context"
        self.split_json = v >= (11,)

    def failed(self, call: str) -> bool:
        return call in self.fail


class _Network:
    def __init__(self, flags: int) -> None:
        self.flags, self.model = flags, None
        self.num_inputs = self.num_layers = 0

    def load(self, data: bytes) -> None:
        self.model = onnx.load_from_string(data)
        self.num_inputs = len(self.model.graph.input)
        self.num_layers = len(self.model.graph.node)

    def get_input(self, i: int) -> Any:
        value = self.model.graph.input[i]
        return ns(name=value.name, shape=_dims(value))

    def get_layer(self, i: int) -> Any:
        node = self.model.graph.node[i]
        return ns(name=node.name or node.output[0], type=node.op_type)


class _Parser:
    def __init__(self, network: _Network, logger: Any) -> None:
        self.network, self.errors = network, ["In node 3 (parseGraph): only activation types allowed"]
        self.num_errors = 0

    def parse(self, data: bytes, path: str | None = None) -> bool:
        trt = sys.modules["tensorrt"]
        if trt.failed("parse"):  # type: ignore[attr-defined]
            self.num_errors = 1
            return False
        self.network.load(data)
        return True

    def get_error(self, i: int) -> str:
        return self.errors[i]


def _builder_class(fake: FakeTensorRT, dla_cores: int) -> type:
    class Config:
        def __init__(self) -> None:
            self.flags: list[str] = []
            self.pools: dict[str, int] = {}
            self.profiles: list[Any] = []
            self.timing = ns(serialize=lambda: b"timing")
            self.timing_data: list[bytes] = []

        def set_flag(self, flag: str) -> None:
            self.flags.append(flag)

        def set_memory_pool_limit(self, pool: str, size: int) -> None:
            self.pools[pool] = size

        def add_optimization_profile(self, profile: Any) -> int:
            self.profiles.append(profile)
            return -1 if fake.failed("profile") else len(self.profiles) - 1

        def create_timing_cache(self, data: bytes) -> Any:
            self.timing_data.append(bytes(data))
            return ns(data=bytes(data))

        def set_timing_cache(self, cache: Any, ignore_mismatch: bool) -> bool:
            return not fake.failed("set_timing_cache") and cache.data in (b"", b"timing")

        def get_timing_cache(self) -> Any:
            return self.timing

        def can_run_on_DLA(self, layer: Any) -> bool:
            return layer.type not in fake.dla_refuses

    class Builder:
        num_DLA_cores = dla_cores
        max_DLA_batch_size = 16

        def __init__(self, logger: Any) -> None:
            self.profile = ns(shapes=None)
            self.profile.set_shape = lambda name, lo, opt, hi: setattr(self.profile, "shapes", (lo, opt, hi))

        def create_network(self, flags: int) -> _Network:
            return _Network(flags)

        def create_builder_config(self) -> Config:
            return Config()

        def create_optimization_profile(self) -> Any:
            return self.profile

        def build_serialized_network(self, network: _Network, config: Config) -> bytes | None:
            fake.builds.append((network.flags, config))
            if fake.failed("build"):
                return None
            header = {"shapes": self.profile.shapes, "flags": config.flags, "strong": network.flags != 0}
            head = json.dumps(header).encode()
            return _PLAN + len(head).to_bytes(4, "little") + head + network.model.SerializeToString()

    return Builder


def _runtime_class(fake: FakeTensorRT) -> type:
    class Runtime:
        DLA_core = -1

        def __init__(self, logger: Any) -> None:
            pass

        def deserialize_cuda_engine(self, plan: bytes) -> Any:
            if fake.failed("deserialize") or not plan.startswith(_PLAN):
                return None
            size = int.from_bytes(plan[8:12], "little")
            header = json.loads(plan[12 : 12 + size])
            return _Engine(fake, header, onnx.load_from_string(plan[12 + size :]))

    return Runtime


class _Engine:
    def __init__(self, fake: FakeTensorRT, header: dict[str, Any], model: onnx.ModelProto) -> None:
        import onnxruntime as ort

        self.fake, self.header, self.model = fake, header, model
        self.inputs = [v.name for v in model.graph.input]
        self.outputs = {v.name: _dims(v)[1:] for v in model.graph.output}
        self.names = [*self.inputs, *self.outputs]
        self.num_io_tensors = len(self.names)
        self.session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])

    def get_tensor_name(self, i: int) -> str:
        return self.names[i]

    def get_tensor_mode(self, name: str) -> str:
        return "INPUT" if name in self.inputs else "OUTPUT"

    def get_tensor_dtype(self, name: str) -> str:
        return "FLOAT"

    def get_tensor_profile_shape(self, name: str, index: int) -> list[tuple[int, ...]]:
        return [tuple(s) for s in self.header["shapes"]]

    def create_execution_context(self) -> _Context:
        return _Context(self)

    def create_engine_inspector(self) -> Any:
        inspector = ns(engine=self)
        setattr(inspector, self.fake.inspector_attr, None)
        inspector.get_engine_information = lambda fmt: _inspector_json(
            self, getattr(inspector, self.fake.inspector_attr)
        )
        return inspector


class _Context:
    def __init__(self, engine: _Engine) -> None:
        self.engine, self.shape, self.addresses = engine, None, {}
        self.profiler: Any = None
        self.nvtx_verbosity = "DETAILED"
        self.runs = 0

    def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
        lo, _, hi = self.engine.header["shapes"]
        fits = all(a <= s <= b for a, s, b in zip(lo, shape, hi)) and len(shape) == len(lo)
        if self.engine.fake.failed("set_input_shape") or not fits:
            return False
        self.shape = tuple(shape)
        return True

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        if name in self.engine.inputs:
            return self.shape
        return (self.shape[0], *self.engine.outputs[name])

    def set_tensor_address(self, name: str, ptr: int) -> bool:
        self.addresses[name] = ptr
        return not self.engine.fake.failed("set_tensor_address")

    def execute_async_v3(self, stream: int) -> bool:
        if self.engine.fake.failed("execute_async_v3"):
            return False
        self.runs += 1
        name, n = self.engine.inputs[0], int(np.prod(self.shape))
        x = np.frombuffer((ctypes.c_float * n).from_address(self.addresses[name]), np.float32)
        ys = self.engine.session.run(list(self.engine.outputs), {name: x.reshape(self.shape)})
        for out, y in zip(self.engine.outputs, ys):
            y = np.ascontiguousarray(y, np.float32)
            ctypes.memmove(self.addresses[out], y.ctypes.data, y.nbytes)
        if self.profiler is not None:
            for layer in _linear_nodes(self.engine.model):
                self.profiler.report_layer_time(layer.name, 0.25)
        return True


def _linear_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    return [n for n in model.graph.node if n.op_type in ("Conv", "Gemm", "MatMul")]


def _inspector_json(engine: _Engine, context: Any) -> str:
    """Inspector JSON: a conv/GEMM fed by DequantizeLinear reads int8, anything else its float type."""
    producers = {o: n.op_type for n in engine.model.graph.node for o in n.output}
    weak_fp16 = "FP16" in engine.header["flags"]
    layers = []
    for node in _linear_nodes(engine.model):
        quantized = producers.get(node.input[0]) == "DequantizeLinear"
        dtype = "Int8" if quantized else ("Half" if weak_fp16 else "Float")
        if context is None:
            dtype = "N/A"  # dynamic shapes unresolved without the execution context
        fmt = "Row major linear"
        tensor = {"Name": node.input[0], "Dimensions": [-1]}
        tensor.update(
            {"Format": fmt, "Datatype": dtype}
            if engine.fake.split_json
            else {"Format/Datatype": f"{fmt} {dtype}"}
        )
        layers.append({
            "Name": node.name, "LayerType": "CaskConvolution" if node.op_type == "Conv" else "CaskGemm",
            "ParameterType": "Convolution" if node.op_type == "Conv" else "MatrixMultiply",
            "Inputs": [tensor], "Outputs": [],
            "Weights": {"Type": "Int8" if quantized else "Float", "Count": 1},
        })  # fmt: skip
    return json.dumps({"Layers": layers, "Bindings": engine.names})


@contextlib.contextmanager
def installed(version: str = "10.16.1", **kw: Any) -> Iterator[tuple[FakeTensorRT, FakeCudart]]:
    """Make ``import tensorrt`` and ``from cuda.bindings import runtime`` return fresh stand-ins."""
    trt, cudart = FakeTensorRT(version, **kw), FakeCudart()
    cuda, bindings = types.ModuleType("cuda"), types.ModuleType("cuda.bindings")
    bindings.runtime = cudart  # type: ignore[attr-defined]
    cuda.bindings = bindings  # type: ignore[attr-defined]
    mods = {"tensorrt": trt, "cuda": cuda, "cuda.bindings": bindings, "cuda.bindings.runtime": cudart}
    saved = {k: sys.modules.get(k) for k in mods}
    sys.modules.update(mods)
    from runtimes import tensorrt as adapter

    adapter._trt_logger.cache_clear()
    try:
        yield trt, cudart
    finally:
        adapter._trt_logger.cache_clear()
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
