"""What the integer compiler produces: a straight-line program of numpy steps over numbered registers, and
the records it keeps of the graph's quantizers and layers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

__all__ = ["INPUT", "OUTPUT", "LayerInfo", "Op", "Program", "QuantizerInfo"]

INPUT, OUTPUT = "input", "logits"


@dataclass
class Op:
    """One step: ``regs[output] = fn(*regs[inputs])``."""

    name: str
    op_type: str
    inputs: tuple[int, ...]
    output: int
    fn: Callable[..., np.ndarray]


@dataclass(frozen=True)
class QuantizerInfo:
    """An activation quantizer of the graph: its QuantizeLinear output name, code range, and where it feeds.

    ``consumers`` are (node name, op type, input index) of the nodes reading its DequantizeLinear output;
    ``source`` is the node whose float output it quantizes ("input" for the network input).
    """

    name: str
    scale: float
    lo: int
    hi: int
    consumers: tuple[tuple[str, str, int], ...]
    source: str
    clip: str | None = None


@dataclass(frozen=True)
class LayerInfo:
    """A conv/linear layer as compiled: bits, the proven accumulator bound and the exact GEMM container."""

    name: str
    op_type: str
    w_bits: int
    a_bits: int
    k: int
    bound: int  # max |acc| over channels: sum_k |w_ck| * max|a| + |bias_c|
    coarse_bound: int  # K * max|w| * max|a| + max|bias|
    gemm: str  # the exact container: "float32", "float32x3->float64" (K split in 3 exact pieces), ...


@dataclass
class Program:
    ops: list[Op]
    input_reg: int
    output_reg: int
    input_shape: tuple[int, ...]
    quantizers: list[QuantizerInfo]
    layers: list[LayerInfo]
    codes_regs: dict[str, int]  # quantizer name -> register holding its codes
    layouts: dict[int, str]  # register -> "nhwc" | "nf"
    last_use: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for i, op in enumerate(self.ops):
            for r in op.inputs:
                self.last_use[r] = i
