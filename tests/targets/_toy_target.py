"""The data half of a toy engine defined outside the packages (``test_toy_engine.py`` imports it).

A target file builds one :class:`targets.Target` and registers it; nothing else names it. Its ``lowering``
lists ``export.passes`` names in order (``export.passes.registry`` checks them), and its ``runtime`` names
the adapter: ``runtimes/<runtime>.py`` for a built-in one, else a loader registered with
``@runtimes.register_runtime`` (``tests/runtimes/_toy_runtime.py``).
"""

from __future__ import annotations

from targets import Target, register_target

TARGET = register_target(
    Target(
        name="toy",
        engine="toy",
        runtime="toy",
        device="cpu",
        arches=("x86_64", "aarch64"),
        native_pairs=((8, 8),),
        containers=(8,),
        lowering=(
            "fold_activation",
            "merge_clips",
            "drop_full_range_clip",
            "dedupe_quantizers",
            "uint8_activations",
        ),
        engine_modules=(
            "onnxruntime",
        ),  # the toy engine runs the artifact on ONNX Runtime's reference kernels
        description="toy engine from tests/: ONNX Runtime with graph optimizations off",
    )
)
