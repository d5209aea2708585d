"""Apache TVM (Relax) compiling the QDQ graph for the host CPU (x86 VNNI/AVX-512, ARM dot-product).

TVM's int8 schedules (u8 x s8 -> s32) are the integer path; narrower codes run in int8 containers, so every
2-8 bit pair deploys as (8, 8). TVM's Relax ONNX frontend has no ConvInteger/QLinearConv, so it runs the
graph in float32; the ``code_arithmetic`` lowering keeps that float arithmetic on integer codes (exact
accumulation, one rescale per layer), which follows the spec far more closely than float convs on
dequantized tensors (DESIGN §6).
"""

from __future__ import annotations

from targets.base import Target, register_target

TARGET = register_target(
    Target(
        name="tvm",
        engine="tvm",
        runtime="tvm",
        device="cpu",
        arches=("x86_64", "aarch64"),
        native_pairs=((8, 8),),
        containers=(8,),
        lowering=(
            "fold_activation",
            "merge_clips",
            "drop_full_range_clip",
            "dedupe_quantizers",
            "code_arithmetic",
        ),
        extra="tvm",
        engine_dist="apache-tvm",
        engine_modules=("tvm",),
        description="Apache TVM compiled for the host CPU (int8 containers)",
    )
)
