"""ONNX Runtime on x86/ARM CPUs: QDQ graphs fuse into QLinearConv/QGemm (u8 activations, s8 weights).

The CPU execution provider has 8-bit integer kernels only, so every 2-8 bit pair runs in int8 containers:
deployed (8, 8). The engine is a core dependency of bpnas.
"""

from __future__ import annotations

from export.options import LoweringOptions
from targets.base import Target, register_target

TARGET = register_target(
    Target(
        name="onnxruntime",
        engine="onnxruntime",
        runtime="onnxruntime",
        device="cpu",
        arches=("x86_64", "aarch64"),
        native_pairs=((8, 8),),
        containers=(8,),
        lowering=LoweringOptions(),
        extra=None,
        engine_modules=("onnxruntime",),
        description="ONNX Runtime CPU (QDQ -> QLinearConv, int8 containers)",
    )
)
