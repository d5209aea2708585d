"""OpenVINO CPU plugin on x86/ARM: QDQ (FakeQuantize after import) runs as u8/i8 convolutions.

Low-precision transformations execute 8-bit integer convolutions and matmuls; narrower codes live in int8
containers, so every 2-8 bit pair deploys as (8, 8). QCDQ clips keep the integer path (measured).
"""

from __future__ import annotations

from export.options import LoweringOptions
from targets.base import Target, register_target

TARGET = register_target(
    Target(
        name="openvino",
        engine="openvino",
        runtime="openvino",
        device="cpu",
        arches=("x86_64", "aarch64"),
        native_pairs=((8, 8),),
        containers=(8,),
        lowering=LoweringOptions(clip_pattern="qcdq", slice_strided_pointwise=True),
        extra="openvino",
        engine_modules=("openvino",),
        description="OpenVINO CPU (u8/i8 kernels, int8 containers)",
    )
)
