"""The adapter half of the toy engine (``tests/targets/_toy_target.py``): a loader registered by name.

Built-in adapters are ``runtimes/<name>.py`` modules exposing ``load``; one living elsewhere registers its
loader with ``@register_runtime(name)``. The engine library is imported inside the loader only.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from runtimes import LayerPrecision, LayerTime, RuntimeOptions, register_runtime


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
        self.output_name = self.output_names[0]
        self.target = options.target

    def run(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self._sess.run([self.output_name], {self.input_name: x})[0], dtype=np.float32)

    def layer_times(self) -> list[LayerTime] | None:
        return None

    def effective_precision(self) -> list[LayerPrecision]:
        return []

    def close(self) -> None:
        self._sess = None


@register_runtime("toy")
def load(artifact: Path, manifest: Mapping[str, Any], options: RuntimeOptions) -> ToySession:
    """Loader for target "toy"."""
    return ToySession(Path(artifact), options)
