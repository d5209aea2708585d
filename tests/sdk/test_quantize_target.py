"""sdk.quantize(..., target=): the model computes what the target runs (TensorRT: unsigned codes 0..127)."""

import pytest
import torch

import sdk
from sdk import InputError, MixedPrecisionConfig
from sdk.quant import ActQuantizer
from sdk.quant.convert import target_unsigned_act_bits


def _quantizers(q: torch.nn.Module) -> list[ActQuantizer]:
    return [m for m in q.modules() if isinstance(m, ActQuantizer)]


def test_tensorrt_caps_unsigned_8_bit_codes_at_127_and_leaves_signed_ones():
    torch.manual_seed(0)
    model = sdk.models.resnet20(num_classes=10).eval()
    q = sdk.quantize(model, MixedPrecisionConfig.uniform(model, 8, 8), target="tensorrt").eval()
    with torch.no_grad():
        q(torch.randn(8, 3, 16, 16))
    ranges = {(m.signed, m.range) for m in _quantizers(q)}
    assert ranges == {(True, (-127, 127)), (False, (0, 127))}
    plain = sdk.quantize(model, MixedPrecisionConfig.uniform(model, 8, 8)).eval()
    with torch.no_grad():
        plain(torch.randn(8, 3, 16, 16))
    assert (False, (0, 255)) in {(m.signed, m.range) for m in _quantizers(plain)}


def test_the_cap_leaves_narrower_codes_alone_and_comes_from_the_target():
    assert target_unsigned_act_bits("tensorrt") == target_unsigned_act_bits("jetson") == 7
    assert target_unsigned_act_bits("onnxruntime") == 8
    q = ActQuantizer(4, signed=False, unsigned_bits=7)
    assert q.range == (0, 15)
    q.bits = 8
    assert q.range == (0, 127)
    with pytest.raises(InputError, match="target name"):
        target_unsigned_act_bits(7)
    with pytest.raises(ValueError, match="2..8"):
        ActQuantizer(8, unsigned_bits=9)


def test_the_cap_travels_in_the_state_dict_and_old_state_dicts_still_load():
    src = ActQuantizer(8, signed=False, unsigned_bits=7)
    dst = ActQuantizer(8)
    dst.load_state_dict(src.state_dict())
    assert dst.range == (0, 127)
    old = {k: v for k, v in ActQuantizer(8, signed=False).state_dict().items() if k != "unsigned_bits"}
    fresh = ActQuantizer(8, unsigned_bits=7)
    fresh.load_state_dict(old)  # written before the cap existed: 8-bit unsigned codes
    assert fresh.range == (0, 255)
