"""The adapter half of the toy engine (``tests/targets/_toy_target.py``): a loader registered by name.

Built-in adapters are ``runtimes/<name>.py`` modules exposing ``load``; one living elsewhere registers its
loader with ``@register_runtime(name)``. The engine library is imported inside the loader only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from runtimes import LayerPrecision, LayerTime, RuntimeOptions, register_runtime
from runtimes.bundle import Manifest


class ToySession:
    """The artifact on ONNX Runtime with every graph optimization off: its plain reference kernels."""

    def __init__(self, artifact: Path, options: RuntimeOptions) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        if options.threads is not None:
            so.intra_op_num_threads = options.threads
        self._sess = ort.InferenceSession(str(artifact), so, providers=["CPUExecutionProvider"])
        self.input_name = self._sess.get_inputs()[0].name
        self.output_names = tuple(o.name for o in self._sess.get_outputs())
        self.target = options.target

    def run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        outs = self._sess.run(list(self.output_names), {self.input_name: x})
        return {n: np.asarray(o, dtype=np.float32) for n, o in zip(self.output_names, outs)}

    def layer_times(self) -> list[LayerTime] | None:
        return None

    def effective_precision(self) -> list[LayerPrecision]:
        return []

    def close(self) -> None:
        self._sess = None


@register_runtime("toy")
def load(artifact: Path, manifest: Manifest, options: RuntimeOptions) -> ToySession:
    """Loader for target "toy"."""
    return ToySession(Path(artifact), options)
