"""The bit-exact integer-only executor: the FPGA-style backend ("fpga" is its alias).

It computes every layer with the searched integer widths (any 2-8 bit pair is native), adding the int32 bias
on the accumulator grid as DESIGN §2 specifies, so its cost is the searched BOPs. It has no float fallback:
a layer at 32 bits cannot run on it. The executor needs only
numpy and onnx (core dependencies); the "fpga" extra adds qonnx for FPGA toolchains. Its cost model adds
cycles for a bit-serial MAC array (16 x 16 at 200 MHz, 1-bit units: cycles proportional to BOPs); change it
with ``TARGET.replace(cost=CostModel(...))``. FPGA toolchains that shift instead of multiply want
power-of-two scales: ``TARGET.replace(lowering=POW2)``.
"""

from __future__ import annotations

from targets.base import DEFAULT_LOWERING, INT_BITS, CostModel, Target, all_pairs, register_target

#: weight codes stored at each layer's bits (a 3-bit layer: 3 bits per weight; ``runtimes.integer.packing``),
#: then the graph around them without what the executor does not read (``export/passes/compact_graph.py``)
LOWERING = (*DEFAULT_LOWERING, "pack_weights", "compact_graph")
#: lowering for toolchains that rescale by shifts (hls4ml, FINN): per-tensor weights, power-of-two scales
POW2 = (*DEFAULT_LOWERING, "per_tensor_weights", "power_of_two_check", "pack_weights", "compact_graph")

TARGET = register_target(
    Target(
        name="integer",
        engine="integer",
        runtime="integer",
        device="fpga",
        arches=("x86_64", "aarch64"),
        native_pairs=all_pairs(INT_BITS),
        containers=(8,),
        lowering=LOWERING,
        aliases=("fpga",),
        extra="fpga",
        engine_dist="bpnas",  # the executor ships with bpnas
        engine_modules=("onnx", "numpy"),
        float_layers=False,
        cost=CostModel(mac_rows=16, mac_cols=16, clock_mhz=200.0, w_unit=1, a_unit=1),
        description="bit-exact integer executor (FPGA-style), every 2-8 bit pair native, MAC-array cycles",
    )
)
