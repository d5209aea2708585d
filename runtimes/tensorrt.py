"""TensorRT adapter for the "tensorrt" (Turing+ GPU) and "jetson" (Jetson GPU, optional DLA core) targets.

The artifact is a QDQ ONNX model (explicit quantization: QuantizeLinear/DequantizeLinear, symmetric int8,
zero point 0; input "input", output "logits", dynamic batch axis 0). TensorRT takes each quantized layer's
precision from its Q/DQ pair, so nothing here picks int8 per layer. How the rest of the network is typed
depends on the TensorRT version (see :func:`build_mode`):

- TensorRT >= 10.12 ("strong"): the network is created STRONGLY_TYPED and no precision flag is set, as the
  explicit-quantization guide asks (weak typing is deprecated in 10.12, removed in 11.0). Layers outside
  Q/DQ run in the ONNX dtype, FP32.
- TensorRT 10.0-10.11 ("weak"): BuilderFlag.INT8 is set for the Q/DQ layers, and BuilderFlag.FP16 when
  ``fp16_fallback`` is on (always with a DLA core: DLA runs nothing in FP32), so other layers may run FP16.

Engines are cached in ``options.cache_dir`` (default ``<bundle>/cache/tensorrt``) under a key made of the
GPU name, compute capability, TensorRT version, artifact sha256 and every build option, because an engine
only runs on the GPU model and TensorRT version that built it. A timing cache beside it speeds up rebuilds.

``RuntimeOptions.extra`` keys (anything else is refused):

- ``dla_core`` (int | None, default None): "jetson" only. Run on that DLA core; layers DLA cannot run
  fall back to the GPU (BuilderFlag.GPU_FALLBACK).
- ``fp16_fallback`` (bool, default True): let layers outside Q/DQ run in FP16. Weak mode only; on TensorRT
  >= 10.12 it has no effect, and asking for it explicitly warns.
- ``workspace_mb`` (int | None, default None): builder workspace memory-pool limit; None = TensorRT's.
- ``max_batch`` (int, default 32): largest batch of the optimization profile; ``run`` splits larger ones.
  The profile's optimum batch is 1 for ``performance_hint="latency"`` and ``max_batch`` for "throughput".

Device memory and streams come from cuda-python (``cuda.bindings.runtime``, or ``cuda.cudart`` before
12.6), not torch, so the deploy path stays torch-free. tensorrt and cuda-python are imported inside
functions only, so importing this module costs nothing where they are absent.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
import logging
import os
import re
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from runtimes.base import LayerPrecision, LayerTime, RuntimeOptions, Session
from sdk.errors import BundleError, InputError, TargetUnavailable

__all__ = [
    "TensorRTOptions",
    "available",
    "bpnas_layer_name",
    "build_mode",
    "bundle_layers",
    "engine_cache_key",
    "file_sha256",
    "layer_precisions_from_inspector",
    "load",
    "opt_batch",
    "profile_shapes",
]

_log = logging.getLogger(__name__)

INPUT_NAME, OUTPUT_NAME = "input", "logits"
CACHE_FORMAT = 1  # bump when the build recipe changes, so old cached engines are not reused
_INSTALL_HINT = (
    "install it with `pip install 'bpnas[tensorrt]'` on a machine with an NVIDIA GPU and CUDA "
    "(on Jetson, TensorRT comes with JetPack)"
)
# fmt: off
# Inspector datatype words (lower case) -> bpnas precision names; the inspector spells them many ways.
_DTYPES = {"uint8": "u8", "int8": "i8", "int4": "i4", "fp8": "fp8", "fp4": "fp4", "fp4e2m1": "fp4",
           "bfloat16": "bf16", "fp16": "f16", "half": "f16", "fp32": "f32", "float": "f32", "int32": "i32"}
_WIDTH = {"i4": 4, "fp4": 4, "i8": 8, "u8": 8, "fp8": 8, "bf16": 16, "f16": 16, "f32": 32, "i32": 32}
_LINEAR_PARAMS = {"Convolution", "Deconvolution", "FullyConnected", "MatrixMultiply", "Gemm", "ConvActPool"}
_OPAQUE_TYPES = {"Myelin", "kgen", "DLA", "ForeignNode"}  # fused regions hiding their convs
# fmt: on


@dataclass(frozen=True)
class TensorRTOptions:
    """The typed form of ``RuntimeOptions.extra`` for the TensorRT targets (see the module docstring)."""

    dla_core: int | None = None
    fp16_fallback: bool = True
    workspace_mb: int | None = None
    max_batch: int = 32

    def __post_init__(self) -> None:
        def is_int(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        if self.dla_core is not None and not (is_int(self.dla_core) and self.dla_core >= 0):
            raise InputError(f"dla_core must be a DLA core index >= 0 or None, got {self.dla_core!r}.")
        if not isinstance(self.fp16_fallback, bool):
            raise InputError(f"fp16_fallback must be True or False, got {self.fp16_fallback!r}.")
        if self.workspace_mb is not None and not (is_int(self.workspace_mb) and self.workspace_mb > 0):
            raise InputError(f"workspace_mb must be a positive int (MiB) or None, got {self.workspace_mb!r}.")
        if not (is_int(self.max_batch) and 1 <= self.max_batch <= 4096):
            raise InputError(f"max_batch must be an int in 1..4096, got {self.max_batch!r}.")

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any], *, target: str) -> TensorRTOptions:
        """Validate ``RuntimeOptions.extra`` for ``target`` ("tensorrt" or "jetson")."""
        known = list(cls.__dataclass_fields__)
        for key in extra:
            if key not in known:
                close = difflib.get_close_matches(str(key), known, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise InputError(f"unknown {target} option {key!r}.{hint} Known: {', '.join(known)}.")
        opts = cls(**dict(extra))
        if opts.dla_core is not None and target != "jetson":
            raise InputError("dla_core is only valid for target 'jetson': DLA cores exist on Jetson modules.")
        return opts


# -- pure logic (unit-tested without TensorRT) ---------------------------------------------------------------
def _version(text: str) -> tuple[int, int]:
    m = re.match(r"(\d+)\.(\d+)", text)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def build_mode(trt_version: str, *, has_precision_flags: bool) -> str:
    """Network typing: "strong" (STRONGLY_TYPED, no precision flags) from TensorRT 10.12 on, else "weak"."""
    return "strong" if _version(trt_version) >= (10, 12) or not has_precision_flags else "weak"


def profile_shapes(
    input_shape: Iterable[int], *, max_batch: int, performance_hint: str
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """(min, opt, max) shapes for the optimization profile of an input whose axis 0 is the dynamic batch."""
    shape = tuple(int(d) for d in input_shape)
    if len(shape) != 4 or shape[0] != -1:
        raise BundleError(
            f"the TensorRT adapter needs an NCHW input with a dynamic batch axis 0, got shape {shape}; "
            "re-export the bundle (sdk.export marks axis 0 dynamic)."
        )
    if any(d <= 0 for d in shape[1:]):
        raise BundleError(f"input shape {shape} has dynamic C/H/W; only the batch axis may be dynamic.")
    rest = shape[1:]
    return (1, *rest), (opt_batch(max_batch, performance_hint), *rest), (max_batch, *rest)


def opt_batch(max_batch: int, performance_hint: str) -> int:
    """The batch TensorRT tunes kernels for: 1 for "latency", ``max_batch`` for "throughput"."""
    if performance_hint not in ("latency", "throughput"):
        raise InputError(f"performance_hint must be 'latency' or 'throughput', got {performance_hint!r}.")
    return 1 if performance_hint == "latency" else max_batch


def engine_cache_key(
    *, artifact_sha256: str, gpu_name: str, cc: tuple[int, int], trt_version: str, build: Mapping[str, Any]
) -> str:
    """A file stem naming everything a serialized engine depends on; readable prefix, hashed tail.

    ``cc`` is the compute capability; ``build`` holds every builder setting (mode, options, opt batch).
    """
    parts = {"format": CACHE_FORMAT, "artifact": artifact_sha256, "gpu": gpu_name, "cc": list(cc)}
    parts.update(trt=trt_version, build=dict(build))
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]
    slug = re.sub(r"[^A-Za-z0-9]+", "-", gpu_name).strip("-").lower() or "gpu"
    return f"{slug}-sm{cc[0]}{cc[1]}-trt{trt_version}-{digest}"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _dtype(text: str | None) -> str | None:
    words = re.findall(r"[a-z0-9]+", (text or "").lower())
    return next((_DTYPES[w] for w in words if w in _DTYPES), None)


def bpnas_layer_name(engine_name: str, known: Iterable[str] | None = None) -> str:
    """Map a (possibly fused) TensorRT layer name back to a bpnas layer name where it can be recognised.

    TensorRT joins fused layers' names with " + ". The parts may be node names equal to layer names (bpnas's
    exporter), initializer names ("layer1.0.conv1.weight") or module paths ("/layer1/layer1.0/conv1/Conv").
    With ``known`` names the longest match wins; without, only the first part (the conv/GEMM) is read.
    """
    known_set = set(known or ())

    def names(part: str) -> list[str]:
        base = re.sub(r"\.(weight|bias)$", "", part)
        out = [base] if base != part or part in known_set else []
        if part.startswith("/") and part.count("/") >= 2:
            comps = [c for c in part.strip("/").split("/")[:-1] if c]
            # "/layer1/layer1.0/conv1" repeats the parent as a prefix; keep the most qualified component
            nxt = [*comps[1:], ""]
            out.append(".".join(c for c, n in zip(comps, nxt) if not n.startswith(c + ".")))
        return out

    parts = [p.strip() for p in engine_name.split(" + ")]
    if not known_set:
        return next(iter(names(parts[0])), engine_name)
    matches = [k for part in parts for c in names(part) for k in known_set if c == k or c.endswith("." + k)]
    return max(matches, key=len) if matches else engine_name


def layer_precisions_from_inspector(
    info: str | Mapping[str, Any],
    *,
    known_layers: Iterable[str] | None = None,
    float_layers: Iterable[str] = (),
) -> list[LayerPrecision]:
    """Per conv/linear layer, what the engine runs, from IEngineInspector JSON (ProfilingVerbosity.DETAILED).

    A layer's precision is the wider of its input activation type and its weight type. ``upcast`` marks a
    layer the bundle deploys quantized (not in ``float_layers``) that the engine runs in FP16/FP32. Fused
    regions (Myelin, DLA) hide their convolutions: they are listed with precision "unknown". An engine built
    without DETAILED verbosity lists only layer names, which yields an empty list.
    """
    data = json.loads(info) if isinstance(info, str) else info
    known = list(known_layers or ())
    floats = set(float_layers)
    out = []
    for layer in data.get("Layers", []):
        if not isinstance(layer, Mapping):
            continue  # LAYER_NAMES_ONLY: a bare name, no types
        name, ltype = str(layer.get("Name", "")), str(layer.get("LayerType", ""))
        if ltype in _OPAQUE_TYPES or name.startswith("{ForeignNode"):
            out.append(LayerPrecision(name, ltype or "ForeignNode", precision="unknown", upcast=False))
            continue
        if layer.get("ParameterType") not in _LINEAR_PARAMS and ltype not in _LINEAR_PARAMS:
            continue
        inputs = layer.get("Inputs") or [{}]
        found = [_dtype(inputs[0].get("Format/Datatype")), _dtype((layer.get("Weights") or {}).get("Type"))]
        kinds = [k for k in found if k is not None]
        precision = max(kinds, key=lambda k: _WIDTH.get(k, 32)) if kinds else "unknown"
        mapped = bpnas_layer_name(name, known)
        upcast = mapped not in floats and _WIDTH.get(precision, 0) > 8
        out.append(LayerPrecision(layer=mapped, kernel=ltype, precision=precision, upcast=upcast))
    return out


def bundle_layers(manifest: Mapping[str, Any]) -> tuple[list[str], set[str]]:
    """(layer names, layers deployed float) from the manifest's mixed-precision config, when it has one."""
    config = manifest.get("config")
    layers = config.get("layers") if isinstance(config, Mapping) else None
    if not isinstance(layers, Mapping):
        return [], set()
    floats = {str(n) for n, bits in layers.items() if isinstance(bits, (list, tuple)) and max(bits) > 8}
    return [str(n) for n in layers], floats


# -- engine and device (needs tensorrt + cuda-python + a CUDA GPU) -------------------------------------------
def _import_engine() -> tuple[Any, Any]:
    """(tensorrt, cudart), or TargetUnavailable naming the fix."""
    try:
        import tensorrt as trt
    except ImportError as e:
        raise TargetUnavailable(f"TensorRT is not installed: {_INSTALL_HINT}.") from e
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart  # cuda-python < 12.6
        except ImportError as e:
            raise TargetUnavailable(f"cuda-python is not installed: {_INSTALL_HINT}.") from e
    err, count = cudart.cudaGetDeviceCount()
    if not _cuda_ok(err) or count < 1:
        raise TargetUnavailable(f"no CUDA device is visible (is the NVIDIA driver loaded?); {_INSTALL_HINT}.")
    return trt, cudart


def available() -> bool:
    """True when tensorrt, cuda-python and a CUDA device are all present."""
    try:
        _import_engine()
    except TargetUnavailable:
        return False
    return True


def _cuda_ok(err: Any) -> bool:
    return int(getattr(err, "value", err)) == 0  # cudaError_t.cudaSuccess


def _cuda(result: Any) -> Any:
    """Unwrap a cuda-python (err, value...) tuple, raising on error."""
    items: tuple[Any, ...] = result if isinstance(result, tuple) else (result,)
    err, *rest = items
    if not _cuda_ok(err):
        raise RuntimeError(f"CUDA call failed: {err!r}")
    return rest[0] if len(rest) == 1 else (tuple(rest) or None)


def _atomic_write(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as e:  # a read-only bundle still runs; it just rebuilds next time
        warnings.warn(f"could not write TensorRT cache file {path}: {e}", stacklevel=3)


def _build(
    trt: Any, logger: Any, artifact: Path, opts: TensorRTOptions, mode: str, hint: str, timing_path: Path
) -> bytes:
    builder = trt.Builder(logger)
    strongly: Any = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)  # 11.x: ignored
    flags = 1 << int(strongly) if mode == "strong" and strongly is not None else 0
    network = builder.create_network(flags)  # explicit batch is the only mode since TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(artifact.read_bytes(), str(artifact)):  # path lets external weights resolve
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        if "DequantizeLinear" in errors:  # e.g. an int32 bias: TensorRT dequantizes int8/fp8/int4 only
            errors += " (TensorRT's DequantizeLinear accepts int8 inputs, not int32 biases)"
        raise BundleError(f"TensorRT could not parse {artifact.name}: {errors}")
    names = {network.get_input(i).name for i in range(network.num_inputs)}
    if INPUT_NAME not in names:
        raise BundleError(f"{artifact.name} has inputs {sorted(names)}, expected {INPUT_NAME!r}.")
    lo, opt, hi = profile_shapes(network.get_input(0).shape, max_batch=opts.max_batch, performance_hint=hint)
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    profile.set_shape(INPUT_NAME, lo, opt, hi)
    config.add_optimization_profile(profile)
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # the inspector needs it for layer types
    if opts.workspace_mb is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, opts.workspace_mb << 20)
    if mode == "weak":
        config.set_flag(trt.BuilderFlag.INT8)  # precision itself comes from the Q/DQ pairs
        if opts.fp16_fallback or opts.dla_core is not None:  # DLA runs nothing in FP32
            config.set_flag(trt.BuilderFlag.FP16)
    if opts.dla_core is not None:
        if opts.dla_core >= builder.num_DLA_cores:
            raise TargetUnavailable(
                f"dla_core={opts.dla_core}; this device has {builder.num_DLA_cores} DLA cores."
            )
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = opts.dla_core
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    timing = config.create_timing_cache(timing_path.read_bytes() if timing_path.exists() else b"")
    config.set_timing_cache(timing, False)  # False: refuse a cache recorded on a different device
    _log.warning(
        "building a TensorRT engine for %s (first load on this GPU; can take minutes)", artifact.name
    )
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise BundleError(f"TensorRT could not build an engine from {artifact.name}; see its log above.")
    _atomic_write(timing_path, bytes(memoryview(config.get_timing_cache().serialize())))
    return bytes(memoryview(plan))


class _TensorRTSession:
    """A deserialized engine, one execution context, one stream and device buffers sized for max_batch."""

    input_name, output_name = INPUT_NAME, OUTPUT_NAME

    def __init__(self, trt: Any, cudart: Any, engine: Any, manifest: Mapping[str, Any], *, profiling: bool):
        self._cudart, self._engine = cudart, engine
        io = {engine.get_tensor_name(i) for i in range(engine.num_io_tensors)}
        if io != {INPUT_NAME, OUTPUT_NAME}:
            raise BundleError(
                f"engine tensors are {sorted(io)}, expected {INPUT_NAME!r} and {OUTPUT_NAME!r}."
            )
        if any(engine.get_tensor_dtype(name) != trt.DataType.FLOAT for name in io):
            raise BundleError("the engine's input and output must be float32; re-export the bundle.")
        self._in_shape = tuple(int(d) for d in engine.get_tensor_profile_shape(INPUT_NAME, 0)[2])  # max
        self._context: Any = engine.create_execution_context()
        self._stream = _cuda(cudart.cudaStreamCreate())
        self._buffers: dict[str, int] = {}
        self._context.set_input_shape(INPUT_NAME, self._in_shape)
        for name in (INPUT_NAME, OUTPUT_NAME):
            nbytes = 4 * int(np.prod(tuple(self._context.get_tensor_shape(name))))
            self._buffers[name] = int(_cuda(cudart.cudaMalloc(nbytes)))
            self._context.set_tensor_address(name, self._buffers[name])
        inspector = engine.create_engine_inspector()
        info = json.loads(inspector.get_engine_information(trt.LayerInformationFormat.JSON))
        layers = [x for x in info.get("Layers", []) if isinstance(x, Mapping)]
        self._op_types = {str(x.get("Name")): str(x.get("LayerType", "")) for x in layers}
        known, floats = bundle_layers(manifest)
        self._precisions = layer_precisions_from_inspector(info, known_layers=known, float_layers=floats)
        self._times: dict[str, list[float]] | None = None
        if profiling:
            self._times = {}
            times = self._times

            class _Profiler(trt.IProfiler):  # type: ignore[misc, name-defined]
                def __init__(self) -> None:
                    trt.IProfiler.__init__(self)

                def report_layer_time(self, layer_name: str, ms: float) -> None:
                    times.setdefault(layer_name, []).append(float(ms))

            self._profiler = _Profiler()
            self._context.profiler = self._profiler
        else:  # engines are built DETAILED for the inspector; keep enqueue's NVTX cost at the minimum
            self._context.nvtx_verbosity = trt.ProfilingVerbosity.LAYER_NAMES_ONLY

    def run(self, x: np.ndarray) -> np.ndarray:
        if self._context is None:
            raise InputError("this TensorRT session is closed; load the bundle again.")
        if x.ndim != 4 or tuple(x.shape[1:]) != self._in_shape[1:]:
            raise InputError(f"expected input (N, {', '.join(map(str, self._in_shape[1:]))}), got {x.shape}.")
        if len(x) == 0:
            raise InputError("got an empty batch; pass at least one image.")
        x = np.ascontiguousarray(x, dtype=np.float32)
        step = self._in_shape[0]
        return np.concatenate([self._run_chunk(x[i : i + step]) for i in range(0, len(x), step)])

    def _run_chunk(self, x: np.ndarray) -> np.ndarray:
        cudart, ctx = self._cudart, self._context
        ctx.set_input_shape(INPUT_NAME, x.shape)
        out = np.empty(tuple(ctx.get_tensor_shape(OUTPUT_NAME)), dtype=np.float32)
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        _cuda(cudart.cudaMemcpyAsync(self._buffers[INPUT_NAME], x.ctypes.data, x.nbytes, h2d, self._stream))
        if not ctx.execute_async_v3(int(self._stream)):
            raise RuntimeError("TensorRT execute_async_v3 failed; see TensorRT's log above.")
        out_ptr = self._buffers[OUTPUT_NAME]
        _cuda(cudart.cudaMemcpyAsync(out.ctypes.data, out_ptr, out.nbytes, d2h, self._stream))
        _cuda(cudart.cudaStreamSynchronize(self._stream))
        return out

    def layer_times(self) -> list[LayerTime] | None:
        if self._times is None:
            return None
        types = self._op_types
        return [LayerTime(n, types.get(n, ""), ms=sum(t) / len(t)) for n, t in self._times.items()]

    def effective_precision(self) -> list[LayerPrecision]:
        return list(self._precisions)

    def close(self) -> None:
        if self._context is None:
            return
        self._context = None
        for ptr in self._buffers.values():
            self._cudart.cudaFree(ptr)
        self._buffers.clear()
        self._cudart.cudaStreamDestroy(self._stream)
        self._engine = None


def _load(artifact: Path, manifest: Mapping[str, Any], options: RuntimeOptions, *, target: str) -> Any:
    opts = TensorRTOptions.from_extra(options.extra, target=target)
    trt, cudart = _import_engine()
    if not artifact.is_file():
        raise BundleError(f"TensorRT artifact {artifact} is missing; re-export the bundle.")
    prop = _cuda(cudart.cudaGetDeviceProperties(_cuda(cudart.cudaGetDevice())))
    name = prop.name.decode(errors="replace") if isinstance(prop.name, bytes) else str(prop.name)
    gpu = name.strip("\x00 ")
    cc = (int(prop.major), int(prop.minor))
    mode = build_mode(trt.__version__, has_precision_flags=hasattr(trt.BuilderFlag, "INT8"))
    if mode == "strong" and options.extra.get("fp16_fallback") is True:
        warnings.warn(
            f"fp16_fallback has no effect with TensorRT {trt.__version__}: networks are strongly typed, so "
            "layers outside Q/DQ run in the model's FP32; effective_precision() shows what runs.",
            stacklevel=3,
        )
    cache_dir = Path(options.cache_dir or artifact.parent / "cache" / "tensorrt")
    build = {"mode": mode, "opt_batch": opt_batch(opts.max_batch, options.performance_hint), **asdict(opts)}
    sha = file_sha256(artifact)
    key = engine_cache_key(artifact_sha256=sha, gpu_name=gpu, cc=cc, trt_version=trt.__version__, build=build)
    engine_path = cache_dir / f"{key}.engine"
    logger = _trt_logger(trt)
    runtime = trt.Runtime(logger)
    if opts.dla_core is not None:
        runtime.DLA_core = opts.dla_core
    engine = runtime.deserialize_cuda_engine(engine_path.read_bytes()) if engine_path.exists() else None
    if engine is None:
        timing_path = cache_dir / f"timing-{key.rsplit('-', 1)[0]}.cache"
        plan = _build(trt, logger, artifact, opts, mode, options.performance_hint, timing_path)
        _atomic_write(engine_path, plan)
        engine = runtime.deserialize_cuda_engine(plan)
        if engine is None:
            raise BundleError(f"TensorRT built but could not load the engine for {artifact.name}.")
    return _TensorRTSession(trt, cudart, engine, manifest, profiling=options.profiling)


@functools.lru_cache(maxsize=1)
def _trt_logger(trt: Any) -> Any:
    """One TensorRT logger per process, shared by builder and runtime."""
    return trt.Logger(trt.Logger.WARNING)


def load(artifact: Path, manifest: Mapping[str, Any], options: RuntimeOptions) -> Session:
    """Loader for targets "tensorrt" and "jetson" (``options.target``): a QDQ ONNX artifact compiled (or
    fetched from cache) for this GPU; on "jetson", ``extra["dla_core"]`` may put the network on a DLA."""
    return _load(Path(artifact), manifest, options, target=options.target or "tensorrt")
