"""Experiment (not the shipped semantics): what one quantizer per ResNet block input buys (DESIGN §2).

    PYTHONPATH=. .venv/bin/python docs/experiments/shared_block_quantizer.py [OUT_DIR]

ResNet-18 224, PTQ-calibrated, three bundles timed side by side on ONNX Runtime and OpenVINO (2 threads):
- ``w8a8``: uniform (8, 8).
- ``block``: a block-wise mixed config (the paper's granularity: every conv of a block shares its pair, the
  pairs cycling through low bits), shipped semantics: the identity skip keeps its own 8-bit quantizer, so a
  block input read by conv1 at a < 8 bits is quantized twice.
- ``shared``: the same config, with the skip and the downsample conv reading conv1's input quantizer, so
  every tensor has exactly one quantizer (the residual stream then runs at conv1's a bits: a semantics
  change, with an accuracy cost not studied here).
Then OpenVINO's per-node times of each (perf counters), which show where the rest of ``shared``'s time goes:
with one quantizer per tensor the graphs match (8, 8) node for node, and the difference is inside the
convolutions, whose fused post-ops now clamp to [0, 2^a - 1] (removing those clamps, wrong as that is,
brings them back to the (8, 8) time).
"""

from __future__ import annotations

import collections
import sys
from functools import partial
from pathlib import Path

import numpy as np
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))

import bench_deploy as bd  # noqa: E402
from _timing import alternating_blocks  # noqa: E402

import calibration  # noqa: E402
import sdk  # noqa: E402
from sdk.models.resnet import BasicBlock  # noqa: E402

CYCLE = [(4, 4), (3, 4), (2, 4), (4, 6), (6, 4), (3, 3)]
ENGINES = ("onnxruntime", "openvino")


def block_config(
    model: nn.Module, cycle: list[tuple[int, int]] = CYCLE, block_type: type[nn.Module] = BasicBlock
) -> sdk.MixedPrecisionConfig:
    """(8, 8), except that every conv of the i-th ``block_type`` block gets ``cycle[i % len(cycle)]``."""
    cfg = sdk.MixedPrecisionConfig.uniform(model, 8, 8)
    blocks = [n for n, m in model.named_modules() if isinstance(m, block_type)]
    for i, block in enumerate(blocks):
        for name in cfg:
            if name.startswith(block + "."):
                cfg[name] = cycle[i % len(cycle)]
    return cfg


def share_block_quantizers(
    q: nn.Module, block_type: type[nn.Module] = BasicBlock, shortcut: str = "downsample"
) -> None:
    """Make the identity skip (or the shortcut conv) of every block read conv1's input quantizer."""
    for m in q.modules():
        if isinstance(m, block_type):
            path = getattr(m, shortcut)
            if isinstance(path, nn.Identity):
                m.add.quant_b = m.conv1.act_quant
            else:
                path[0].act_quant = m.conv1.act_quant


def ov_node_times(bundle: Path, x: np.ndarray, runs: int = 50) -> dict[tuple[str, str], float]:
    """Mean ms per inference of each (node type, kernel) OpenVINO executed, from its perf counters."""
    with sdk.load(bundle, target="openvino", threads=2) as p:
        artifact = p.manifest.artifact_path("openvino")
    import openvino as ov
    import openvino.properties as props
    import openvino.properties.hint as hints

    config = {
        hints.performance_mode: hints.PerformanceMode.LATENCY,
        props.inference_num_threads: 2,
        props.enable_profiling: True,
        hints.inference_precision: ov.Type.f32,
    }
    request = ov.Core().compile_model(str(artifact), "CPU", config).create_infer_request()
    for _ in range(20):
        request.infer({0: x})
    times: dict[tuple[str, str], float] = collections.defaultdict(float)
    for _ in range(runs):
        request.infer({0: x})
        for c in request.profiling_info:
            if c.status == c.Status.EXECUTED:
                times[(c.node_type, c.exec_type)] += c.real_time.total_seconds() * 1e3 / runs
    return times


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    model, batches = bd.build_model(224), bd.calib_batches(224)
    configs = {"w8a8": sdk.MixedPrecisionConfig.uniform(model, 8, 8), "block": block_config(model)}
    bundles = {}
    for label in ("w8a8", "block", "shared"):
        q = calibration.ptq(model, configs.get(label, configs["block"]), batches).eval()
        if label == "shared":
            share_block_quantizers(q)
        bundles[label] = Path(
            sdk.export(q, str(out / f"{label}.bpnas"), example_input=batches[0][:1], targets=list(ENGINES))
        )
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    for engine in ENGINES:
        res = bd.Results()
        ps = {k: sdk.load(b, target=engine, threads=2) for k, b in bundles.items()}
        res.add_all(alternating_blocks({k: partial(p.predict, x) for k, p in ps.items()}, 200, 10, warmup=10))
        for p in ps.values():
            p.close()
        for label in ("block", "shared"):
            res.ratio(label, "w8a8", f"{engine} {label} / (8,8)")
    for label, bundle in bundles.items():
        times = ov_node_times(bundle, x)
        top = sorted(times.items(), key=lambda kv: -kv[1])[:5]
        print(f"OpenVINO {label}: {sum(times.values()):.3f} ms in nodes; " + ", ".join(
            f"{t}/{k} {ms:.3f}" for (t, k), ms in top
        ))  # fmt: skip


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("shared_block_quantizer"))
