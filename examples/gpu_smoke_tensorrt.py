"""GPU smoke test of the TensorRT adapter on real bpnas exports: one table, under 5 minutes on one GPU.

    PYTHONPATH=. python examples/gpu_smoke_tensorrt.py                      # 4 zoo models, mixed config
    PYTHONPATH=. python examples/gpu_smoke_tensorrt.py --models digits_cnn,resnet20 --config uniform:4,4
    PYTHONPATH=. python examples/gpu_smoke_tensorrt.py --stand-in           # CPU stand-in: plumbing only

Per zoo model it exports one bundle (targets tensorrt + onnxruntime) at a seeded mixed configuration, then per
network typing (strong; weak too where the installed TensorRT still has it): parse + build, top-1 agreement
and max |logit diff| against the onnxruntime target of the same bundle and top-1 agreement against the
fake-quant PyTorch model, every conv/GEMM's precision from the engine inspector (int8 expected), engine-cache
reuse (a second load must deserialize, not rebuild), the slowest layer of a per-layer profile, and p50
latency at batch 1 and 8. The first lines give TensorRT, CUDA runtime and driver versions, GPU and compute
capability. Exit status 0 when every row passes. ``--stand-in`` runs the same code against
tests/runtimes/_fake_tensorrt.py (onnxruntime behind TensorRT's API): its figures say nothing about TensorRT.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PAIRS = ((2, 4), (4, 4), (4, 8), (6, 6), (8, 4), (8, 8))  # mixed configs are drawn from these (w, a)
MODELS = "digits_cnn,resnet20,mobilenet_v2,resnet18"  # resnet50 too with --models; keeps the run < 5 min
MIN_TOP1 = 0.99  # agreement a row needs against the onnxruntime target and the fake-quant model


@dataclass
class Row:
    model: str
    typing: str = "-"
    build_s: float = float("nan")
    top1_ort: float = float("nan")
    diff_ort: float = float("nan")
    top1_torch: float = float("nan")
    int8: str = "-"
    cache: str = "-"
    slowest: str = "-"
    p50_b1: float = float("nan")
    p50_b8: float = float("nan")
    note: str = ""

    @property
    def ok(self) -> bool:
        int8_all = self.int8 != "-" and self.int8.split("/")[0] == self.int8.split("/")[1]
        agree = self.top1_ort >= MIN_TOP1 and self.top1_torch >= MIN_TOP1
        return not self.note and agree and int8_all and self.cache == "reused"


class _BuildCounter(logging.Handler):
    """Counts the adapter's "building a TensorRT engine" log lines: a cached load must add none."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.builds = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.builds += "building a TensorRT engine" in record.getMessage()


def _config(model: Any, spec: str, seed: int) -> Any:
    import sdk

    probe = sdk.MixedPrecisionConfig.uniform(model, 8, 8)
    if spec.startswith("uniform:"):
        w, a = (int(b) for b in spec.split(":")[1].split(","))
        return sdk.MixedPrecisionConfig.uniform(model, w, a)
    rng = np.random.default_rng(seed)
    return sdk.MixedPrecisionConfig({name: PAIRS[rng.integers(len(PAIRS))] for name in probe})


def _export(name: str, spec: str, out: Path, n: int) -> tuple[Path, Any, np.ndarray, np.ndarray]:
    """(bundle, typed manifest, inputs, fake-quant logits) for zoo model ``name``."""
    import torch

    import calibration
    import sdk
    from runtimes.bundle import read_manifest

    torch.manual_seed(0)
    model = sdk.models.create(name, num_classes=10)
    shape = sdk.models.default_input_shape(name)
    x = torch.randn(n, *shape[1:])
    qmodel = sdk.quantize(model, _config(model, spec, seed=len(name)))
    qmodel = calibration.calibrate(qmodel, [(x, None)], method="minmax").eval()  # ranges from the data
    with torch.no_grad():
        ref = qmodel(x).numpy()
    bundle = out / f"{name}.bpnas"
    sdk.export(qmodel, bundle, example_input=x[:1], targets=["tensorrt", "onnxruntime"], inspect=False)
    return bundle, read_manifest(bundle), x.numpy(), ref


def _p50(fn: Any, runs: int) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def _check(row: Row, bundle: Path, manifest: Any, x: np.ndarray, ref_torch: np.ndarray, runs: int) -> None:
    import onnxruntime as ort

    from runtimes import tensorrt as adapter
    from runtimes.base import RuntimeOptions

    artifact, out = manifest.artifact_path("tensorrt"), manifest.output.name
    ort_sess = ort.InferenceSession(
        str(manifest.artifact_path("onnxruntime")), providers=["CPUExecutionProvider"]
    )
    ref_ort = ort_sess.run(None, {manifest.input.name: x})[0]
    counter = _BuildCounter()
    logging.getLogger("runtimes.tensorrt").addHandler(counter)
    cache = bundle / "cache" / f"tensorrt-{row.typing}"
    opts = RuntimeOptions(cache_dir=cache, profiling=True, extra={"typing": row.typing, "max_batch": 8})
    try:
        t0 = time.perf_counter()
        session = adapter.load(artifact, manifest, opts)
        row.build_s = time.perf_counter() - t0
        got = session.run(x)[out]
        row.top1_ort = float((got.argmax(1) == ref_ort.argmax(1)).mean())
        row.diff_ort = float(np.abs(got - ref_ort).max())
        row.top1_torch = float((got.argmax(1) == ref_torch.argmax(1)).mean())
        precisions = [p for p in session.effective_precision() if p.precision != "unknown"]
        row.int8 = f"{sum(p.precision == 'i8' for p in precisions)}/{len(session.effective_precision())}"
        times = session.layer_times() or []
        if times:
            top = max(times, key=lambda t: t.ms)
            row.slowest = f"{top.name[:28]} {top.ms:.3f}ms"
        session.close()
        builds = counter.builds
        session = adapter.load(artifact, manifest, RuntimeOptions(cache_dir=cache, extra=dict(opts.extra)))
        row.cache = "reused" if counter.builds == builds else "REBUILT"
        for batch, attr in ((1, "p50_b1"), (8, "p50_b8")):
            xb = np.ascontiguousarray(np.resize(x, (batch, *x.shape[1:])))
            setattr(row, attr, _p50(lambda xb=xb: session.run(xb), runs))
        session.close()
    finally:
        logging.getLogger("runtimes.tensorrt").removeHandler(counter)


def _versions() -> list[str]:
    import tensorrt as trt

    from runtimes._tensorrt_memory import check, import_cudart

    cudart = import_cudart("install cuda-python")
    runtime = check(cudart.cudaRuntimeGetVersion(), "cudaRuntimeGetVersion")
    driver = check(cudart.cudaDriverGetVersion(), "cudaDriverGetVersion")
    prop = check(cudart.cudaGetDeviceProperties(check(cudart.cudaGetDevice(), "cudaGetDevice")), "properties")
    gpu = prop.name.decode(errors="replace") if isinstance(prop.name, bytes) else str(prop.name)

    def v(n: int) -> str:
        return f"{n // 1000}.{n % 1000 // 10}"

    return [
        f"TensorRT {trt.__version__}   CUDA runtime {v(int(runtime))}   driver (CUDA) {v(int(driver))}",
        f"GPU {gpu.strip(chr(0))}   compute capability {prop.major}.{prop.minor}",
    ]


def _typings() -> list[str]:
    import tensorrt as trt

    from runtimes._tensorrt_build import WEAK_TYPING_FLAGS

    weak = all(hasattr(trt.BuilderFlag, f) for f in WEAK_TYPING_FLAGS)
    return ["strong", "weak"] if weak else ["strong"]


def _table(rows: list[Row]) -> str:
    head = (f"{'model':<13}{'typing':<7}{'build s':>8}{'top1 ort':>9}{'max|d|':>9}{'top1 pt':>8}{'int8':>7}"
            f"{'cache':>8}  {'slowest layer':<38}{'p50 b1':>8}{'p50 b8':>8}  result")  # fmt: skip
    lines = [head, "-" * len(head)]
    for r in rows:
        verdict = "PASS" if r.ok else f"FAIL {r.note}".strip()
        lines.append(
            f"{r.model:<13}{r.typing:<7}{r.build_s:>8.1f}{r.top1_ort:>9.3f}{r.diff_ort:>9.4f}{r.top1_torch:>8.3f}"
            f"{r.int8:>7}{r.cache:>8}  {r.slowest:<38}{r.p50_b1:>8.3f}{r.p50_b8:>8.3f}  {verdict}"
        )
    return "\n".join(lines)


@contextlib.contextmanager
def _engine(stand_in: bool, version: str) -> Iterator[None]:
    if not stand_in:
        yield
        return
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tests.runtimes._fake_tensorrt import installed

    with installed(version):
        yield


def main(argv: list[str] | None = None) -> int:
    import sdk

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=MODELS, help=f"comma-separated zoo models of {sdk.models.names()}")
    ap.add_argument("--config", default="mixed", help="'mixed' (seeded draw from PAIRS) or 'uniform:W,A'")
    ap.add_argument("--images", type=int, default=64, help="random inputs compared per model")
    ap.add_argument("--runs", type=int, default=50, help="timed runs per latency figure")
    ap.add_argument("--stand-in", action="store_true", help="use the CPU stand-in (tests the plumbing only)")
    ap.add_argument("--stand-in-version", default="10.16.1", help="TensorRT version the stand-in mimics")
    args = ap.parse_args(argv)
    rows: list[Row] = []
    with _engine(args.stand_in, args.stand_in_version), tempfile.TemporaryDirectory() as tmp:
        try:
            versions = _versions()
        except (ImportError, sdk.BpnasError) as e:
            print(f"TensorRT or cuda-python is not usable here ({e}); install 'bpnas[tensorrt]' on a GPU.")
            return 2
        print("\n".join(versions) + ("   (CPU STAND-IN: plumbing only)" if args.stand_in else ""))
        for name in args.models.split(","):
            try:
                bundle, manifest, x, ref = _export(name, args.config, Path(tmp), args.images)
            except Exception as e:  # an export refused is a failed row, not a crash
                rows.append(Row(name, note=f"export: {type(e).__name__}: {str(e)[:80]}"))
                continue
            for typing in _typings():
                row = Row(name, typing)
                try:
                    _check(row, bundle, manifest, x, ref, args.runs)
                except Exception as e:  # parse/build/run failures are rows too
                    row.note = f"{type(e).__name__}: {str(e)[:100]}"
                rows.append(row)
    print(_table(rows))
    return 0 if rows and all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
