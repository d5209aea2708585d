"""Check that every quantization scale is an exact power of two (FPGA toolchains shift, not multiply)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from export._graph import Graph
from export.passes.registry import register_pass
from sdk.errors import ConfigError

__all__ = ["PowerOfTwoCheck", "is_power_of_two"]


def is_power_of_two(values: np.ndarray) -> bool:
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    mant, _ = np.frexp(v)
    return bool(np.all(v > 0) and np.all(mant == 0.5))


@dataclass(frozen=True)
class PowerOfTwoCheck:
    def apply(self, model: onnx.ModelProto) -> tuple[onnx.ModelProto, bool]:
        graph = Graph(model)
        for n in model.graph.node:
            if n.op_type not in ("QuantizeLinear", "DequantizeLinear"):
                continue
            scale = graph.const(n.input[1])
            if scale is None or is_power_of_two(scale):
                continue
            readers = sorted(c.name for c in graph.consumers.get(n.output[0], []) if c.name)
            where = f"{n.name} (read by {', '.join(readers[:3])})" if readers else n.name
            raise _error(where, scale)
        return model, False


def _error(where: str, scale: np.ndarray) -> ConfigError:
    bad = np.asarray(scale).reshape(-1)[0]
    return ConfigError(
        f"this target needs power-of-two quantization scales, but {where} has scale {float(bad)!r}. "
        "Calibrate with calibration.calibrate(..., power_of_two=True) (or train with power-of-two alphas) "
        "and export again."
    )


register_pass("power_of_two_check", PowerOfTwoCheck, stage="engine")
