"""The data half of a toy engine defined outside the packages (``test_toy_engine.py`` imports it).

A target file builds one :class:`targets.Target` and registers it; nothing else names it. Its ``lowering``
lists ``export.passes`` names in order (``export.passes.registry`` checks them), and its ``runtime`` names
the adapter: ``runtimes/<runtime>.py`` for a built-in one, else a loader registered with
``@runtimes.register_runtime`` (``tests/runtimes/_toy_runtime.py``).
"""

from __future__ import annotations

from targets import Target, register_target
from targets.base import DEFAULT_LOWERING

TARGET = register_target(
    Target(
        name="toy",
        engine="toy",
        runtime="toy",
        device="cpu",
        arches=("x86_64", "aarch64"),
        native_pairs=((8, 8),),
        lowering=(*DEFAULT_LOWERING, "uint8_activations"),
        # the toy engine runs the artifact on ONNX Runtime's reference kernels
        engine_modules=("onnxruntime",),
        description="toy engine from tests/: ONNX Runtime with graph optimizations off",
    )
)
