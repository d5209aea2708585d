"""MixedPrecisionConfig: validation, JSON round trip, uniform construction."""

import json

import pytest
from torch import nn

from sdk import ConfigError, MixedPrecisionConfig


def _net():
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2))


def test_uniform_names_every_conv_and_linear():
    cfg = MixedPrecisionConfig.uniform(_net(), 4, 4)
    assert list(cfg) == ["0", "3"] and cfg["0"] == (4, 4)


def test_json_round_trip(tmp_path):
    cfg = MixedPrecisionConfig({"a": (2, 4), "b": (8, 32)})
    path = tmp_path / "c.json"
    cfg.to_json(path)
    assert MixedPrecisionConfig.from_json(path) == cfg
    data = json.loads(path.read_text())
    assert data["format_version"] == 1 and data["layers"]["a"] == [2, 4]


@pytest.mark.parametrize("pair", [(1, 4), (9, 4), (4, 16), (4.0, 4), (True, 4), (4,), "44", (4, None)])
def test_bad_bits_rejected(pair):
    with pytest.raises(ConfigError):
        MixedPrecisionConfig({"x": pair})


def test_unknown_and_missing_layers_rejected():
    net = _net()
    cfg = MixedPrecisionConfig.uniform(net, 4, 4)
    cfg["nope"] = (4, 4)
    with pytest.raises(ConfigError, match="does not have"):
        cfg.validate_for(net)
    cfg2 = MixedPrecisionConfig({"0": (4, 4)})
    with pytest.raises(ConfigError, match="no bits"):
        cfg2.validate_for(net)


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        MixedPrecisionConfig.from_json(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        MixedPrecisionConfig.from_json(bad)
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps({"format_version": 99, "layers": {}}))
    with pytest.raises(ConfigError, match="newer"):
        MixedPrecisionConfig.from_json(newer)
