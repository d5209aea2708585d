"""sdk.modelspec: zoo names, package.module:Class and file.py:Class specs; float weights in the forms training
scripts save them; every user mistake is one InputError naming the fix."""

from __future__ import annotations

import pytest
import torch

import sdk
from sdk.modelspec import ModelSpec, build_model, load_weights, parse_model_args, read_state_dict

SRC = """
from torch import nn

class Small(nn.Module):
    def __init__(self, width=4):
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3)

    def forward(self, x):
        return self.conv(x)

NOT_A_CLASS = 3
class Plain:
    pass
"""


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "small.py"
    path.write_text(SRC)
    return path


def test_the_three_spec_forms_build_models(model_file, monkeypatch, tmp_path):
    zoo = build_model(ModelSpec.parse("digits_cnn"), num_classes=4, in_channels=1)
    assert zoo(torch.zeros(1, 1, 8, 8)).shape == (1, 4)
    spec = ModelSpec.parse(f"{model_file}:Small", {"width": 6})
    assert build_model(spec).conv.out_channels == 6 and spec.file == str(model_file.resolve())
    monkeypatch.syspath_prepend(str(tmp_path))
    assert type(build_model(ModelSpec.parse("small:Small"))).__name__ == "Small"
    assert ModelSpec.from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize(
    ("spec", "args", "message"),
    [
        ("{file}:Smal", None, "Did you mean Small"),
        ("{file}:Plain", None, "not a torch.nn.Module"),
        ("{file}:Small", {"depth": 2}, "--model-args"),
        ("{dir}/missing.py:Small", None, "does not exist"),
        ("no_such_module_xyz:Net", None, "cannot import module"),
        ("resnet21", None, "resnet20"),
        (":Net", None, "package.module:Class"),
    ],
)
def test_spec_mistakes_are_input_errors(model_file, spec, args, message):
    spec = spec.format(file=model_file, dir=model_file.parent)
    with pytest.raises(sdk.InputError, match=message):
        build_model(ModelSpec.parse(spec, args), num_classes=3)


def test_model_args_must_be_a_json_object():
    assert parse_model_args('{"width": 8}') == {"width": 8}
    for bad in ("[1]", "{width: 8}"):
        with pytest.raises(sdk.InputError, match="--model-args"):
            parse_model_args(bad)


@pytest.mark.parametrize("wrap", ["plain", "state_dict", "model_state_dict", "ddp"])
def test_weights_load_in_the_usual_forms(model_file, tmp_path, wrap):
    src = build_model(ModelSpec.parse(f"{model_file}:Small"))
    state = src.state_dict()
    blob = {
        "plain": state,
        "state_dict": {"state_dict": state, "epoch": 3},
        "model_state_dict": {"model_state_dict": state, "optimizer": {}},
        "ddp": {f"module.{k}": v for k, v in state.items()},
    }[wrap]
    torch.save(blob, tmp_path / "w.pt")
    dst = build_model(ModelSpec.parse(f"{model_file}:Small"))
    load_weights(dst, tmp_path / "w.pt")
    torch.testing.assert_close(dst.conv.weight, src.conv.weight)


def test_weights_that_do_not_fit_name_every_problem(model_file, tmp_path):
    model = build_model(ModelSpec.parse(f"{model_file}:Small"))
    torch.save({"conv.weight": torch.zeros(2, 3, 3, 3), "extra": torch.zeros(1)}, tmp_path / "w.pt")
    with pytest.raises(sdk.InputError) as e:
        load_weights(model, tmp_path / "w.pt")
    text = str(e.value)
    assert "missing: conv.bias" in text and "unexpected: extra" in text and "conv.weight (2, 3, 3, 3)" in text
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(sdk.InputError, match="not a state_dict"):
        read_state_dict(tmp_path / "list.pt")
    with pytest.raises(sdk.InputError, match="does not exist"):
        read_state_dict(tmp_path / "none.pt")
