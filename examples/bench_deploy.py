"""Deployment benchmark: ResNet-18 at 224x224, 2 engine threads, every comparison measured in one run.

    .venv/bin/python examples/bench_deploy.py [--runs 200] [--threads 2] [--size 224] [--out DIR]

Prints measured ratios only (no expected numbers):

1. ``Predictor.predict`` vs the raw engine call on the same artifact (ONNX Runtime and OpenVINO): the SDK's
   per-call overhead (input checks, NaN/inf scan, locking).
2. OpenVINO running the bpnas uniform (8, 8) bundle vs the float model (f32, and the plugin's default float
   precision, which is bf16 on AMX/AVX512-BF16 CPUs).
3. The bpnas (8, 8) QDQ artifact vs ONNX Runtime's ``quantize_static`` QDQ model of the same network
   (u8 activations, s8 per-channel weights), both on OpenVINO.
4. A mixed-precision configuration vs uniform (8, 8) on each x86 engine, next to the BOPs ratio: on int8
   containers mixed precision buys no speed unless the engine has narrower kernels (see "deployed bits").
5. The effective-precision table of the mixed bundle: per layer, the searched (w, a) pair and what each engine
   actually runs after compiling (kernel and precision), with silently upcast layers marked, as
   ``sdk.export`` recorded it in the manifest when it loaded the bundle on each installed engine.

The weights are random (latency does not depend on them); calibration uses random batches. Needs torch for
building and exporting; sections that need ``sdk.export`` say so and are skipped until the exporter exists.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import warnings
from collections.abc import Callable
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from _timing import alternating_blocks


# -- measuring ---------------------------------------------------------------------------------------------
class Results:
    """Collects latencies by label and prints paired ratios between them."""

    def __init__(self) -> None:
        self.samples: dict[str, np.ndarray] = {}

    def add_all(self, samples: dict[str, np.ndarray]) -> None:
        for label, ms in samples.items():
            self.samples[label] = ms
            print(f"  {label:<48} p50 {np.percentile(ms, 50):8.3f} ms   p90 {np.percentile(ms, 90):8.3f} ms")

    def ratio(self, num: str, den: str, what: str) -> None:
        """Median over rounds of the per-round p50 ratio, with its range: two contenders measured in the same
        round saw the same machine load, so their ratio is steadier than a ratio of overall p50s."""
        if num in self.samples and den in self.samples:
            a, b = self.samples[num], self.samples[den]
            per_round = np.median(a, axis=1) / np.median(b, axis=1)
            print(
                f"  -> {what}: {np.median(per_round):.3f}x  "
                f"(rounds {per_round.min():.3f}-{per_round.max():.3f}; {num} / {den})"
            )


#: the x86 engines bundles are exported for (the effective-precision table covers them all)
ENGINES = ("onnxruntime", "openvino", "tvm", "integer")


# -- building the models -----------------------------------------------------------------------------------
def build_model(size: int) -> Any:
    import torch

    import sdk

    torch.manual_seed(0)
    model = sdk.models.resnet18(num_classes=1000).eval()
    with torch.no_grad():
        model(torch.zeros(1, 3, size, size))
    return model


def calib_batches(size: int, n: int = 4, batch: int = 8) -> list[Any]:
    import torch

    g = torch.Generator().manual_seed(1)
    return [torch.randn(batch, 3, size, size, generator=g) for _ in range(n)]


def mixed_config(model: Any) -> Any:
    """First conv and classifier at (8, 8), the rest cycling through low-bit pairs (a fixed mix)."""
    import sdk

    cfg = sdk.MixedPrecisionConfig.uniform(model, 8, 8)
    names = list(cfg)
    cycle = [(4, 4), (3, 4), (2, 4), (4, 6), (6, 4), (3, 3)]
    for i, name in enumerate(names[1:-1]):
        cfg[name] = cycle[i % len(cycle)]
    return cfg


def export_float_onnx(model: Any, path: Path, size: int) -> Path:
    import torch

    x = torch.zeros(1, 3, size, size)
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # the TorchScript exporter's notice
    kwargs = dict(input_names=["input"], output_names=["logits"], opset_version=17)
    try:
        torch.onnx.export(model, (x,), str(path), dynamo=False, dynamic_axes={"input": {0: "N"}}, **kwargs)
    except TypeError:  # a torch without the dynamo switch
        torch.onnx.export(model, (x,), str(path), dynamic_axes={"input": {0: "N"}}, **kwargs)
    return path


def ort_quantize_static(float_path: Path, out: Path, batches: list[Any]) -> Path:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter([{"input": b.numpy()} for b in batches])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_static logs a warning per bias and a pre-processing hint
    try:
        quantize_static(
            str(float_path),
            str(out),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
    finally:
        root.setLevel(level)
    return out


def export_bundle(model: Any, cfg: Any, path: Path, batches: list[Any]) -> Path | None:
    """PTQ-calibrate and export a bundle for every installed engine of ``ENGINES``; None while sdk.export is
    missing."""
    import calibration
    import sdk

    try:
        export = sdk.export
    except (AttributeError, ImportError) as e:
        print(f"  (skipped: sdk.export is not available yet: {e})")
        return None
    import targets

    qmodel = calibration.ptq(model, cfg, batches).eval()
    names = [t for t in ENGINES if t in targets.available()]
    pre = sdk.Preprocess(
        size=tuple(batches[0].shape[2:]), mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)
    )
    return Path(export(qmodel, str(path), example_input=batches[0][:1], targets=names, preprocess=pre))


# -- raw engines -------------------------------------------------------------------------------------------
def raw_openvino(path: Path, threads: int, precision: str | None) -> Callable[[np.ndarray], Any]:
    import openvino as ov
    import openvino.properties as props
    import openvino.properties.hint as hints

    config: dict[Any, Any] = {
        hints.performance_mode: hints.PerformanceMode.LATENCY,
        props.inference_num_threads: threads,
    }
    if precision is not None:
        config[hints.inference_precision] = {"f32": ov.Type.f32, "bf16": ov.Type.bf16}[precision]
    compiled = ov.Core().compile_model(str(path), "CPU", config)
    request = compiled.create_infer_request()
    return lambda x: request.infer({"input": x}, share_inputs=True)


def raw_onnxruntime(path: Path, threads: int) -> Callable[[np.ndarray], Any]:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return lambda x: sess.run(["logits"], {"input": x})


def _on_frame(raw: Callable[[np.ndarray], Any], pre: Any, frame: np.ndarray) -> Any:
    """The raw engine call on a camera frame, preprocessed as the bundle says (what predict(frame) does)."""
    return raw(pre([frame]))


# -- the benchmark -----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--out", type=Path, default=None, help="where to write models (default: a temp dir)")
    args = ap.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="bpnas-bench-"))
    out.mkdir(parents=True, exist_ok=True)

    import sdk

    runs, warm, threads = args.runs, args.warmup, args.threads
    x = np.random.default_rng(0).standard_normal((1, 3, args.size, args.size)).astype(np.float32)
    res = Results()

    def bench(fns: dict[str, Callable[[np.ndarray], Any]]) -> None:
        res.add_all(alternating_blocks({k: partial(f, x) for k, f in fns.items()}, runs, 10, warmup=warm))

    print(f"ResNet-18 {args.size}x{args.size}, batch 1, {threads} threads, {runs} runs; models in {out}")
    model = build_model(args.size)
    batches = calib_batches(args.size)
    float_path = export_float_onnx(model, out / "resnet18_float.onnx", args.size)
    ort_qdq = ort_quantize_static(float_path, out / "resnet18_ort_qdq.onnx", batches)
    uniform_cfg = sdk.MixedPrecisionConfig.uniform(model, 8, 8)
    uniform = export_bundle(model, uniform_cfg, out / "r18_w8a8.bpnas", batches)
    mixed = export_bundle(model, mixed_config(model), out / "r18_mixed.bpnas", batches)

    print("\n[2,3] OpenVINO: float vs ORT quantize_static QDQ vs bpnas (8, 8)")
    fns = {
        "OpenVINO float f32": raw_openvino(float_path, threads, "f32"),
        "OpenVINO float plugin default": raw_openvino(float_path, threads, None),
        "OpenVINO ORT-quantize_static QDQ": raw_openvino(ort_qdq, threads, "f32"),
    }
    bpnas = "OpenVINO bpnas (8,8)"
    with ExitStack() as stack:
        if uniform is not None:
            for label, extra in (("", {}), (" bf16 float ops", {"inference_precision": "bf16"})):
                p = stack.enter_context(sdk.load(uniform, target="openvino", threads=threads, options=extra))
                fns[bpnas + label] = p.predict
                upcast = [q.layer for q in p.effective_precision() if q.upcast]
                print(f"  {bpnas + label}: {len(upcast)} upcast layers {upcast[:6]}")
        bench(fns)
    res.ratio("OpenVINO float f32", bpnas, "speedup of bpnas (8,8) over float f32")
    res.ratio("OpenVINO float plugin default", bpnas, "speedup over the plugin's default float precision")
    res.ratio(bpnas, "OpenVINO ORT-quantize_static QDQ", "bpnas QDQ / ORT quantize_static QDQ latency")
    res.ratio(f"{bpnas} bf16 float ops", bpnas, "bf16 / f32 for the remaining float ops")

    print("\n[1] predict() overhead vs the raw engine call on the same artifact")
    raw_engines: dict[str, Callable[[Path], Callable[[np.ndarray], Any]]] = {
        "onnxruntime": lambda a: raw_onnxruntime(a, threads),
        "openvino": lambda a: raw_openvino(a, threads, "f32"),  # the adapter's default float precision
    }
    if uniform is not None:
        for name in ("onnxruntime", "openvino"):
            with sdk.load(uniform, target=name, threads=threads) as p:
                artifact = p.manifest.artifact_path(name)
                raw = raw_engines[name](artifact)
                bench({f"{name} raw engine call": raw, f"{name} predict()": p.predict})
                assert p.preprocess is not None
                frame = np.random.default_rng(1).integers(0, 256, (480, 640, 3), dtype=np.uint8)
                pre = p.preprocess
                res.add_all(  # the camera path: the same preprocessing on both sides
                    alternating_blocks(
                        {
                            f"{name} raw engine call on preprocess(frame)": partial(
                                _on_frame, raw, pre, frame
                            ),
                            f"{name} predict(frame)": partial(p.predict, frame),
                        },
                        runs,
                        10,
                        warmup=warm,
                    )
                )
            res.ratio(f"{name} predict()", f"{name} raw engine call", f"{name} predict() overhead")
            res.ratio(
                f"{name} predict(frame)",
                f"{name} raw engine call on preprocess(frame)",
                f"{name} predict() overhead on uint8 camera frames (no NaN scan needed)",
            )

    print("\n[4] mixed precision vs uniform (8, 8)")
    if uniform is not None and mixed is not None:
        for name in ("onnxruntime", "openvino"):
            with ExitStack() as stack:
                fns = {}
                for label, path in (("(8,8)", uniform), ("mixed", mixed)):
                    p = stack.enter_context(sdk.load(path, target=name, threads=threads))
                    fns[f"{name} {label}"] = p.predict
                    rep = p.profile(runs=3, warmup=1, per_layer=False)
                    print(
                        f"  {name} {label}: avg bits searched {rep.avg_bits:.2f}, deployed "
                        f"{rep.deployed_bits:.2f}, upcast layers {rep.upcast_layers}"
                    )
                bench(fns)
            res.ratio(f"{name} mixed", f"{name} (8,8)", f"{name} mixed / (8,8) latency")
        with sdk.load(uniform) as pu, sdk.load(mixed) as pm:
            u, m = pu.bops, pm.bops
        print(
            f"  -> BOPs mixed / (8,8): {m.bops / u.bops:.3f}x (avg bits {m.avg_bits:.2f} vs {u.avg_bits:.2f})"
        )
        from runtimes.bundle import read_manifest

        print("\n[5] effective precision of the mixed bundle, as sdk.export recorded it in the manifest")
        print(read_manifest(mixed).precision_table())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
