"""Deploy cold start: a fresh process running ``import sdk; sdk.load(b).predict(x)`` vs a plain ONNX Runtime
script on the same artifact file (issue 15: goal <= 1.3x).

    .venv/bin/python examples/bench_cold_start.py [--runs 15] [--bundle B.bpnas]

Without ``--bundle`` it exports a small digits CNN (8-bit, onnxruntime) into a temp dir first (needs torch).
Each run starts one fresh interpreter per side, alternating which goes first, and times it from the parent
(process start to exit). Prints the medians and their ratio; no expected numbers.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SDK_SCRIPT = """
import numpy as np
import sdk
p = sdk.load({bundle!r}, target="onnxruntime")
p.predict(np.zeros({shape!r}, np.float32))
"""

ORT_SCRIPT = """
import numpy as np
import onnxruntime as ort
s = ort.InferenceSession({artifact!r}, providers=["CPUExecutionProvider"])
s.run(None, {{s.get_inputs()[0].name: np.zeros({shape!r}, np.float32)}})
"""


def make_bundle(folder: Path) -> Path:
    """A digits CNN quantized to 8 bits, exported for ONNX Runtime."""
    import torch

    import sdk

    model = sdk.models.create("digits_cnn", num_classes=10, in_channels=1)
    qmodel = sdk.quantize(model, sdk.MixedPrecisionConfig.uniform(model, 8, 8))
    with torch.no_grad():
        qmodel(torch.randn(8, 1, 8, 8))  # sets the activation scales
    qmodel.eval()
    return sdk.export(
        qmodel, folder / "cold.bpnas", example_input=torch.zeros(1, 1, 8, 8), inspect=False
    ).path


def artifact_and_shape(bundle: Path) -> tuple[Path, tuple[int, ...]]:
    """The onnxruntime artifact file and a batch-1 input shape, read from manifest.json as plain JSON."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    entry = manifest["targets"]["onnxruntime"]
    file = entry if isinstance(entry, str) else entry["artifact"]
    shape = tuple(1 if d is None else int(d) for d in manifest["input"]["shape"])
    return bundle / file, shape


def timed(code: str, root: Path) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=15, help="fresh processes per side")
    ap.add_argument("--bundle", help="an existing bundle with an onnxruntime artifact")
    args = ap.parse_args()
    root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as tmp:
        bundle = Path(args.bundle) if args.bundle else make_bundle(Path(tmp))
        artifact, shape = artifact_and_shape(bundle)
        sdk_code = SDK_SCRIPT.format(bundle=str(bundle), shape=shape)
        ort_code = ORT_SCRIPT.format(artifact=str(artifact), shape=shape)
        timed(ort_code, root)  # warm the OS file cache for both sides
        timed(sdk_code, root)
        sdk_s, ort_s = [], []
        for i in range(args.runs):
            pair = [(sdk_code, sdk_s), (ort_code, ort_s)]
            for code, out in pair if i % 2 == 0 else pair[::-1]:
                out.append(timed(code, root))
    a, b = statistics.median(sdk_s), statistics.median(ort_s)
    print(f"fresh-process cold start, median of {args.runs} interleaved runs each:")
    print(f"  import sdk; sdk.load().predict()  {1000 * a:8.1f} ms")
    print(f"  plain onnxruntime script          {1000 * b:8.1f} ms")
    print(f"  ratio                             {a / b:8.2f}x")


if __name__ == "__main__":
    main()
