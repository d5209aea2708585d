"""TVM benchmark: ResNet-18 latency, ONNX Runtime FP32 against TVM untuned, DLight defaults and tuned.

    .venv/bin/python examples/bench_tvm.py [--trials 200] [--runs 10] [--threads 2] [--size 224] [--qdq]
    .venv/bin/python examples/bench_tvm.py --onnx model.onnx --trials 0

ResNet-18 (random weights, batch 1) is exported to float ONNX (``--qdq``: also quantized (8, 8) to the QDQ
artifact bpnas ships). Rows, each measured by the median of ``--runs`` runs with the TVM and ORT runs
alternating in blocks so machine load hits both alike:

- ``onnxruntime``: CPUExecutionProvider, ``--threads`` intra-op threads (FP32 on the float model; on the
  QDQ model ORT fuses int8 kernels).
- ``tvm compile default``: ``tvm.compile(mod, target)`` with the stock pipeline (no operator fusion), the
  issue's baseline.
- ``tvm untuned``: the adapter without records (fused, constant-folded kernels, plain loop nests).
- ``tvm dlight``: the same with DLight's CPU default schedules (``tvm_default_schedules``).
- ``tvm tuned``: ``runtimes.tvm.tune`` with ``--trials`` MetaSchedule trials (its wall time is printed), then
  the adapter loading those records.

Prints a table with ms/image, the ORT time measured alongside each row and the ratio to it, the machine's
load average, and the max |TVM - ORT| difference; no expected numbers. Tuning can take many minutes:
trials / tasks per task, ~20-60 s a round.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from _timing import alternating_blocks


def export_models(args: argparse.Namespace, d: Path) -> dict[str, Path]:
    """ResNet-18 as float ONNX (and as the QDQ artifact with --qdq) in ``d``."""
    import torch

    import sdk

    torch.manual_seed(0)
    shape = (3, args.size, args.size)
    model = sdk.models.create("resnet18", num_classes=1000).eval()
    out = {"float": d / "float.onnx"}
    torch.onnx.export(
        model, (torch.zeros(1, *shape),), str(out["float"]), input_names=["input"], output_names=["logits"],
        opset_version=17, dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}}, dynamo=False,
    )  # fmt: skip
    if args.qdq:
        import targets
        from calibration import fold_bn
        from export.onnx_qdq import to_onnx
        from export.options import LoweringOptions

        names = sdk.quant.quantizable_layer_names(model)
        q = sdk.quantize(model, {n: (8, 8) for n in names}).eval()
        with torch.no_grad():
            q(torch.randn(8, *shape))
        out["qdq w8a8"] = d / "qdq.onnx"  # lowered as bundles lower it for the tvm target
        to_onnx(
            fold_bn(q).eval(),
            out["qdq w8a8"],
            torch.zeros(1, *shape),
            options=LoweringOptions(targets.get("tvm").lowering),
        )
    return out


def compile_default(path: Path, shape: tuple[int, ...], threads: int) -> Callable[[np.ndarray], np.ndarray]:
    """The issue's baseline: tvm.compile with the stock Relax pipeline, no fusion or tuning."""
    import onnx

    from runtimes import _tvm_build as tb

    tvm = tb.import_tvm()
    from tvm import relax

    tb.set_runtime_threads(threads)  # before the first kernel sizes TVM's thread pool
    model = onnx.load(str(path))
    spec = tb.read_onnx_spec(model)
    target = tb.make_target(threads, None)
    vm = relax.VirtualMachine(tvm.compile(tb.relax_module(model, spec.input_name, shape), target), tvm.cpu())
    return lambda x: vm["main"](tvm.runtime.tensor(x)).numpy()


def bench_one(
    label: str, path: Path, args: argparse.Namespace, work: Path
) -> list[tuple[str, float, float, str]]:
    """Rows of (engine, ms/image, ORT ms/image measured alongside it, notes)."""
    import onnxruntime as ort

    from runtimes import tvm as rt
    from runtimes.base import RuntimeOptions

    shape = (1, 3, args.size, args.size)
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    so.inter_op_num_threads = 1
    ref_sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    ref = ref_sess.run(None, {"input": x})[0]

    def ort_run() -> Any:
        return ref_sess.run(None, {"input": x})

    cache = work / f"cache_{label.replace(' ', '_')}"
    rows: list[tuple[str, float, float, str]] = []
    variants: dict[str, Callable[[], Any]] = {}
    notes: dict[str, str] = {}
    t0 = time.perf_counter()
    default_run = compile_default(path, shape, args.threads)
    notes["tvm compile default"] = f"build {time.perf_counter() - t0:.1f} s"
    variants["tvm compile default"] = lambda: default_run(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rt.TvmUntunedWarning)
        for name, extra in (("tvm untuned", {}), ("tvm dlight", {"tvm_default_schedules": True})):
            t0 = time.perf_counter()
            sess = rt.load_model(path, RuntimeOptions(threads=args.threads, cache_dir=cache, extra=extra))
            err = np.abs(sess.run(x)["logits"] - ref).max()
            notes[name] = f"load {time.perf_counter() - t0:.1f} s, max|d| {err:.2g}"
            variants[name] = (lambda s: lambda: s.run(x))(sess)
    if args.records is not None:  # measure records tuned earlier (e.g. by a run with --work)
        sess = rt.load_model(path, RuntimeOptions(threads=args.threads, cache_dir=cache,
                                                extra={"tvm_tuning_dir": str(args.records)}))  # fmt: skip
        assert isinstance(sess, rt.TvmSession)
        notes["tvm tuned"] = f"records from {args.records} ({sess.tuned_kernels} kernels tuned)"
        variants["tvm tuned"] = lambda: sess.run(x)
    elif args.trials > 0:
        tuning = work / f"tuning_{label.replace(' ', '_')}"
        rep = rt.tune(path, tuning, trials=args.trials, input_shape=shape, threads=args.threads)
        sess = rt.load_model(path, RuntimeOptions(threads=args.threads, cache_dir=cache,
                                                extra={"tvm_tuning_dir": str(tuning)}))  # fmt: skip
        notes["tvm tuned"] = (
            f"{rep.trials_requested} trials over {rep.tasks} tasks ({rep.trials_per_task}/task, "
            f"{rep.records_total} records in all), "
            f"tuning {rep.wall_s / 60:.1f} min, max|d| {np.abs(sess.run(x)['logits'] - ref).max():.2g}"
        )
        variants["tvm tuned"] = lambda: sess.run(x)
    for name, fn in variants.items():  # each TVM variant alternates with ORT; its ratio is to that ORT time
        samples = alternating_blocks({"ort": ort_run, name: fn}, args.runs, 4, settle=2)
        ms = {k: float(np.median(v)) for k, v in samples.items()}
        if not rows:
            rows.append(("onnxruntime", ms["ort"], ms["ort"], f"CPU EP, this {label} model (fp32 for float)"))
        rows.append((name, ms[name], ms["ort"], notes[name]))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=200, help="MetaSchedule trials in all (0: skip tuning)")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--qdq", action="store_true", help="also benchmark the (8, 8) QDQ artifact")
    ap.add_argument("--onnx", type=Path, help="benchmark this ONNX file instead of ResNet-18")
    ap.add_argument("--records", type=Path, help="measure these tuning records instead of tuning")
    ap.add_argument("--work", type=Path, help="keep caches and tuning records here (default: a temp dir)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        models = {"model": args.onnx} if args.onnx else export_models(args, work)
        print(
            f"load average before: {' '.join(f'{v:.1f}' for v in os.getloadavg())} on {os.cpu_count()} cpus"
        )
        for label, path in models.items():
            rows = bench_one(label, path, args, work)
            print(f"\n[{label}] {path.name}, batch 1, {args.size}x{args.size}, {args.threads} threads")
            print(f"{'engine':<22}{'ms/image':>10}{'ORT ms':>8}{'x ORT':>7}  notes")
            for name, ms, ort_ms, note in rows:
                print(f"{name:<22}{ms:>10.1f}{ort_ms:>8.1f}{ms / ort_ms:>7.2f}  {note}")
        print(f"\nload average after: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
