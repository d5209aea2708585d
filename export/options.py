"""Lowering options a target asks the ONNX exporter for. Torch-free: targets (data) import it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["LoweringOptions", "CLIP_PATTERNS"]

CLIP_PATTERNS = ("qcdq", "float_clip", "signed_float_clip")
#: the tag each flag adds to ``LoweringOptions.key()``, in key order (artifact file names depend on it)
_KEY_TAGS = {
    "symmetric_int8": "s8",
    "power_of_two_scales": "po2",
    "uint8_activations": "u8",
    "explicit_integer_ops": "intops",
    "slice_strided_pointwise": "s1x1",
    "quantize_before_maxpool": "qmp",
    "split_shared_add": "addq",
    "split_shared_pool": "poolq",
    "code_arithmetic": "codes",
}
_FLAGS = ("per_channel", *_KEY_TAGS)  # the bool options


@dataclass(frozen=True)
class LoweringOptions:
    """How a fake-quant model becomes a QDQ ONNX graph.

    Attributes:
        opset: ONNX opset (>= 17).
        per_channel: per-output-channel weight scales (axis 0); False forces per-tensor.
        symmetric_int8: every activation tensor as int8 with zero point 0 (TensorRT's explicit-quantization
            rules); unsigned a-bit codes then live in the non-negative half of int8.
        power_of_two_scales: require every scale to be a power of two (FPGA toolchains, hls4ml).
        clip_pattern: "qcdq" (QuantizeLinear -> integer Clip to the a-bit code range -> DequantizeLinear),
            "float_clip" (float Clip(0, alpha) before QuantizeLinear) or "signed_float_clip" (QCDQ, but the
            narrow-range bound of signed codes as a float Clip, which OpenVINO folds into FakeQuantize; its
            integer Clip on a residual operand kept the Add out of the conv, measured). QCDQ keeps ORT and
            OpenVINO on integer kernels, measured.
        container_bits: integer container width for sub-8-bit codes (8: a 3-bit layer is stored in int8).
        uint8_activations: every activation in uint8, signed codes at zero point 128 (ONNX Runtime: its x86
            QDQ fusion needs uint8 on both sides of a conv; int8 or mixed types run float). Same codes.
        explicit_integer_ops: lower quantized convs/linears ONNX Runtime cannot fuse (their output feeds two
            quantizers, or a pooling layer) to ConvInteger/MatMulInteger + DequantizeLinear instead of
            DequantizeLinear -> float Conv. Needs uint8_activations.
        slice_strided_pointwise: run a strided 1x1 conv as an integer Slice + stride-1 conv (exact; OpenVINO
            runs strided 1x1 convs on QDQ inputs in f32, e.g. every ResNet downsample shortcut).
        quantize_before_maxpool: give a MaxPool read by one quantizer that quantizer on its input too
            (exact; OpenVINO then fuses it into the conv before the pool and pools u8 codes instead of
            running the ResNet stem's conv output, MaxPool and quantizer in f32).
        split_shared_add: give each quantizer reading a quantized Add its own copy of the Add (exact; ONNX
            Runtime fuses QLinearAdd only for an Add with one reader, and mixed-precision residual sums have
            two: the next conv's a-bit quantizer and the 8-bit residual one).
        split_shared_pool: give each quantizer reading a MaxPool its own copy of the pool, with the
            quantizer moved before it as in ``quantize_before_maxpool``, then each quantizer reading a
            conv its own copy of the conv (exact; ONNX Runtime ran a mixed-precision ResNet stem, whose
            pooled output has two quantizers, as a float conv; two QLinearConvs measured faster).
        code_arithmetic: run each quantized conv/linear on its integer codes in float and scale the result
            once by ``s_in * s_w`` (``export.passes.code_arithmetic``): for engines that run the graph in
            float (TVM), the accumulation is then exact below 2^24 and far fewer near-tie codes flip.
    """

    opset: int = 17
    per_channel: bool = True
    symmetric_int8: bool = False
    power_of_two_scales: bool = False
    clip_pattern: str = "qcdq"
    container_bits: int = 8
    uint8_activations: bool = False
    explicit_integer_ops: bool = False
    slice_strided_pointwise: bool = False
    quantize_before_maxpool: bool = False
    split_shared_add: bool = False
    split_shared_pool: bool = False
    code_arithmetic: bool = False

    def __post_init__(self) -> None:
        for name in _FLAGS:
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be a bool, got {getattr(self, name)!r}")
        if self.symmetric_int8 and self.uint8_activations:
            raise ValueError("symmetric_int8 and uint8_activations exclude each other; pick the target's one")
        if self.explicit_integer_ops and not self.uint8_activations:
            raise ValueError(
                "explicit_integer_ops needs uint8_activations=True (ConvInteger takes uint8 inputs)"
            )
        if self.code_arithmetic and self.explicit_integer_ops:
            raise ValueError(
                "code_arithmetic and explicit_integer_ops exclude each other; pick the target's one"
            )
        if self.opset < 17:
            raise ValueError(f"opset must be >= 17, got {self.opset}")
        if self.clip_pattern not in CLIP_PATTERNS:
            raise ValueError(f"clip_pattern must be one of {CLIP_PATTERNS}, got {self.clip_pattern!r}")
        if self.container_bits != 8:
            raise ValueError("only 8-bit integer containers are supported by ONNX QDQ engines")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LoweringOptions:
        return cls(**dict(data))

    def key(self) -> str:
        """A short stable name for the artifact this lowering produces (targets sharing it share a file)."""
        parts = [f"op{self.opset}", "pc" if self.per_channel else "pt", self.clip_pattern]
        parts += [tag for flag, tag in _KEY_TAGS.items() if getattr(self, flag)]
        return "-".join(parts)
