"""TensorRT on NVIDIA Jetson (aarch64, JetPack), GPU with an optional DLA core.

The "tensorrt" target with its name, arches and requirements replaced: the same lowering (symmetric int8,
so both share one artifact) and the same adapter, ``runtimes/tensorrt.py``, told the target it serves; the
DLA runs int8 convolutions too, so every 2-8 bit pair deploys as (8, 8). TensorRT ships with JetPack; the
extra adds cuda-python.
"""

from __future__ import annotations

from targets.base import register_target
from targets.tensorrt import TARGET as TENSORRT

TARGET = register_target(
    TENSORRT.replace(
        name="jetson",
        arches=("aarch64",),
        requires=("aarch64", "cuda"),
        description="TensorRT on Jetson (GPU, optional DLA), symmetric int8",
    )
)
