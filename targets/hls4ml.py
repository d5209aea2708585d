"""hls4ml: the FPGA toolchain, run as its C simulation (compiled with g++), bit-exact to the spec or refused.

The bundle carries the HLS project hls4ml generated from the model's QONNX, every ``ap_fixed`` type derived
from the quantizers (``export/hls4ml_export.py``, docs/fpga.md) and verified code for code against the
integer executor at export; the same project synthesises with Vivado/Vitis HLS. Power-of-two scales only
(fixed point shifts, it cannot multiply by an arbitrary scale exactly): the lowering checks them. Every
2-8 bit pair is native (fixed-point types of any width). Exporting needs hls4ml and qonnx (the ``fpga``
extra); running needs g++ once, to compile the C simulation into the bundle's cache.
"""

from __future__ import annotations

from targets.base import DEFAULT_LOWERING, INT_BITS, Target, all_pairs, register_target
from targets.integer import TARGET as INTEGER

TARGET = register_target(
    Target(
        name="hls4ml",
        engine="hls4ml",
        runtime="hls4ml",
        device="fpga",
        arches=("x86_64", "aarch64"),
        native_pairs=all_pairs(INT_BITS),
        containers=(8,),
        lowering=(*DEFAULT_LOWERING, "power_of_two_check"),  # the integer reference the C-sim must match
        extra="fpga",
        engine_dist="hls4ml",
        engine_modules=("hls4ml", "qonnx"),
        float_layers=False,
        cost=INTEGER.cost,  # the same bit-serial MAC array the integer target prices
        description="hls4ml C simulation (FPGA HLS project), power-of-two scales, bit-exact or refused",
    )
)
