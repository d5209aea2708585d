"""ONNX Runtime on x86/ARM CPUs: QDQ graphs fuse into QLinearConv/QGemm (u8 activations, s8 weights).

The CPU execution provider has 8-bit integer kernels only, so every 2-8 bit pair runs in int8 containers:
deployed (8, 8). The engine is a core dependency of bpnas.

Lowering: uint8 activations everywhere (signed codes at zero point 128). ORT fuses a DQ -> Conv -> Q group
only when both sides have the same 8-bit type, so with the default signed network input and int8 residual
operands most ResNet-18 convs ran float (13 of 21 upcast, measured); with uint8 every layer fused. Explicit
ConvInteger for the remaining unfusable convs is not requested: it was slower than ORT's float conv here
(ResNet-18's mixed-precision stem: the whole net twice as slow). ``split_add``: a mixed-precision
residual sum read by two quantizers ran as a float Add between DequantizeLinear/QuantizeLinear pairs and
layout Transposes; one Add per quantizer fuses each into a QLinearAdd (measured faster, ResNet-18).
``split_maxpool`` + ``split_conv``: the mixed-precision stem's pooled output is quantized twice (a-bit conv
input, 8-bit residual operand), which left the stem conv in float; one MaxPool and one conv per quantizer
makes both QLinearConvs (mixed / (8, 8) latency 1.24x -> 1.17x, ResNet-18 224x224, 2 threads).
"""

from __future__ import annotations

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
        lowering=(
            "fold_activation",
            "merge_clips",
            "drop_full_range_clip",
            "dedupe_quantizers",
            "split_maxpool",
            "quantize_before_maxpool",
            "split_conv",
            "uint8_activations",
            "split_add",
        ),
        extra=None,
        engine_modules=("onnxruntime",),
        description="ONNX Runtime CPU (QDQ -> QLinearConv, int8 containers)",
    )
)
