"""TensorRT on NVIDIA Jetson (aarch64, JetPack), GPU with an optional DLA core.

Same lowering as "tensorrt" (symmetric int8, so both share one artifact) and the same adapter,
``runtimes/tensorrt.py``, told the target it serves; the DLA runs int8 convolutions too,
so every 2-8 bit pair deploys as (8, 8). TensorRT ships with JetPack; the extra adds cuda-python.
"""

from __future__ import annotations

from targets.base import Target, register_target

TARGET = register_target(
    Target(
        name="jetson",
        engine="tensorrt",
        runtime="tensorrt",
        device="gpu",
        arches=("aarch64",),
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
        requires=("aarch64", "cuda"),
        description="TensorRT on Jetson (GPU, optional DLA), symmetric int8",
    )
)
