"""Building a TensorRT engine from a bundle's QDQ ONNX artifact: network, parser, profile, builder config.

Follows TensorRT's Explicit Quantization guide: the network is created STRONGLY_TYPED and no precision flag
is set, so every Q/DQ pair decides its layer's precision and the rest runs in the ONNX dtype (FP32). TensorRT
10.x also offers "weak" typing (BuilderFlag.INT8 + FP16) on request; 11.0 removed it. Explicit batch is the
only network mode from TensorRT 10 on, so no EXPLICIT_BATCH flag is passed (it is deprecated in 10, gone in
11). Every return value TensorRT reports failure through is checked.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdk.errors import BundleError, InputError, TargetUnavailable

__all__ = ["WEAK_TYPING_FLAGS", "BuildSpec", "atomic_write", "build_plan", "opt_batch", "profile_shapes"]

#: the BuilderFlag members weak typing sets (TensorRT 10.x; removed in 11.0 with weak typing itself)
WEAK_TYPING_FLAGS = ("INT8", "FP16")

_log = logging.getLogger("runtimes.tensorrt")


@dataclass(frozen=True)
class BuildSpec:
    """Everything a build depends on besides the artifact (also part of the engine-cache key)."""

    typing: str  # "strong" | "weak"
    max_batch: int
    performance_hint: str  # "latency" | "throughput"
    workspace_mb: int | None = None
    dla_core: int | None = None
    gpu_fallback: bool = False


def opt_batch(max_batch: int, performance_hint: str) -> int:
    """The batch TensorRT tunes kernels for: 1 for "latency", ``max_batch`` for "throughput"."""
    if performance_hint not in ("latency", "throughput"):
        raise InputError(f"performance_hint must be 'latency' or 'throughput', got {performance_hint!r}.")
    return 1 if performance_hint == "latency" else max_batch


def profile_shapes(
    input_shape: Iterable[int], *, max_batch: int, performance_hint: str, static: bool = False
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """(min, opt, max) shapes for an NCHW input whose axis 0 is the dynamic batch.

    ``static`` (DLA) pins all three to ``max_batch``: DLA needs min = opt = max.
    """
    shape = tuple(int(d) for d in input_shape)
    if len(shape) != 4 or shape[0] != -1:
        raise BundleError(
            f"the TensorRT adapter needs an NCHW input with a dynamic batch axis 0, got shape {shape}; "
            "re-export the bundle (sdk.export marks axis 0 dynamic)."
        )
    if any(d <= 0 for d in shape[1:]):
        raise BundleError(f"input shape {shape} has dynamic C/H/W; only the batch axis may be dynamic.")
    rest = shape[1:]
    if static:
        return (max_batch, *rest), (max_batch, *rest), (max_batch, *rest)
    return (1, *rest), (opt_batch(max_batch, performance_hint), *rest), (max_batch, *rest)


def atomic_write(path: Path, data: bytes) -> None:
    """Write a cache file atomically; a read-only cache directory only costs a rebuild next time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as e:
        warnings.warn(f"could not write TensorRT cache file {path}: {e}", stacklevel=3)


def _parse(trt: Any, logger: Any, builder: Any, artifact: Path, typing: str) -> tuple[Any, Any]:
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if typing == "strong" else 0
    network = builder.create_network(flags)
    if network is None:
        raise TargetUnavailable("TensorRT could not create a network definition; see its log above.")
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(artifact.read_bytes(), str(artifact)):  # the path lets external weights resolve
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors)) or "no detail"
        raise BundleError(
            f"TensorRT's ONNX parser refused {artifact.name}: {errors}. Re-export the bundle for target "
            "'tensorrt' with this bpnas version (its lowering emits what TensorRT's parser takes)."
        )
    return network, parser


def _dla(trt: Any, builder: Any, network: Any, config: Any, spec: BuildSpec) -> None:
    """Put the network on DLA core ``spec.dla_core``; refuse layers DLA cannot run unless GPU fallback."""
    cores = int(builder.num_DLA_cores)
    if cores == 0:
        raise TargetUnavailable("this device has no DLA core; drop extra['dla_core'] to run on the GPU.")
    if spec.dla_core is None or spec.dla_core >= cores:
        raise TargetUnavailable(
            f"dla_core={spec.dla_core}; this device has {cores} DLA cores (0..{cores - 1})."
        )
    limit = int(builder.max_DLA_batch_size)
    if spec.max_batch > limit:
        raise TargetUnavailable(
            f"max_batch={spec.max_batch} exceeds this DLA's batch limit ({limit}); pass "
            f"extra={{'max_batch': {limit}}} (DLA engines have a static batch)."
        )
    config.default_device_type = trt.DeviceType.DLA
    config.DLA_core = spec.dla_core
    layers = [network.get_layer(i) for i in range(network.num_layers)]
    on_gpu = [layer.name for layer in layers if not config.can_run_on_DLA(layer)]
    if on_gpu and not spec.gpu_fallback:
        shown = ", ".join(on_gpu[:8]) + (f" and {len(on_gpu) - 8} more" if len(on_gpu) > 8 else "")
        raise TargetUnavailable(
            f"{len(on_gpu)} of {len(layers)} layers cannot run on DLA core {spec.dla_core} ({shown}). "
            "Pass extra={'gpu_fallback': True} to run those on the GPU, or drop dla_core."
        )
    if spec.gpu_fallback:
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
        if on_gpu:
            warnings.warn(
                f"gpu_fallback: {len(on_gpu)} layers run on the GPU, not DLA: {', '.join(on_gpu)}",
                stacklevel=4,
            )


def _timing_cache(config: Any, timing_path: Path) -> None:
    data = timing_path.read_bytes() if timing_path.exists() else b""
    if config.set_timing_cache(config.create_timing_cache(data), False):  # False: refuse another device's
        return
    if data:  # a stale or foreign cache file: start from an empty one instead
        warnings.warn(f"TensorRT refused timing cache {timing_path}; building without it.", stacklevel=4)
        if config.set_timing_cache(config.create_timing_cache(b""), False):
            return
    raise TargetUnavailable("TensorRT refused an empty timing cache (set_timing_cache returned False).")


def build_plan(
    trt: Any, logger: Any, artifact: Path, spec: BuildSpec, *, input_name: str, timing_path: Path
) -> bytes:
    """Parse ``artifact`` and build a serialized engine (plan) for this GPU; raises BpnasError subclasses."""
    builder = trt.Builder(logger)
    network, _parser = _parse(trt, logger, builder, artifact, spec.typing)  # parser owns the weights
    names = [network.get_input(i).name for i in range(network.num_inputs)]
    if names != [input_name]:
        raise BundleError(f"{artifact.name} has inputs {names}, expected [{input_name!r}]; re-export it.")
    static = spec.dla_core is not None
    lo, opt, hi = profile_shapes(
        network.get_input(0).shape,
        max_batch=spec.max_batch,
        performance_hint=spec.performance_hint,
        static=static,
    )
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    profile.set_shape(input_name, lo, opt, hi)
    if config.add_optimization_profile(profile) < 0:
        raise BundleError(f"TensorRT refused the optimization profile {lo}/{opt}/{hi} for {input_name!r}.")
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # the inspector needs it for layer types
    if spec.workspace_mb is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, spec.workspace_mb << 20)
    if spec.typing == "weak":  # TensorRT 10.x only: precision flags on a weakly typed network
        for flag in WEAK_TYPING_FLAGS:
            config.set_flag(getattr(trt.BuilderFlag, flag))
    if spec.dla_core is not None:
        _dla(trt, builder, network, config, spec)
    _timing_cache(config, timing_path)
    _log.warning(
        "building a TensorRT engine for %s (first load on this GPU; can take minutes)", artifact.name
    )
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise BundleError(f"TensorRT could not build an engine from {artifact.name}; see its log above.")
    atomic_write(timing_path, bytes(memoryview(config.get_timing_cache().serialize())))
    return bytes(memoryview(plan))
