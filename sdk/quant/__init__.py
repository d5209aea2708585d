"""Fake-quantization modules (Eq. 1) and sdk.quantize."""

from sdk.quant.convert import config_of, is_quantized, quant_layers, quantize, set_bits
from sdk.quant.layers import quantizable_layer_names, quantizable_layers
from sdk.quant.modules import QuantAdd, QuantConv2d, QuantLinear
from sdk.quant.quantizers import ActQuantizer, WeightQuantizer, code_range, fake_quant

__all__ = [
    "ActQuantizer",
    "QuantAdd",
    "QuantConv2d",
    "QuantLinear",
    "WeightQuantizer",
    "code_range",
    "config_of",
    "fake_quant",
    "is_quantized",
    "quant_layers",
    "quantizable_layer_names",
    "quantizable_layers",
    "quantize",
    "set_bits",
]
