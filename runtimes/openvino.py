"""OpenVINO adapter for target "openvino" (CPU plugin by default).

The QDQ ONNX artifact is read directly (QuantizeLinear/DequantizeLinear become FakeQuantize, and the CPU
plugin's low-precision transformations turn quantized convolutions and matmuls into u8/i8 kernels). The model
is compiled with ``PERFORMANCE_HINT`` from ``RuntimeOptions.performance_hint`` and ``INFERENCE_NUM_THREADS``
from ``RuntimeOptions.threads``. Effective precision comes from the compiled model's runtime graph
(``get_runtime_model()``, rt_info ``layerType``/``runtimePrecision``/``originalLayersNames``); per-layer
times from the infer requests' perf counters when profiling is on.

Float layers run at ``inference_precision`` "f32" unless asked otherwise: on CPUs with AMX or AVX512-BF16
OpenVINO's default is bf16, which rounds pooled and float-layer activations before the next quantizer and so
departs from the fake-quant specification (DESIGN §2). Ask for ``inference_precision="bf16"`` (or None for the
plugin default) to trade that for speed.

``RuntimeOptions.extra`` keys (anything else is refused):

- ``device`` (str, default "CPU").
- ``inference_precision`` ("f32" | "bf16" | "f16" | None, default "f32").
- ``num_streams`` (int | None): override the streams the hint picks.
- ``async_min_batch`` (int, default 8): a batch at least this large is split across the compiled model's
  optimal number of infer requests and run through an ``AsyncInferQueue`` (useful with "throughput").

Thread safety: each calling thread gets its own InferRequest (and queue); the compiled model is shared.

Fused residual sums: where the CPU plugin fuses ``conv -> FakeQuantize -> Add -> FakeQuantize`` into one
convolution it builds the first FakeQuantize without rounding; the target's lowering keeps it
(``keep_residual_rounding``, export/passes/residual_rounding.py; ``examples/openvino_fq_repro.py``).

Exact rounding ties: OpenVINO's FakeQuantize rescales in float32, so a value exactly halfway between two codes
rounds either way (measured: up on some elements, down on others), where the spec rounds half to even. With
calibrated scales such ties are rare and OpenVINO agrees with the spec on >= 99.6% top-1 (tests/export/
test_parity.py). With power-of-two activation scales (``power_of_two_scales``, FPGA bundles) sums land on ties
often (7.5% of one ResNet-20 layer's elements), and on untrained zoo nets top-1 fell to 64-97%: such a bundle
loads with :class:`OpenVinoTieWarning`.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from runtimes.base import LayerPrecision, LayerTime, RuntimeOptions, typed_options
from runtimes.bundle import Manifest, expected_width, map_layer, precision_width
from sdk.errors import BundleError, InputError, TargetUnavailable

__all__ = [
    "LINEAR_TYPES",
    "OpenVINOOptions",
    "OpenVINOSession",
    "OpenVinoTieWarning",
    "load",
    "power_of_two_activation_scales",
    "precisions_from_runtime_ops",
]

_PRECISIONS = ("f32", "bf16", "f16")
_HINTS = ("latency", "throughput")
#: OpenVINO CPU runtime-graph layer types that carry a conv/linear layer
LINEAR_TYPES = frozenset({
    "Convolution", "GroupConvolution", "Deconvolution", "FullyConnected", "MatMul", "Gemm",
    "FullyConnectedQuantizedLegacy", "FullyConnectedQuantized", "BinaryConvolution"})  # fmt: skip
_SKIP_STATUS = {"NOT_RUN", "OPTIMIZED_OUT"}


class OpenVinoTieWarning(UserWarning):
    """Every activation scale of the artifact is a power of two, where OpenVINO's float32 FakeQuantize rounds
    the frequent exact ties either way: its outputs depart from the bundle's spec."""


def power_of_two_activation_scales(model: Any) -> bool:
    """True when the read OpenVINO ``model`` has FakeQuantize nodes (its activation quantizers) and the scale
    of every one is an exact power of two: ``(input_high - input_low) / (levels - 1)``.

    Read from the model OpenVINO already parsed, so loading does not parse the artifact twice. The ranges are
    float32 multiples of the scale (``(qmin - zp) * s``, ``(qmax - zp) * s``), so for a power-of-two scale the
    float64 quotient is exact."""
    scales = []
    for op in model.get_ops():
        if op.get_type_name() != "FakeQuantize":
            continue
        bounds = [op.input_value(i).get_node() for i in (1, 2)]
        if any(b.get_type_name() != "Constant" for b in bounds):
            return False
        lo, hi = (np.asarray(b.get_data(), dtype=np.float64) for b in bounds)
        scales.append((hi - lo) / (int(op.get_attributes()["levels"]) - 1))
    return bool(scales) and all(s.size > 0 and bool(np.all(np.frexp(s)[0] == 0.5)) for s in scales)


@dataclass(frozen=True)
class OpenVINOOptions:
    """The typed form of ``RuntimeOptions.extra`` for OpenVINO (see the module docstring)."""

    device: str = "CPU"
    inference_precision: str | None = "f32"
    num_streams: int | None = None
    async_min_batch: int = 8

    def __post_init__(self) -> None:
        if not isinstance(self.device, str) or not self.device:
            raise InputError(f"device must be an OpenVINO device name such as 'CPU', got {self.device!r}.")
        if self.inference_precision is not None and self.inference_precision not in _PRECISIONS:
            raise InputError(
                f"inference_precision must be one of {_PRECISIONS} or None, got {self.inference_precision!r}."
            )
        for name in ("num_streams", "async_min_batch"):
            v = getattr(self, name)
            if (v is not None or name == "async_min_batch") and (
                isinstance(v, bool) or not isinstance(v, int) or v < 1
            ):
                raise InputError(f"{name} must be a positive int, got {v!r}.")

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any]) -> OpenVINOOptions:
        return typed_options(cls, extra, "openvino")


def _import_ov() -> Any:
    try:
        import openvino
    except ImportError as e:
        raise TargetUnavailable(
            "target 'openvino' needs the openvino package, which is not installed: "
            "pip install 'bpnas[openvino]'"
        ) from e
    return openvino


def _rt(info: Any, key: str) -> str:
    if key not in info:
        return ""
    value = info[key]
    return str(value.astype(str)) if hasattr(value, "astype") else str(value)


def precisions_from_runtime_ops(
    ops: Sequence[Mapping[str, str]], pairs: Mapping[str, tuple[int, int]]
) -> tuple[list[LayerPrecision], dict[str, str]]:
    """Effective precision per bpnas layer from runtime-graph rt_info rows, and exec-node name -> layer.

    Each row holds ``name`` (exec node friendly name), ``layerType``, ``runtimePrecision`` and
    ``originalLayersNames`` (comma-separated ONNX node names fused into it).
    """
    found: dict[str, LayerPrecision] = {}
    names: dict[str, str] = {}
    for op in ops:
        if op.get("layerType") not in LINEAR_TYPES:
            continue
        originals = [n for n in op.get("originalLayersNames", "").split(",") if n]
        layer = next((n for n in originals if n in pairs), None)
        if layer is None:
            layer = next(
                (m for n in [op.get("name", ""), *originals] for m in [map_layer(n, pairs)] if m), None
            )
        if layer is None:
            continue
        names[op.get("name", "")] = layer
        if layer in found:
            continue
        precision = (op.get("runtimePrecision") or "unknown").lower()
        upcast = precision != "unknown" and precision_width(precision) > expected_width(pairs[layer])
        found[layer] = LayerPrecision(layer, str(op.get("layerType")), precision, upcast)
    out = [found.get(k) or LayerPrecision(k, "missing", "unknown", upcast=False) for k in pairs]
    return out, names


class OpenVINOSession:
    """A compiled OpenVINO model; one InferRequest (and AsyncInferQueue) per calling thread."""

    thread_safe = True

    def __init__(self, artifact: Path, manifest: Manifest, options: RuntimeOptions) -> None:
        ov = _import_ov()
        import openvino.properties as props
        import openvino.properties.hint as hints

        self._opts = OpenVINOOptions.from_extra(options.extra)
        if options.performance_hint not in _HINTS:
            raise InputError(f"performance_hint must be one of {_HINTS}, got {options.performance_hint!r}.")
        self._ov = ov
        self._profiling = options.profiling
        self._pairs = manifest.layer_pairs()
        self.input_name = manifest.input.name
        core = ov.Core()
        if options.cache_dir is not None:
            Path(options.cache_dir).mkdir(parents=True, exist_ok=True)
            core.set_property({props.cache_dir: str(options.cache_dir)})
        try:
            model = core.read_model(str(artifact))
        except Exception as e:  # OpenVINO raises RuntimeError subclasses for unreadable models
            raise BundleError(
                f"OpenVINO could not read {Path(artifact).name}: {e}. Re-export the bundle."
            ) from e
        if power_of_two_activation_scales(model):
            warnings.warn(
                f"{Path(artifact).name}: every activation scale is a power of two, so exact rounding ties "
                "are frequent, and OpenVINO rounds them either way: its outputs will depart from the "
                "bundle's spec (measured top-1 agreement 64-97% on untrained zoo nets). For bit-exact "
                "power-of-two inference use target 'onnxruntime' or 'integer'; export with calibrated "
                "scales for OpenVINO.",
                OpenVinoTieWarning,
                stacklevel=3,
            )
        ins = [n for i in model.inputs for n in i.get_names()]
        outs = [n for o in model.outputs for n in o.get_names()]
        if self.input_name not in ins or manifest.output.name not in outs:
            raise BundleError(
                f"{Path(artifact).name} has inputs {ins} and outputs {outs}; the manifest says "
                f"{self.input_name!r} -> {manifest.output.name!r}. Re-export the bundle."
            )
        self.output_names: tuple[str, ...] = tuple(  # the manifest's name where an output has several
            manifest.output.name if manifest.output.name in o.get_names() else o.get_any_name()
            for o in model.outputs
        )
        mode = {"latency": hints.PerformanceMode.LATENCY, "throughput": hints.PerformanceMode.THROUGHPUT}
        config: dict[Any, Any] = {
            hints.performance_mode: mode[options.performance_hint],
            props.enable_profiling: bool(options.profiling),
        }
        if options.threads is not None:
            config[props.inference_num_threads] = int(options.threads)
        if self._opts.inference_precision is not None:
            types = {"f32": ov.Type.f32, "bf16": ov.Type.bf16, "f16": ov.Type.f16}
            config[hints.inference_precision] = types[self._opts.inference_precision]
        if self._opts.num_streams is not None:
            config[props.num_streams] = self._opts.num_streams
        try:
            self._compiled: Any = core.compile_model(model, self._opts.device, config)
        except Exception as e:
            raise TargetUnavailable(
                f"OpenVINO could not compile for device {self._opts.device!r}: {e}"
            ) from e
        self.nireq = int(self._compiled.get_property(props.optimal_number_of_infer_requests))
        self._local = threading.local()
        self._lock = threading.Lock()
        self._times: dict[tuple[str, str], float] = {}
        self._recorded = 0
        self._skipped_first = False
        self._precisions: list[LayerPrecision] | None = None
        self._node_layers: dict[str, str] | None = None

    # -- running -------------------------------------------------------------------------------------
    def _request(self) -> Any:
        req = getattr(self._local, "request", None)
        if req is None:
            req = self._local.request = self._compiled.create_infer_request()
        return req

    def _queue(self) -> Any:
        queue = getattr(self._local, "queue", None)
        if queue is None:
            queue = self._local.queue = self._ov.AsyncInferQueue(self._compiled, self.nireq)
        return queue

    def run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        if self._compiled is None:
            raise InputError("this OpenVINO session is closed; load the bundle again.")
        if self.nireq > 1 and len(x) >= max(self._opts.async_min_batch, 2):
            return self._run_async(x)
        req = self._request()
        req.infer({self.input_name: x}, share_inputs=True)
        out = self._outputs(req)
        self._record(req)
        return out

    def _outputs(self, request: Any) -> dict[str, np.ndarray]:
        """Every named output of a finished request, copied out of the request's buffers."""
        return {
            n: np.array(request.get_tensor(n).data, dtype=np.float32, copy=True) for n in self.output_names
        }

    def _run_async(self, x: np.ndarray) -> dict[str, np.ndarray]:
        queue = self._queue()
        chunks = np.array_split(x, min(self.nireq, len(x)))
        results: list[dict[str, np.ndarray] | None] = [None] * len(chunks)

        def done(request: Any, index: int) -> None:
            results[index] = self._outputs(request)
            self._record(request)

        queue.set_callback(done)
        for i, chunk in enumerate(chunks):
            queue.start_async({self.input_name: np.ascontiguousarray(chunk)}, userdata=i)
        queue.wait_all()
        done_parts = [r for r in results if r is not None]
        return {n: np.concatenate([r[n] for r in done_parts]) for n in self.output_names}

    # -- introspection -------------------------------------------------------------------------------
    def _runtime_ops(self) -> list[dict[str, str]]:
        rows = []
        for op in self._compiled.get_runtime_model().get_ordered_ops():
            info = op.get_rt_info()
            row = {k: _rt(info, k) for k in ("layerType", "runtimePrecision", "originalLayersNames")}
            row["name"] = op.get_friendly_name()
            rows.append(row)
        return rows

    def _analyse(self) -> None:
        if self._precisions is None:
            self._precisions, self._node_layers = precisions_from_runtime_ops(
                self._runtime_ops(), self._pairs
            )

    def effective_precision(self) -> list[LayerPrecision]:
        if self._compiled is None:
            raise InputError("this OpenVINO session is closed; load the bundle again.")
        self._analyse()
        assert self._precisions is not None
        return self._precisions

    def _record(self, req: Any) -> None:
        if not self._profiling:
            return
        info = req.profiling_info
        with self._lock:
            if not self._skipped_first:  # the first inference includes one-time allocation
                self._skipped_first = True
                return
            self._recorded += 1
            for p in info:
                if p.status.name in _SKIP_STATUS:
                    continue
                key = (p.node_name, p.node_type)
                self._times[key] = self._times.get(key, 0.0) + p.real_time.total_seconds() * 1e3

    def layer_times(self) -> list[LayerTime] | None:
        """Mean per-inference time of every executed node; conv/matmul nodes named by their bpnas layer."""
        if not self._profiling:
            return None
        if self._compiled is not None:
            self._analyse()
        names = self._node_layers or {}
        with self._lock:
            n = max(self._recorded, 1)
            merged: dict[tuple[str, str], float] = {}
            for (node, op), ms in self._times.items():
                key = (names.get(node, node), op)
                merged[key] = merged.get(key, 0.0) + ms / n
        return [LayerTime(name=name, op_type=op, ms=ms) for (name, op), ms in merged.items()]

    def close(self) -> None:
        self._local = threading.local()
        self._compiled = None


def load(artifact: Path, manifest: Manifest, options: RuntimeOptions) -> OpenVINOSession:
    """Loader for target "openvino"."""
    return OpenVINOSession(Path(artifact), manifest, options)
