"""Refuse a graph TensorRT's parser or explicit-quantization builder would reject (``export.tensorrt_rules``).

The last pass of the tensorrt/jetson lowering: a check, so it never changes the graph. Failing here, at
export, names the rule and its source, where TensorRT would fail on the user's GPU with a parser error.
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx

from export.passes.registry import register_pass
from export.tensorrt_rules import violations
from sdk.errors import ConfigError

__all__ = ["TensorRTCheck"]


@dataclass(frozen=True)
class TensorRTCheck:
    def apply(self, model: onnx.ModelProto) -> tuple[onnx.ModelProto, bool]:
        found = violations(model)
        if found:
            shown = "; ".join(f"[{rule}] {msg}" for rule, msg in found[:5])
            more = f" (and {len(found) - 5} more)" if len(found) > 5 else ""
            raise ConfigError(
                f"the artifact breaks {len(found)} TensorRT rule(s): {shown}{more}. Export with the tensorrt "
                "target's own lowering, and quantize with sdk.quantize(..., target='tensorrt')."
            )
        return model, False


# last: it checks what the other engine passes produced
register_pass(
    "tensorrt_check", TensorRTCheck, stage="engine", after=("float_bias", "float_clip", "signed_float_clip")
)
