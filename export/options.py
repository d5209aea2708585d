"""What the ONNX exporter is asked for: a target's ordered pass list and the opset (the artifact's key)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from targets.base import DEFAULT_LOWERING as DEFAULT_PASSES

__all__ = ["DEFAULT_PASSES", "LoweringOptions"]


@dataclass(frozen=True)
class LoweringOptions:
    """How a fake-quant model becomes a QDQ ONNX graph.

    Attributes:
        passes: pass names from :mod:`export.passes.registry`, in order (a target's ``lowering``); validated
            against each pass's declared stage and ordering rules.
        opset: ONNX opset of the artifact (>= 17).
    """

    passes: tuple[str, ...] = DEFAULT_PASSES
    opset: int = 17

    def __post_init__(self) -> None:
        from export.passes.registry import check_lowering

        if isinstance(self.passes, str) or not isinstance(self.passes, Sequence):
            raise ValueError(f"passes must be a sequence of pass names, got {self.passes!r}")
        object.__setattr__(self, "passes", check_lowering(self.passes))
        if isinstance(self.opset, bool) or not isinstance(self.opset, int) or self.opset < 17:
            raise ValueError(f"opset must be an int >= 17, got {self.opset!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"passes": list(self.passes), "opset": self.opset}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LoweringOptions:
        d = dict(data)
        return cls(passes=tuple(d.get("passes", DEFAULT_PASSES)), opset=int(d.get("opset", 17)))

    def key(self) -> str:
        """A short stable name for the artifact this lowering produces (targets sharing it share a file)."""
        digest = hashlib.sha256(",".join(self.passes).encode()).hexdigest()[:10]
        return f"op{self.opset}-{digest}"
