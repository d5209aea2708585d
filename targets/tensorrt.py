"""TensorRT on Turing-or-newer NVIDIA GPUs: explicit quantization from Q/DQ pairs, int8 tensor cores.

TensorRT's explicit-quantization rules want symmetric int8 everywhere (zero point 0), so activations are
lowered as int8 even when unsigned (codes in the non-negative half, at most 7 bits of them:
``unsigned_act_bits``). Every 2-8 bit pair deploys as (8, 8).
Needs a CUDA GPU as well as the engine.
"""

from __future__ import annotations

from targets.base import Target, register_target

TARGET = register_target(
    Target(
        name="tensorrt",
        engine="tensorrt",
        runtime="tensorrt",
        device="gpu",
        arches=("x86_64", "aarch64"),
        native_pairs=((8, 8),),
        containers=(8,),
        lowering=(
            "fold_activation",
            "merge_clips",
            "drop_full_range_clip",
            "dedupe_quantizers",
            "int8_activations",
            "float_bias",
            "float_clip",
            "tensorrt_check",
        ),
        unsigned_act_bits=7,  # symmetric int8 holds unsigned codes 0..127
        extra="tensorrt",
        engine_modules=("tensorrt",),
        requires=("cuda",),
        description="TensorRT on NVIDIA GPUs (Turing+), symmetric int8",
    )
)
