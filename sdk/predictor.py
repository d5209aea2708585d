"""Load a bundle on a target and run it: the deploy path. Torch-free (DESIGN §1).

    >>> import sdk
    >>> p = sdk.load("resnet20.bpnas", target="openvino", threads=2)
    >>> logits = p.predict(frame)            # uint8 HWC BGR frame, list of frames, image path(s),
    ...                                      # float32 NCHW array, or a torch tensor (duck-typed)
    >>> p.profile(runs=200).table()          # latency, BOPs searched vs deployed, effective precision

Thread safety: ``predict`` may be called from several threads. Adapters whose sessions declare
``thread_safe = True`` (ONNX Runtime: concurrent ``run`` is supported; OpenVINO: one InferRequest per thread)
run concurrently; any other adapter's calls are serialized by a lock held around the engine call only.
"""

from __future__ import annotations

import dataclasses
import math
import os
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import targets
from runtimes import get_runtime
from runtimes.base import LayerPrecision, LayerTime, RuntimeOptions, Session, speed_warnings
from runtimes.bundle import Manifest, TensorSpec, precision_width, read_manifest
from sdk.config import FLOAT_BITS, MixedPrecisionConfig
from sdk.cost import BopsReport
from sdk.errors import BundleError, InputError, TargetUnavailable
from sdk.postprocess import postprocess_step
from sdk.preprocess import Preprocess
from targets.base import Target

__all__ = ["LatencyReport", "Predictor", "describe", "load", "profile"]

_HINTS = ("latency", "throughput")


# -- small value types ---------------------------------------------------------------------------------------
def describe(spec: TensorSpec) -> str:
    """``float32 (N, 3, 32, 32) NCHW``: a tensor spec as error messages show it (N = dynamic batch)."""
    dims = ["N" if spec.shape[0] is None else str(spec.shape[0])]
    dims += ["?" if d is None else str(d) for d in spec.shape[1:]]
    return f"{spec.dtype} ({', '.join(dims)}) {spec.layout or ''}".rstrip()


@dataclass(frozen=True)
class LatencyReport:
    """What :meth:`Predictor.profile` measured, and what the bundle and target say it should cost.

    Times are wall-clock per ``predict`` call on a float32 batch of ``batch``. ``bops``/``avg_bits`` are the
    searched configuration's (Eq. 3-4); ``deployed_bops``/``deployed_bits`` the same at the precision the
    target really computes (``Target.deployed_pair`` per layer). ``precision`` is the engine's effective
    precision per layer, ``upcast`` marking layers that run wider than the deployed precision.
    """

    target: str
    batch: int
    runs: int
    threads: int | None
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    fps: float
    bops: int
    avg_bits: float
    deployed_bops: int
    deployed_bits: float
    searched_pairs: Mapping[str, tuple[int, int]]
    deployed_pairs: Mapping[str, tuple[int, int]]
    precision: tuple[LayerPrecision, ...]
    per_layer: tuple[LayerTime, ...] | None = None
    estimated_cycles: int | None = None
    estimated_ms: float | None = None
    notes: tuple[str, ...] = ()  # what the engine warned about its speed (e.g. TVM's untuned kernels)

    @property
    def upcast_layers(self) -> list[str]:
        return [p.layer for p in self.precision if p.upcast]

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["searched_pairs"] = {k: list(v) for k, v in self.searched_pairs.items()}
        d["deployed_pairs"] = {k: list(v) for k, v in self.deployed_pairs.items()}
        return d

    def table(self) -> str:
        lines = [
            f"target {self.target}  batch {self.batch}  runs {self.runs}  "
            f"threads {self.threads or 'default'}",
            f"latency ms  p50 {self.p50_ms:.3f}  p90 {self.p90_ms:.3f}  p99 {self.p99_ms:.3f}  "
            f"mean {self.mean_ms:.3f}  fps {self.fps:.1f}",
            f"BOPs searched {self.bops:,} (avg {self.avg_bits:.3f} bits)  deployed {self.deployed_bops:,} "
            f"(avg {self.deployed_bits:.3f} bits)",
        ]
        lines += [f"note: {n}" for n in self.notes]
        if self.estimated_cycles is not None:
            lines.append(
                f"cost model: {self.estimated_cycles:,} cycles = {self.estimated_ms:.3f} ms per sample"
            )
        times: dict[str, float] = {}
        for t in self.per_layer or ():
            times[t.name] = times.get(t.name, 0.0) + t.ms
        head = f"{'layer':<32} {'searched':>8} {'deployed':>8} {'kernel':<24} {'runs as':<8} {'ms':>8}"
        lines += [head, "-" * len(head)]
        prec = {p.layer: p for p in self.precision}
        for name, (w, a) in self.searched_pairs.items():
            p = prec.get(name)
            dw, da = self.deployed_pairs[name]
            ms = f"{times[name]:.4f}" if name in times else "-"
            flag = " UPCAST" if p is not None and p.upcast else ""
            kernel, runs_as = (p.kernel, p.precision) if p else ("-", "-")
            pairs = f"{f'{w}/{a}':>8} {f'{dw}/{da}':>8}"
            lines.append(f"{name[:32]:<32} {pairs} {kernel[:24]:<24} {runs_as:<8} {ms:>8}{flag}")
        return "\n".join(lines)


# -- the predictor -------------------------------------------------------------------------------------------
class Predictor:
    """A bundle loaded on one target. Create with :func:`load`."""

    def __init__(
        self,
        manifest: Manifest,
        target: Target,
        session: Session,
        loader: Callable[..., Session],
        options: RuntimeOptions,
    ) -> None:
        assert manifest.path is not None, "read the manifest with runtimes.bundle.read_manifest(path)"
        self.path: Path = manifest.path
        self.target = target
        self.manifest = manifest
        self._postprocess = postprocess_step(manifest.task)  # unknown task: BundleError
        if manifest.output.name not in session.output_names:
            raise BundleError(
                f"bundle {self.path}: the engine's outputs {list(session.output_names)} do not include the "
                f"manifest's {manifest.output.name!r}; re-export it."
            )
        self._session: Session | None = session
        self._loader = loader
        self._options = options
        self._artifact = manifest.artifact_path(target.name)
        self.input_spec: TensorSpec = manifest.input
        if self.input_spec.dtype != "float32" or len(self.input_spec.shape) != 4:
            raise BundleError(
                f"bundle {self.path}: input {describe(self.input_spec)} is not a float32 4-D tensor; "
                "re-export it."
            )
        try:
            pre = manifest.preprocess
            self.preprocess: Preprocess | None = Preprocess.from_dict(pre) if pre else None
        except InputError as e:
            raise BundleError(
                f"bundle {self.path}: preprocess is invalid ({e}); re-export the bundle."
            ) from e
        self.config: MixedPrecisionConfig = manifest.config
        self.bops: BopsReport = manifest.bops
        self.labels: tuple[str, ...] | None = manifest.labels
        classes = manifest.output.shape[-1]
        if self.labels is not None and classes is not None and len(self.labels) != classes:
            raise BundleError(
                f"bundle {self.path}: {len(self.labels)} labels for {classes} outputs; re-export it."
            )
        self._lock: threading.Lock | None = (
            None if getattr(session, "thread_safe", False) else threading.Lock()
        )
        self._scratch = threading.local()  # per-thread buffers for input checks
        self._frames_finite = self.preprocess is not None and self.preprocess.frames_are_finite

    # -- what the bundle says ------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.manifest.name

    def __repr__(self) -> str:
        return (
            f"Predictor({str(self.path)!r}, target={self.target.name!r}, input={describe(self.input_spec)})"
        )

    # -- input conversion ----------------------------------------------------------------------------
    def _expected(self) -> str:
        return describe(self.input_spec)

    def _frames_to_batch(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        if self.preprocess is None:
            raise InputError(
                f"got image input, but bundle {self.path.name} has no preprocessing recorded. Pass a "
                f"float32 array shaped {self._expected()}, or export with "
                "sdk.export(..., preprocess=sdk.Preprocess(...))."
            )
        return self.preprocess(frames)

    def _read_image(self, path: str | os.PathLike[str]) -> np.ndarray:
        import cv2

        p = os.fspath(path)
        if not os.path.isfile(p):
            raise InputError(f"could not read image {p!r}: no such file.")
        img = cv2.imread(p, cv2.IMREAD_COLOR)
        if img is None:
            raise InputError(
                f"could not read image {p!r}: OpenCV cannot decode it (not an image, or corrupt)."
            )
        return img

    def _one(self, x: Any, where: str) -> tuple[np.ndarray, bool]:
        """One input item -> (float32 batch (n, ...), whether it was preprocessed from uint8 frames)."""
        if isinstance(x, (str, os.PathLike)):
            return self._frames_to_batch([self._read_image(x)]), True
        if not isinstance(x, np.ndarray) and all(hasattr(x, a) for a in ("detach", "cpu", "numpy")):
            x = x.detach().cpu().numpy()  # a torch tensor, without importing torch
        if not isinstance(x, np.ndarray):
            raise InputError(
                f"{where}: expected a float32 array shaped {self._expected()}, a uint8 (H, W, 3) BGR image, "
                f"an image path or a list of those; got {type(x).__name__}."
            )
        if x.dtype == np.uint8:
            if x.ndim in (2, 3):
                return self._frames_to_batch([x]), True
            if x.ndim == 4:
                return self._frames_to_batch(list(x)), True
            raise InputError(f"{where}: uint8 images must be (H, W, 3) or (N, H, W, 3), got shape {x.shape}.")
        if x.dtype != np.float32:
            raise InputError(
                f"{where}: expected float32 input shaped {self._expected()} (or uint8 images), got dtype "
                f"{x.dtype}. Convert with x.astype(np.float32)."
            )
        if x.ndim == len(self.input_spec.shape) - 1:
            x = x[None]
        return x, False

    def _to_batch(self, x: Any) -> np.ndarray:
        if isinstance(x, (list, tuple)):
            if not x:
                raise InputError(f"got an empty list; pass at least one input ({self._expected()}).")
            parts, from_frames = zip(*(self._one(item, f"item {i}") for i, item in enumerate(x)))
            shapes = {p.shape[1:] for p in parts}
            if len(shapes) > 1:
                raise InputError(
                    f"list items have different shapes {sorted(shapes)}; expected {self._expected()}."
                )
            batch, frames_only = np.concatenate(parts), all(from_frames)
        else:
            batch, frames_only = self._one(x, "input")
        self._check(batch, scan=not (frames_only and self._frames_finite))
        return np.ascontiguousarray(batch, dtype=np.float32)

    def _check(self, x: np.ndarray, *, scan: bool = True) -> None:
        """Shape, then (``scan``) NaN/inf; preprocessed uint8 frames skip the scan when
        ``Preprocess.frames_are_finite`` proves them finite (a camera loop's common case)."""
        spec = self.input_spec
        if x.ndim != len(spec.shape) or any(
            d is not None and d != s for d, s in zip(spec.shape[1:], x.shape[1:])
        ):
            raise InputError(f"expected input shaped {self._expected()}, got shape {tuple(x.shape)}.")
        if x.shape[0] == 0:
            raise InputError(f"got an empty batch; expected {self._expected()} with N >= 1.")
        if scan and not self._all_finite(x):
            bad = int(x.size - np.count_nonzero(np.isfinite(x)))
            raise InputError(
                f"input has {bad} NaN/inf value(s) of {x.size}; check the camera frame or preprocessing."
            )

    def _all_finite(self, x: np.ndarray) -> bool:
        """``np.isfinite(x).all()`` into a reused per-thread mask: allocating a fresh mask every call made the
        check + OpenVINO inference ~1% slower (ResNet-18 224, 3 paired runs: 1.009-1.011x)."""
        mask = getattr(self._scratch, "finite", None)
        if mask is None or mask.shape != x.shape:
            mask = self._scratch.finite = np.empty(x.shape, dtype=bool)
        np.isfinite(x, out=mask)
        return bool(mask.all())

    # -- running -------------------------------------------------------------------------------------
    def _session_or_raise(self) -> Session:
        if self._session is None:
            raise InputError(f"this Predictor is closed; call sdk.load({str(self.path)!r}) again.")
        return self._session

    def _run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        session = self._session_or_raise()
        if self._lock is None:
            return session.run(x)
        with self._lock:
            return session.run(x)

    def _outputs(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Every named output for ``batch``, float32, batch first; a static-batch artifact runs in chunks of
        its batch, the last one padded."""
        fixed = self.input_spec.shape[0]
        if fixed is None or fixed == len(batch):
            outs = self._run(batch)
        else:
            parts = []
            for i in range(0, len(batch), fixed):
                chunk = batch[i : i + fixed]
                n = len(chunk)
                if n < fixed:
                    chunk = np.concatenate([chunk, np.zeros((fixed - n, *chunk.shape[1:]), np.float32)])
                parts.append({k: v[:n] for k, v in self._run(np.ascontiguousarray(chunk)).items()})
            outs = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        outs = {k: np.asarray(v, dtype=np.float32) for k, v in outs.items()}
        for v in outs.values():
            if v.ndim == 0 or v.shape[0] != len(batch):
                raise BundleError(
                    f"the engine returned shape {v.shape} for a batch of {len(batch)}; re-export."
                )
        return outs

    def predict(self, x: Any) -> Any:
        """The bundle's task's result for any supported input (one image gives N = 1); a classifier
        (``task`` "classify") returns logits, float32 (N, classes)."""
        return self._postprocess(self._outputs(self._to_batch(x)), self.manifest)

    __call__ = predict

    # -- measuring -----------------------------------------------------------------------------------
    def effective_precision(self) -> list[LayerPrecision]:
        """Per layer, what the engine runs; ``upcast`` against this target's deployed precision."""
        out = []
        for p in self._session_or_raise().effective_precision():
            if p.layer in self.config and p.precision != "unknown":
                deployed = self.target.deployed_pair(*self.config[p.layer])
                width = FLOAT_BITS if FLOAT_BITS in deployed else max(deployed)
                p = dataclasses.replace(p, upcast=precision_width(p.precision) > width)
            out.append(p)
        return out

    def _example(self, batch: int) -> np.ndarray:
        dims = self.input_spec.shape[1:]
        if any(d is None for d in dims):
            if self.preprocess is None:
                raise InputError(f"input {self._expected()} has dynamic dimensions; profile with input=...")
            dims = self.preprocess.input_shape
        sample = tuple(int(d) for d in dims if d is not None)
        return np.random.default_rng(0).standard_normal((batch, *sample)).astype(np.float32)

    def _layer_times(self, x: np.ndarray, runs: int) -> tuple[LayerTime, ...] | None:
        """Per-layer times from a second, profiling session (so the timed session runs unprofiled)."""
        with warnings.catch_warnings():  # repeats of this bundle's load-time warnings
            warnings.simplefilter("ignore")
            session = self._loader(
                self._artifact, self.manifest, dataclasses.replace(self._options, profiling=True)
            )
        try:
            for _ in range(runs + 1):  # adapters drop the first (allocating) run
                session.run(x)
            times = session.layer_times()
        finally:
            session.close()
        return tuple(times) if times is not None else None

    def profile(
        self,
        runs: int = 200,
        warmup: int = 20,
        batch: int = 1,
        *,
        per_layer: bool = True,
        layer_runs: int = 20,
        input: np.ndarray | None = None,
    ) -> LatencyReport:
        """Time ``runs`` predict calls on a float32 batch after ``warmup``; report BOPs and precision too.

        Args:
            runs, warmup: timed and untimed calls.
            batch: batch size of the synthetic input (ignored when ``input`` is given).
            per_layer: also load a profiling session for per-layer engine times.
            layer_runs: calls made on the profiling session.
            input: a float32 batch to time instead of random data.
        """
        for name, v, lo in (
            ("runs", runs, 1),
            ("warmup", warmup, 0),
            ("batch", batch, 1),
            ("layer_runs", layer_runs, 1),
        ):
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise InputError(f"profile: {name} must be an int >= {lo}, got {v!r}.")
        x = self._to_batch(input) if input is not None else self._example(batch)
        for _ in range(warmup):
            self.predict(x)
        times = np.empty(runs)
        for i in range(runs):
            t0 = time.perf_counter()
            self.predict(x)
            times[i] = time.perf_counter() - t0
        ms = times * 1e3
        slow = speed_warnings(self._session_or_raise())
        for w in slow:  # the figures below are only as good as the engine's kernels: say so beside them
            warnings.warn(w, stacklevel=2)
        searched = {name: tuple(pair) for name, pair in self.config.items()}
        deployed_report = self.target.deployed_report(self.bops)
        mean = float(ms.mean())
        return LatencyReport(
            target=self.target.name,
            batch=len(x),
            runs=runs,
            threads=self._options.threads,
            p50_ms=float(np.percentile(ms, 50)),
            p90_ms=float(np.percentile(ms, 90)),
            p99_ms=float(np.percentile(ms, 99)),
            mean_ms=mean,
            fps=len(x) * 1e3 / mean if mean > 0 else math.inf,
            bops=self.bops.bops,
            avg_bits=self.bops.avg_bits,
            deployed_bops=deployed_report.bops,
            deployed_bits=deployed_report.avg_bits,
            searched_pairs=searched,  # type: ignore[arg-type]
            deployed_pairs={r.name: (r.w_bits, r.a_bits) for r in deployed_report.layers},
            precision=tuple(self.effective_precision()),
            per_layer=self._layer_times(x, layer_runs) if per_layer else None,
            estimated_cycles=self.target.cost.cycles(deployed_report),
            estimated_ms=self.target.cost.latency_ms(deployed_report),
            notes=tuple(str(w) for w in slow),
        )

    # -- lifetime ------------------------------------------------------------------------------------
    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def __enter__(self) -> Predictor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _resolve_target(name: str, manifest: Manifest) -> Target:
    carried = list(manifest.targets)
    bundle = manifest.path.name if manifest.path else manifest.name
    target = targets.resolve(name, among=carried)  # unknown names raise with close matches
    target.require()  # engine missing: names the pip extra
    bad = target.unsupported(dict(manifest.config))
    if bad:
        raise BundleError(
            f"target {target.name!r} runs integer layers only, but bundle {bundle} keeps {bad[:5]} in float. "
            "Load it on a float-capable target (onnxruntime, openvino), or search with "
            f"sdk.search(..., target={target.name!r}) so every layer gets 2-8 bits."
        )
    if target.name not in manifest.targets:
        listed = ", ".join(repr(t) for t in carried) or "none"
        wanted = ", ".join([*map(repr, carried), repr(target.name)])
        raise BundleError(
            f"bundle {bundle} has no artifact for target {target.name!r} (it has: {listed}). "
            f"Export for it: sdk.export(qmodel, {str(manifest.path)!r}, ..., targets=[{wanted}])."
        )
    return target


def load(
    path: str | os.PathLike[str],
    target: str = "onnxruntime",
    *,
    threads: int | None = None,
    performance_hint: str = "latency",
    cache_dir: str | os.PathLike[str] | None = None,
    options: Mapping[str, Any] | None = None,
) -> Predictor:
    """Read and verify a bundle, pick the target's runtime adapter and compile the model.

    Args:
        path: the ``NAME.bpnas`` directory.
        target: a name from ``targets.names()`` or an alias ("x86", "fpga").
        threads: engine threads; None = the engine's default.
        performance_hint: "latency" (batch 1, one stream) or "throughput" (many streams, big batches).
        cache_dir: where the engine may cache compiled artifacts (default: beside the bundle, per adapter).
        options: engine-specific options, validated by the adapter (see ``runtimes/<engine>.py``).

    Raises:
        BundleError: missing, corrupt, tampered or unsafe bundle; target not exported into it.
        TargetUnavailable: unknown target (with close matches) or engine not installed (with the pip extra).
        InputError: bad argument values.
    """
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise InputError(f"threads must be a positive int or None, got {threads!r}.")
    if performance_hint not in _HINTS:
        raise InputError(f"performance_hint must be one of {_HINTS}, got {performance_hint!r}.")
    if not isinstance(target, str):
        raise TargetUnavailable(f"target must be a name such as 'onnxruntime', got {type(target).__name__}.")
    manifest = read_manifest(path)  # verifies schema, versions, artifact names, sizes and sha256
    tgt = _resolve_target(target, manifest)
    loader = get_runtime(tgt.runtime)
    run_options = RuntimeOptions(
        target=tgt.name,
        threads=threads,
        cache_dir=Path(cache_dir) if cache_dir is not None else None,
        performance_hint=performance_hint,
        extra=dict(options or {}),
    )
    session = loader(manifest.artifact_path(tgt.name), manifest, run_options)
    try:
        return Predictor(manifest, tgt, session, loader, run_options)
    except BaseException:
        session.close()
        raise


def profile(
    path: str | os.PathLike[str],
    target: str = "onnxruntime",
    *,
    runs: int = 200,
    warmup: int = 20,
    batch: int = 1,
    per_layer: bool = True,
    threads: int | None = None,
    performance_hint: str = "latency",
    options: Mapping[str, Any] | None = None,
) -> LatencyReport:
    """Load ``path`` on ``target``, profile it, close it: ``sdk.profile("m.bpnas", "openvino").table()``."""
    with load(path, target, threads=threads, performance_hint=performance_hint, options=options) as p:
        return p.profile(runs=runs, warmup=warmup, batch=batch, per_layer=per_layer)
