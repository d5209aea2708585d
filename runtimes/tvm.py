"""TVM engine adapter: compiles a bundle's ONNX artifact with Apache TVM Relax for the host CPU (LLVM).

Untuned TVM kernels are plain loop nests, often 10-100x slower than onnxruntime; speed comes from
MetaSchedule records made by :func:`tune` (a trial budget the user sets) and reused by every later load.
A load without records warns with :class:`TvmUntunedWarning`.

QDQ artifacts: TVM's Relax ONNX frontend imports QuantizeLinear/DequantizeLinear (per-channel ``axis``
included) and integer-domain ``Clip`` exactly as ONNX defines them (round half to even); constant weight
DequantizeLinear is folded into float weights at compile time. Conv and matmul then run in float32, so
:meth:`TvmSession.effective_precision` reports ``f32`` (``upcast=True`` for int8 layers).

Batch: the library is compiled for one batch size (``tvm_batch``, default 1, so tuning records apply);
larger batches run in chunks of that size, the last chunk zero-padded.

Tuning records are looked for in ``extra["tvm_tuning_dir"]``, else in ``<bundle>/tvm_tuning`` (relative
paths resolve against the artifact's directory, i.e. the bundle). They are MetaSchedule's JSON database
files plus ``tvm_tuning.json``.

Keys read from ``RuntimeOptions.extra`` (all optional; any other key raises InputError):
    tvm_tuning_dir: the records directory, as above.
    tvm_trials: int, when > 0 and the records directory has none yet, tune at load with this many
        trials (minutes to hours) and write the records there.
    tvm_batch: int, the batch size compiled (default 1).
    tvm_mcpu: str, LLVM CPU name for code generation (default: LLVM's name for this host).
    tvm_default_schedules: bool, schedule untuned kernels with DLight's CPU rules (default False; they
        cover reductions and GEMV only, so convolutions stay plain loops).

Threads: TVM's thread pool is process-wide and sized once; ``RuntimeOptions.threads`` (else every CPU
this process may use) goes to ``TVM_NUM_THREADS`` before the first kernel runs.

Compiled libraries are cached as ``<key>.so`` + ``<key>.json`` in ``options.cache_dir`` (default
``<artifact dir>/.tvm_cache``), keyed by TVM version, host CPU (model + flags digest), model sha256,
target, input shape, records digest and schedule options; a later load with the same key skips compiling.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from runtimes import _tvm_build as tb
from runtimes.base import LayerPrecision, LayerTime, RuntimeOptions, Session, typed_options
from runtimes.bundle import Manifest, expected_width, precision_width, sha256_file
from sdk.errors import InputError

__all__ = [
    "load",
    "load_model",
    "tune",
    "TuneReport",
    "TvmSession",
    "TvmUntunedWarning",
    "TvmOptions",
    "DEFAULT_TUNING_DIR",
]

DEFAULT_TUNING_DIR = "tvm_tuning"
_CACHE_FORMAT = 4  # 2: meta records tuned_kernels; 3: weights prepacked at compile time; 4: NHWC convs
_META_FILE = "tvm_tuning.json"


class TvmUntunedWarning(UserWarning):
    """The TVM library runs kernels without MetaSchedule records: expect it to be far slower than tuned."""


@dataclass(frozen=True)
class TuneReport:
    """What one :func:`tune` call did and how much it helped, measured on this machine."""

    records_dir: str
    target: str
    input_shape: tuple[int, ...]
    tasks: int
    trials_requested: int
    trials_per_task: int
    records_added: int
    records_total: int  # records accumulate across tune calls into the same directory
    wall_s: float
    latency_before_ms: float
    latency_after_ms: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TvmOptions:
    """The typed form of ``RuntimeOptions.extra`` for TVM (see the module docstring)."""

    tvm_tuning_dir: str | os.PathLike[str] | None = None
    tvm_trials: int = 0
    tvm_batch: int = 1
    tvm_mcpu: str | None = None
    tvm_default_schedules: bool = False

    def __post_init__(self) -> None:
        for name, low in (("tvm_trials", 0), ("tvm_batch", 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise InputError(f"{name} must be an int >= {low}, got {v!r}.")
        if self.tvm_mcpu is not None and (not isinstance(self.tvm_mcpu, str) or not self.tvm_mcpu):
            raise InputError(f"tvm_mcpu must be an LLVM CPU name such as 'skylake', got {self.tvm_mcpu!r}.")
        if not isinstance(self.tvm_default_schedules, bool):
            raise InputError(f"tvm_default_schedules must be a bool, got {self.tvm_default_schedules!r}.")

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any]) -> TvmOptions:
        return typed_options(cls, extra, "TVM")

    def tuning_dir(self, artifact: Path) -> Path:
        """Where records live: the option, else ``<bundle>/tvm_tuning``. Relative paths resolve against the
        artifact's directory (the bundle)."""
        raw = self.tvm_tuning_dir
        path = Path(raw) if raw is not None else Path(DEFAULT_TUNING_DIR)
        return path if path.is_absolute() else artifact.parent / path


def _has_records(records_dir: Path) -> bool:
    p = records_dir / "database_tuning_record.json"
    return p.is_file() and p.stat().st_size > 0


def _untuned_warning(
    artifact: Path, meta: Mapping[str, Any], records: Path | None
) -> TvmUntunedWarning | None:
    """The warning for a library with untuned kernels (None when every kernel has a record)."""
    tuned, kernels = (int(v) for v in str(meta.get("tuned_kernels", "0/0")).split("/"))
    if tuned > 0 and tuned >= kernels:
        return None
    if records is None:
        what = "untuned kernels"
    elif tuned == 0:
        what = f"untuned kernels (the records in {records} match none of them)"
    else:
        what = f"{kernels - tuned} of {kernels} kernels untuned (no records in {records})"
    return TvmUntunedWarning(
        f"TVM runs {artifact.name} with {what}; untuned kernels are typically 10-100x slower than "
        "onnxruntime. Tune with runtimes.tvm.tune(artifact, bundle / 'tvm_tuning', trials=...) (later "
        "loads find the records there), or load with options={'tvm_trials': N}."
    )


class TvmSession:
    """A TVM Relax VM over a compiled library; see the module docstring for batching and precision."""

    def __init__(
        self, vm: Any, spec: tb.OnnxSpec, batch: int, sample_shape: tuple[int, ...], meta: dict[str, Any]
    ) -> None:
        self.input_name = spec.input_name
        self.output_names = spec.output_names
        self._vm = vm
        self._batch = batch
        self._sample_shape = sample_shape
        self._precision = [LayerPrecision(**p) for p in meta["precision"]]
        self.tuned: bool = bool(meta["tuned"])
        self.tuned_kernels: str = str(meta.get("tuned_kernels", "0/0"))  # "tuned/all" fused kernels
        self.from_cache: bool = bool(meta.get("from_cache", False))
        self.library_path: Path | None = meta.get("library_path")
        self._times: dict[str, list[float]] | None = None
        self._runs = 0
        self.speed_warnings: tuple[Warning, ...] = ()  # repeated by Predictor.profile()

    def enable_profiling(self) -> None:
        """Time every kernel call through the VM's instrument hook (adds Python overhead per call)."""
        import tvm

        self._times = {}
        started: dict[str, float] = {}
        times = self._times

        def instrument(func: Any, symbol: Any, before: Any, ret: Any, *args: Any) -> int:
            name = str(symbol)
            if name.startswith("vm.builtin.") or name.startswith("runtime."):
                return 0
            if before:
                started[name] = time.perf_counter()
            elif name in started:
                times.setdefault(name, []).append(time.perf_counter() - started.pop(name))
            return 0

        self._vm.set_instrument(tvm.runtime.convert(instrument))

    def run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        import tvm

        if not isinstance(x, np.ndarray) or x.dtype != np.float32 or x.ndim != 1 + len(self._sample_shape):
            raise InputError(
                f"TVM session expects float32 input of shape (N, {', '.join(map(str, self._sample_shape))}), "
                f"got {getattr(x, 'dtype', type(x).__name__)} {getattr(x, 'shape', '')}"
            )
        if tuple(x.shape[1:]) != self._sample_shape:
            raise InputError(
                f"input shape {tuple(x.shape)} does not match the compiled shape (N, {self._sample_shape}); "
                "export the bundle at this size"
            )
        n, b = x.shape[0], self._batch
        outs: list[list[np.ndarray]] = [[] for _ in self.output_names]
        for start in range(0, n, b):
            chunk = x[start : start + b]
            if chunk.shape[0] < b:
                chunk = np.concatenate(
                    [chunk, np.zeros((b - chunk.shape[0], *self._sample_shape), np.float32)]
                )
            y = self._vm["main"](tvm.runtime.tensor(np.ascontiguousarray(chunk)))
            parts = [y] if hasattr(y, "numpy") else [y[i] for i in range(len(outs))]
            for out, part in zip(outs, parts):
                out.append(np.asarray(part.numpy())[: min(b, n - start)])
        self._runs += 1
        return {
            name: np.concatenate(out).astype(np.float32, copy=False)
            for name, out in zip(self.output_names, outs)
        }

    def layer_times(self) -> list[LayerTime] | None:
        if self._times is None:
            return None
        out = []
        for name, ts in self._times.items():
            kernel = name.removeprefix("fused_").split("_")[0].rstrip("0123456789")
            out.append(LayerTime(name=name, op_type=kernel, ms=1e3 * sum(ts) / max(1, self._runs)))
        return sorted(out, key=lambda t: -t.ms)

    def effective_precision(self) -> list[LayerPrecision]:
        return list(self._precision)

    def close(self) -> None:
        self._vm = None


def load(artifact: Path, manifest: Manifest, options: RuntimeOptions) -> Session:
    """Loader for target "tvm": compile (or reload from the cache) the bundle's artifact for this CPU."""
    return load_model(artifact, options, layer_pairs=manifest.layer_pairs())


def load_model(
    artifact: Path, options: RuntimeOptions, *, layer_pairs: Mapping[str, tuple[int, int]] | None = None
) -> Session:
    """Compile (or reload from the cache) an ONNX file for this CPU and return a ready session; kernels are
    named after ``layer_pairs`` (a bundle's layers, in model order) when given, else after the ONNX nodes."""
    tvm = tb.import_tvm()
    import onnx
    from tvm import relax

    artifact = Path(artifact)
    if not artifact.is_file():
        raise InputError(f"TVM artifact {artifact} does not exist")
    settings = TvmOptions.from_extra(options.extra)
    tuning_dir = settings.tuning_dir(artifact)
    tb.set_runtime_threads(options.threads)
    model = onnx.load(str(artifact))
    spec = tb.read_onnx_spec(model)
    if any(d is None for d in spec.sample_shape):
        raise InputError(
            f"input {spec.input_name!r} has dynamic non-batch dims {spec.sample_shape}; the TVM target needs "
            "a fixed image size (export with a static H and W)"
        )
    sample = tuple(int(d) for d in spec.sample_shape if d is not None)
    batch = settings.tvm_batch
    target = tb.make_target(options.threads, settings.tvm_mcpu)
    if settings.tvm_trials > 0 and not _has_records(tuning_dir):
        tune(
            artifact,
            tuning_dir,
            trials=settings.tvm_trials,
            input_shape=(batch, *sample),
            threads=options.threads,
            mcpu=settings.tvm_mcpu,
        )
    records = tuning_dir if _has_records(tuning_dir) else None
    if records is not None:
        tb.check_serialization()

    cache_dir = Path(options.cache_dir) if options.cache_dir else artifact.parent / ".tvm_cache"
    key = tb.cache_key(
        {
            "format": _CACHE_FORMAT,
            "tvm": tvm.__version__,
            "cpu": tb.host_cpu_id(),
            "model": sha256_file(artifact),
            "target": str(target),
            "shape": [batch, *sample],
            "records": tb.records_digest(records),
            "default_schedules": settings.tvm_default_schedules,
        }
    )
    lib_path, meta_path = cache_dir / f"{key}.so", cache_dir / f"{key}.json"
    if lib_path.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        lib = tvm.runtime.load_module(str(lib_path))
        meta["from_cache"] = True
    else:
        mod = tb.relax_module(model, spec.input_name, (batch, *sample))
        fused, tuned, kernels = tb.fused_module(mod, target), 0, 0
        if records is not None:
            fused, tuned, kernels = tb.apply_records(fused, target, _open_records(records))
        lib = tb.compile_library(fused, target, default_schedules=settings.tvm_default_schedules)
        heavy = tb.conv_dense_kernels(relax.transform.FoldConstant()(mod))
        precision = _layer_precisions(heavy, spec, dict(layer_pairs or {}))
        meta = {
            "tuned": tuned > 0,
            "tuned_kernels": f"{tuned}/{kernels}",
            "precision": [asdict(p) for p in precision],
            "target": str(target),
        }
        cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:  # write then rename: no torn cache entries
            tmp_lib = Path(tmp) / "lib.so"
            lib.export_library(str(tmp_lib))
            (Path(tmp) / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
            os.replace(tmp_lib, lib_path)
            os.replace(Path(tmp) / "meta.json", meta_path)
        meta["from_cache"] = False
    meta["library_path"] = lib_path
    untuned = _untuned_warning(artifact, meta, records)
    if untuned is not None:
        warnings.warn(untuned, stacklevel=2)
    session = TvmSession(relax.VirtualMachine(lib, tvm.cpu()), spec, batch, sample, meta)
    session.speed_warnings = (untuned,) if untuned is not None else ()
    if options.profiling:
        session.enable_profiling()
    return session


def _layer_precisions(
    kernels: list[tuple[str, str]], spec: tb.OnnxSpec, pairs: Mapping[str, tuple[int, int]]
) -> list[LayerPrecision]:
    """Name each conv/matmul kernel after its bpnas layer (config order, else ONNX node names)."""
    if len(pairs) == len(kernels):
        named = [(name, expected_width(pair)) for name, pair in pairs.items()]
    elif len(spec.layers) == len(kernels):
        named = [(name, precision_width(stored)) for name, stored in spec.layers]
    else:  # e.g. a MatMul that is no layer: keep the engine's numbering and claim nothing about upcasts
        named = [(f"{kind}_{i}", 32) for i, (kind, _) in enumerate(kernels)]
    return [
        LayerPrecision(name, kind, runs, upcast=precision_width(runs) > width)
        for (name, width), (kind, runs) in zip(named, kernels)
    ]


def _open_records(records: Path | None) -> Any:
    if records is None:
        return None
    from runtimes._tvm_tune import open_database

    return open_database(records)


def _median_latency_ms(lib: Any, shape: tuple[int, ...], runs: int) -> float:
    import tvm
    from tvm import relax

    vm = relax.VirtualMachine(lib, tvm.cpu())
    x = tvm.runtime.tensor(np.random.default_rng(0).random(shape, dtype=np.float32))
    vm["main"](x)  # warm-up
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        vm["main"](x)
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def tune(
    artifact: Path,
    out_dir: Path,
    *,
    trials: int,
    input_shape: tuple[int, ...] | None = None,
    trials_per_task: int | None = None,
    threads: int | None = None,
    mcpu: str | None = None,
    seed: int = 0,
    latency_runs: int = 5,
) -> TuneReport:
    """Tune ``artifact`` with MetaSchedule for ``trials`` measured candidates; write records to ``out_dir``.

    Records accumulate: tuning again into the same directory continues from what is there. ``load`` reuses
    them when ``extra["tvm_tuning_dir"]`` points at ``out_dir``. Runs in this process.
    """
    from runtimes._tvm_tune import open_database, tune_module

    tb.import_tvm()
    tb.check_serialization()
    tb.set_runtime_threads(threads)
    import onnx

    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise InputError(f"trials must be a positive int, got {trials!r}")
    model = onnx.load(str(artifact))
    spec = tb.read_onnx_spec(model)
    if input_shape is None:
        if any(d is None for d in spec.sample_shape):
            raise InputError(f"pass input_shape: the model's input has dynamic dims {spec.sample_shape}")
        input_shape = (1, *(int(d) for d in spec.sample_shape if d is not None))
    shape = tuple(int(d) for d in input_shape)
    target = tb.make_target(threads, mcpu)
    mod = tb.relax_module(model, spec.input_name, shape)

    before = _median_latency_ms(
        tb.compile_library(tb.fused_module(mod, target), target, default_schedules=False), shape, latency_runs
    )
    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bpnas_tvm_logs_") as logs:
        stats = tune_module(
            tb.fused_module(mod, target),
            target,
            out_dir,
            Path(logs),
            trials=trials,
            trials_per_task=trials_per_task,
            seed=seed,
        )
    wall = time.perf_counter() - t0
    tuned_fused, _, _ = tb.apply_records(tb.fused_module(mod, target), target, open_database(out_dir))
    tuned_lib = tb.compile_library(tuned_fused, target, default_schedules=False)
    after = _median_latency_ms(tuned_lib, shape, latency_runs)
    report = TuneReport(
        records_dir=str(out_dir),
        target=str(target),
        input_shape=shape,
        tasks=stats["tasks"],
        trials_requested=trials,
        trials_per_task=stats["trials_per_task"],
        records_added=stats["records_added"],
        records_total=stats["records_total"],
        wall_s=wall,
        latency_before_ms=before,
        latency_after_ms=after,
    )
    meta = {"model_sha256": sha256_file(Path(artifact)), "tvm": _tvm_version(), **report.to_dict()}
    (out_dir / _META_FILE).write_text(json.dumps(meta, indent=1), encoding="utf-8")
    return report


def _tvm_version() -> str:
    import tvm

    return str(tvm.__version__)
