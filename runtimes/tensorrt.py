"""TensorRT adapter for the "tensorrt" (Turing+ GPU) and "jetson" (Jetson GPU, optional DLA core) targets.

Supports TensorRT 10.0 to 11.4 (the versions whose Python bindings the API-surface test checks every name
against); TensorRT 8.6 (JetPack 5) is refused with the upgrade to make. The artifact is a QDQ ONNX model with
one NCHW input whose axis 0 is the dynamic batch. Networks are strongly typed by default, as TensorRT's
Explicit Quantization guide asks: each Q/DQ pair sets its layer's precision, no precision flag is set
(``extra={"typing": "weak"}`` asks TensorRT 10.x for the older INT8 + FP16 flags; 11.0 removed them).

Engines are cached in ``options.cache_dir`` (default ``<bundle>/cache/tensorrt``) under a key made of the GPU
name, compute capability, TensorRT version, artifact sha256 and every build option, so the second load of a
bundle on the same GPU deserializes instead of rebuilding. A timing cache beside it speeds up rebuilds.

``RuntimeOptions.extra`` keys (anything else is refused):

- ``typing`` ("strong" | "weak", default "strong"): network typing; "weak" exists on TensorRT 10.x only.
- ``max_batch`` (int, default 32): largest batch of the optimization profile; ``run`` splits larger batches
  into chunks of ``max_batch`` (the last padded), all queued before one stream synchronize.
- ``workspace_mb`` (int | None): builder workspace memory-pool limit; None = TensorRT's default.
- ``dla_core`` (int | None): "jetson" only. Build for that DLA core with a static profile
  (min = opt = max = ``max_batch``, at most the DLA's batch limit; smaller batches are padded). Refused where
  the installed TensorRT has no DLA (10.8 to 11.4.0) and, unless ``gpu_fallback``, when a layer cannot run
  on DLA.
- ``gpu_fallback`` (bool, default False): with ``dla_core``, let layers DLA cannot run go to the GPU (warned).

tensorrt and cuda-python are imported inside functions only: importing this module costs nothing.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from runtimes._tensorrt_build import (
    WEAK_TYPING_FLAGS,
    BuildSpec,
    atomic_write,
    build_plan,
    opt_batch,
    profile_shapes,
)
from runtimes._tensorrt_inspect import bpnas_layer_name, inspector_layers, json_layout, layer_precisions
from runtimes._tensorrt_memory import CudaBuffers, TensorRTError, check, import_cudart
from runtimes.base import LayerPrecision, LayerTime, RuntimeOptions, typed_options
from runtimes.bundle import Manifest, sha256_file
from sdk.config import FLOAT_BITS
from sdk.errors import BundleError, InputError, TargetUnavailable

__all__ = [
    "ALTERNATIVE_NAMES",
    "SUPPORTED_VERSIONS",
    "TensorRTError",
    "TensorRTOptions",
    "TensorRTSession",
    "available",
    "bpnas_layer_name",
    "bundle_facts",
    "check_version",
    "dla_supported",
    "engine_cache_key",
    "load",
    "opt_batch",
    "profile_shapes",
]

#: oldest and newest TensorRT (major, minor) the adapter claims, checked name by name against their bindings
SUPPORTED_VERSIONS = ((10, 0), (11, 4))
#: attributes TensorRT renamed between supported versions; the adapter uses the first that exists
ALTERNATIVE_NAMES = (("execution_context", "context"),)  # IEngineInspector: "context" up to 10.x
CACHE_FORMAT = 2  # bump when the build recipe changes, so old cached engines are not reused
_INSTALL_HINT = (
    "install it with `pip install 'bpnas[tensorrt]'` on a machine with an NVIDIA GPU and CUDA "
    "(on Jetson, TensorRT comes with JetPack 6 or later)"
)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@dataclass(frozen=True)
class TensorRTOptions:
    """The typed form of ``RuntimeOptions.extra`` for the TensorRT targets (see the module docstring)."""

    typing: str = "strong"
    max_batch: int = 32
    workspace_mb: int | None = None
    dla_core: int | None = None
    gpu_fallback: bool = False

    def __post_init__(self) -> None:
        if self.typing not in ("strong", "weak"):
            raise InputError(f"typing must be 'strong' or 'weak', got {self.typing!r}.")
        if not (_is_int(self.max_batch) and 1 <= self.max_batch <= 4096):
            raise InputError(f"max_batch must be an int in 1..4096, got {self.max_batch!r}.")
        if self.workspace_mb is not None and not (_is_int(self.workspace_mb) and self.workspace_mb > 0):
            raise InputError(f"workspace_mb must be a positive int (MiB) or None, got {self.workspace_mb!r}.")
        if self.dla_core is not None and not (_is_int(self.dla_core) and self.dla_core >= 0):
            raise InputError(f"dla_core must be a DLA core index >= 0 or None, got {self.dla_core!r}.")
        if not isinstance(self.gpu_fallback, bool):
            raise InputError(f"gpu_fallback must be True or False, got {self.gpu_fallback!r}.")
        if self.gpu_fallback and self.dla_core is None:
            raise InputError(
                "gpu_fallback only applies with dla_core; without it everything runs on the GPU."
            )

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any], *, target: str) -> TensorRTOptions:
        """Validate ``RuntimeOptions.extra`` for ``target`` ("tensorrt" or "jetson")."""
        opts = typed_options(cls, extra, target)
        if opts.dla_core is not None and target != "jetson":
            raise InputError("dla_core is only valid for target 'jetson': DLA cores exist on Jetson modules.")
        return opts


# -- version policy, cache key, manifest (pure; unit-tested without TensorRT) --------------------------------
def _version(text: str) -> tuple[int, int, int]:
    m = re.match(r"(\d+)(?:\.(\d+))?(?:\.(\d+))?", text)
    return (int(m.group(1)), int(m.group(2) or 0), int(m.group(3) or 0)) if m else (0, 0, 0)


def check_version(version: str) -> None:
    """Refuse TensorRT older than 10.0 (JetPack 5's 8.6) with the upgrade to make; warn above 11.4."""
    v = _version(version)
    if v[:2] < SUPPORTED_VERSIONS[0]:
        raise TargetUnavailable(
            f"TensorRT {version} is too old: bpnas needs TensorRT 10.0 or later (strongly typed networks, "
            "the name-based tensor API). On Jetson upgrade to JetPack 6 (TensorRT 10.3); elsewhere "
            f"{_INSTALL_HINT}."
        )
    if v[:2] > SUPPORTED_VERSIONS[1]:
        warnings.warn(
            f"TensorRT {version} is newer than the newest version bpnas was checked against "
            f"({'.'.join(map(str, SUPPORTED_VERSIONS[1]))}); report problems with the version.",
            stacklevel=3,
        )


def dla_supported(version: str) -> bool:
    """Whether this TensorRT runs DLA on a Jetson: 10.0-10.7 (JetPack 6) and 11.4.1+ (JetPack 7.2.2, Orin).

    Per TensorRT's "Working with DLA": 10.7 was the last 10.x with DLA; 11.0-11.3 have none; 11.4.0 has it
    only on Windows on ARM; 11.5 supports no JetPack. Versions past 11.4 are refused until checked.
    """
    v = _version(version)
    return (10, 0, 0) <= v < (10, 8, 0) or (11, 4, 1) <= v < (11, 5, 0)


def engine_cache_key(
    *, artifact_sha256: str, gpu_name: str, cc: tuple[int, int], trt_version: str, build: Mapping[str, Any]
) -> str:
    """A file stem naming everything a serialized engine depends on; readable prefix, hashed tail.

    ``cc`` is the compute capability; ``build`` holds every builder setting.
    """
    parts = {"format": CACHE_FORMAT, "artifact": artifact_sha256, "gpu": gpu_name, "cc": list(cc)}
    parts.update(trt=trt_version, build=dict(build))
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]
    slug = re.sub(r"[^A-Za-z0-9]+", "-", gpu_name).strip("-").lower() or "gpu"
    return f"{slug}-sm{cc[0]}{cc[1]}-trt{trt_version}-{digest}"


def bundle_facts(manifest: Manifest) -> tuple[str, list[str], set[str]]:
    """(input name, layer names, layers deployed float): the only place this adapter reads the manifest."""
    pairs = manifest.layer_pairs()
    return manifest.input.name, list(pairs), {n for n, bits in pairs.items() if FLOAT_BITS in bits}


# -- engine and device (tensorrt + cuda-python + a CUDA GPU) -------------------------------------------------
def _import_engine() -> tuple[Any, Any]:
    """(tensorrt, cudart) after checking the version and that a CUDA device is visible."""
    try:
        import tensorrt as trt
    except ImportError as e:
        raise TargetUnavailable(f"TensorRT is not installed: {_INSTALL_HINT}.") from e
    cudart = import_cudart(_INSTALL_HINT)
    err, count = cudart.cudaGetDeviceCount()
    if int(getattr(err, "value", err)) != 0 or count < 1:
        raise TargetUnavailable(f"no CUDA device is visible (is the NVIDIA driver loaded?); {_INSTALL_HINT}.")
    check_version(str(trt.__version__))
    return trt, cudart


def available() -> bool:
    """True when a supported tensorrt, cuda-python and a CUDA device are all present."""
    try:
        _import_engine()
    except TargetUnavailable:
        return False
    return True


def _first_attr(obj: Any, names: tuple[str, ...]) -> str:
    return next((n for n in names if hasattr(obj, n)), names[-1])


class TensorRTSession:
    """A deserialized engine, one execution context, one stream, device buffers for the profile's max batch
    and pinned host staging buffers. ``run`` returns every named output."""

    def __init__(
        self, trt: Any, cudart: Any, engine: Any, manifest: Manifest, *, profiling: bool, static: bool
    ):
        self._engine, self._static = engine, static
        self.input_name, known, floats = bundle_facts(manifest)
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        if inputs != [self.input_name]:
            raise BundleError(
                f"engine inputs are {inputs}, expected [{self.input_name!r}]; re-export the bundle."
            )
        self.output_names = tuple(n for n in names if n not in inputs)
        if any(engine.get_tensor_dtype(n) != trt.DataType.FLOAT for n in names):
            raise BundleError("the engine's inputs and outputs must be float32; re-export the bundle.")
        self._max = tuple(int(d) for d in engine.get_tensor_profile_shape(self.input_name, 0)[2])
        self._context: Any = engine.create_execution_context()
        if self._context is None:
            raise TensorRTError("TensorRT could not create an execution context (out of GPU memory?).")
        self._set_shape(self._max)
        sizes = {n: 4 * math.prod(self._context.get_tensor_shape(n)) for n in names}
        self._io = CudaBuffers(cudart, sizes)
        try:
            for name, ptr in self._io.device.items():
                if not self._context.set_tensor_address(name, ptr):
                    raise TensorRTError(f"TensorRT refused the device address of tensor {name!r}.")
            self._inspect(trt, engine, known, floats)
            self._times = self._attach_profiler(trt) if profiling else None
        except BaseException:
            self._io.free()
            raise
        if not profiling:  # engines are built DETAILED for the inspector; keep enqueue's NVTX cost minimal
            self._context.nvtx_verbosity = trt.ProfilingVerbosity.LAYER_NAMES_ONLY

    def _inspect(self, trt: Any, engine: Any, known: list[str], floats: set[str]) -> None:
        """Read the inspector with the execution context set (its input shape resolved), in either layout."""
        inspector = engine.create_engine_inspector()
        setattr(inspector, _first_attr(inspector, ALTERNATIVE_NAMES[0]), self._context)
        info = json.loads(inspector.get_engine_information(trt.LayerInformationFormat.JSON))
        self.inspector_layout = json_layout(info)
        layers = [x for x in inspector_layers(info) if isinstance(x, Mapping)]
        self._op_types = {str(x.get("Name")): str(x.get("LayerType", "")) for x in layers}
        self._precisions = layer_precisions(info, known_layers=known, float_layers=floats)

    def _attach_profiler(self, trt: Any) -> dict[str, list[float]]:
        """An IProfiler on the context collecting per-layer milliseconds; returns the dict it fills."""
        times: dict[str, list[float]] = {}

        class _Profiler(trt.IProfiler):  # type: ignore[misc, name-defined]
            def __init__(self) -> None:
                trt.IProfiler.__init__(self)

            def report_layer_time(self, layer_name: str, ms: float) -> None:
                times.setdefault(layer_name, []).append(float(ms))

        self._profiler = _Profiler()
        self._context.profiler = self._profiler
        return times

    def _set_shape(self, shape: tuple[int, ...]) -> None:
        if not self._context.set_input_shape(self.input_name, shape):
            lo, _, hi = self._engine.get_tensor_profile_shape(self.input_name, 0)
            raise InputError(f"TensorRT refused input shape {shape}; the engine's profile is {lo}..{hi}.")
        self._shape = shape

    def run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Run one float32 NCHW batch; every chunk is queued, then one stream synchronize."""
        if self._context is None:
            raise InputError("this TensorRT session is closed; load the bundle again.")
        if x.ndim != 4 or tuple(x.shape[1:]) != self._max[1:]:
            raise InputError(f"expected input (N, {', '.join(map(str, self._max[1:]))}), got {x.shape}.")
        n = len(x)
        if n == 0:
            raise InputError("got an empty batch; pass at least one image.")
        step = self._max[0] if self._static or n > self._max[0] else n
        chunks = -(-n // step)
        if (step, *self._max[1:]) != self._shape:
            self._set_shape((step, *self._max[1:]))
        host_in = self._io.host[self.input_name].view((chunks * step, *self._max[1:]))
        host_in[:n] = x
        host_in[n:] = 0  # padding of the last chunk
        outs = {o: tuple(self._context.get_tensor_shape(o))[1:] for o in self.output_names}
        host_out = {o: self._io.host[o].view((chunks * step, *shape)) for o, shape in outs.items()}
        for i in range(chunks):
            self._io.to_device(self.input_name, host_in[i * step : (i + 1) * step])
            if not self._context.execute_async_v3(self._io.handle):
                raise TensorRTError("TensorRT execute_async_v3 failed; see TensorRT's log above.")
            for o in self.output_names:
                self._io.to_host(o, host_out[o][i * step : (i + 1) * step])
        self._io.synchronize()
        return {o: host_out[o][:n].copy() for o in self.output_names}

    def layer_times(self) -> list[LayerTime] | None:
        if self._times is None:
            return None
        types = self._op_types
        return [LayerTime(n, types.get(n, ""), ms=sum(t) / len(t)) for n, t in self._times.items()]

    def effective_precision(self) -> list[LayerPrecision]:
        return list(self._precisions)

    def close(self) -> None:
        """Free the context, buffers and stream; a second call does nothing."""
        if self._context is None:
            return
        self._context = None
        self._io.free()
        self._engine = None


def _device(cudart: Any) -> tuple[str, tuple[int, int]]:
    prop = check(cudart.cudaGetDeviceProperties(check(cudart.cudaGetDevice(), "cudaGetDevice")), "properties")
    name = prop.name.decode(errors="replace") if isinstance(prop.name, bytes) else str(prop.name)
    return name.strip("\x00 "), (int(prop.major), int(prop.minor))


def _spec(trt: Any, opts: TensorRTOptions, options: RuntimeOptions) -> BuildSpec:
    version = str(trt.__version__)
    if opts.typing == "weak" and not all(hasattr(trt.BuilderFlag, f) for f in WEAK_TYPING_FLAGS):
        raise InputError(f"typing='weak' needs TensorRT 10.x; TensorRT {version} builds strongly typed only.")
    if opts.dla_core is not None and not dla_supported(version):
        raise TargetUnavailable(
            f"TensorRT {version} has no DLA support on Jetson (10.7 was the last 10.x with DLA; 11.0-11.3 "
            "have none; 11.4.1 restores it on AGX Orin with JetPack 7.2.2). Use JetPack 6 (TensorRT 10.3) or "
            "TensorRT 11.4.1 for DLA, or drop dla_core to run on the GPU."
        )
    return BuildSpec(
        typing=opts.typing,
        max_batch=opts.max_batch,
        performance_hint=options.performance_hint,
        workspace_mb=opts.workspace_mb,
        dla_core=opts.dla_core,
        gpu_fallback=opts.gpu_fallback,
    )


def _load(artifact: Path, manifest: Manifest, options: RuntimeOptions, *, target: str) -> TensorRTSession:
    opts = TensorRTOptions.from_extra(options.extra, target=target)
    trt, cudart = _import_engine()
    if not artifact.is_file():
        raise BundleError(f"TensorRT artifact {artifact} is missing; re-export the bundle.")
    spec = _spec(trt, opts, options)
    opt_batch(opts.max_batch, options.performance_hint)  # validates the hint before any work
    gpu, cc = _device(cudart)
    version = str(trt.__version__)
    key = engine_cache_key(
        artifact_sha256=sha256_file(artifact), gpu_name=gpu, cc=cc, trt_version=version, build=asdict(spec)
    )
    cache_dir = Path(options.cache_dir or artifact.parent / "cache" / "tensorrt")
    engine_path = cache_dir / f"{key}.engine"
    logger = _trt_logger(trt)
    runtime = trt.Runtime(logger)
    if runtime is None:
        raise TensorRTError("TensorRT could not create a runtime; see its log above.")
    if opts.dla_core is not None:
        runtime.DLA_core = opts.dla_core
    engine = runtime.deserialize_cuda_engine(engine_path.read_bytes()) if engine_path.exists() else None
    if engine is None:  # not cached, or written by another TensorRT: build it
        input_name = bundle_facts(manifest)[0]
        timing_path = cache_dir / f"timing-{key.rsplit('-', 1)[0]}.cache"
        plan = build_plan(trt, logger, artifact, spec, input_name=input_name, timing_path=timing_path)
        atomic_write(engine_path, plan)
        engine = runtime.deserialize_cuda_engine(plan)
        if engine is None:
            raise TensorRTError(f"TensorRT built but could not deserialize the engine for {artifact.name}.")
    return TensorRTSession(
        trt, cudart, engine, manifest, profiling=options.profiling, static=opts.dla_core is not None
    )


@functools.lru_cache(maxsize=1)
def _trt_logger(trt: Any) -> Any:
    """One TensorRT logger per process, shared by builder and runtime."""
    return trt.Logger(trt.Logger.WARNING)


def load(artifact: Path, manifest: Manifest, options: RuntimeOptions) -> TensorRTSession:
    """Loader for targets "tensorrt" and "jetson" (``options.target``; on jetson ``extra["dla_core"]`` may put
    the network on a DLA): the QDQ ONNX artifact compiled (or fetched from the engine cache) for this GPU."""
    return _load(Path(artifact), manifest, options, target=options.target or "tensorrt")
