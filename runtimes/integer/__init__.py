"""The "integer" runtime: a bit-exact integer-only executor of the QDQ ONNX artifact (the FPGA-style backend).

The package, lowest module first: ``kernels`` (exact integer GEMM and pooling on numpy), ``dyadic`` (exact
requantization by dyadic multipliers), ``values`` (the symbolic values of the compiler), ``program`` (what it
emits), ``ops`` (the small steps it binds), ``builder`` (its state), ``lower`` (value -> codes, one table
keyed by value type), ``nodes`` (one handler per ONNX op type), ``compile`` (graph -> program), ``cost``
(cycles on a MAC array) and ``session`` (the adapter entry: ``load`` and :class:`IntegerSession`). Runtimes
are found by module name, so ``runtimes.integer.load`` is the loader.
"""

from __future__ import annotations

from runtimes.integer.compile import compile_model
from runtimes.integer.cost import CostModel, CyclesReport, LayerCycles, integer_cycles
from runtimes.integer.program import LayerInfo, Program, QuantizerInfo
from runtimes.integer.session import IntegerSession, load, load_model

__all__ = [
    "CostModel",
    "CyclesReport",
    "IntegerSession",
    "LayerCycles",
    "LayerInfo",
    "Program",
    "QuantizerInfo",
    "compile_model",
    "integer_cycles",
    "load",
    "load_model",
]
