"""OpenVINO CPU plugin on x86/ARM: QDQ (FakeQuantize after import) runs as u8/i8 convolutions.

Low-precision transformations execute 8-bit integer convolutions and matmuls; narrower codes live in int8
containers, so every 2-8 bit pair deploys as (8, 8). QCDQ clips keep the integer path (measured).

Lowering, each exact and measured on ResNet-18 (examples/bench_deploy.py) with OpenVINO 2026.4:
- ``signed_float_clip``: the integer Clip(-127, 127) of a signed residual operand kept the Add's
  dequantization out of the conv, which then wrote f32 and ran a separate Multiply per identity block; as a
  float bound it folds into the FakeQuantize and the add runs as the conv's int8 sum post-op.
- ``quantize_before_maxpool``: the stem's conv output, MaxPool and quantizer ran in f32; now u8.
- ``slice_strided_pointwise``: strided 1x1 downsample convs ran f32; now u8.
- ``split_add``: a mixed-precision residual sum read by two quantizers made its conv write f32 and
  quantize twice; with one Add per quantizer the conv writes int8 codes.
- ``keep_residual_rounding`` (exactness, not speed): where the plugin fuses conv -> quantizer -> Add ->
  quantizer into one conv it drops the first quantizer's rounding; an identity LeakyRelu as the conv's first
  post-op keeps it (detector head codes equal to the spec 22.96% -> 100%; p50 unchanged within noise).
"""

from __future__ import annotations

from targets.base import DEFAULT_LOWERING, Target, register_target

TARGET = register_target(
    Target(
        name="openvino",
        engine="openvino",
        runtime="openvino",
        device="cpu",
        arches=("x86_64", "aarch64"),
        native_pairs=((8, 8),),
        lowering=(
            *DEFAULT_LOWERING,
            "quantize_before_maxpool",
            "signed_float_clip",
            "slice_strided_pointwise",
            "split_add",
            "keep_residual_rounding",
        ),
        extra="openvino",
        engine_modules=("openvino",),
        description="OpenVINO CPU (u8/i8 kernels, int8 containers)",
    )
)
