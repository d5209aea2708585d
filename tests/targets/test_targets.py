"""Targets: every registered target is valid data, rounds bit pairs sensibly and says how to install."""

from __future__ import annotations

import importlib.util
import sys

import pytest

import targets
from export.options import LoweringOptions
from export.passes.registry import check_lowering
from sdk.config import FLOAT_BITS
from sdk.cost import BopsReport, LayerCost
from sdk.errors import TargetUnavailable
from targets.base import CHECKS, INT_BITS, CostModel, Target, all_pairs

ALL = targets.names()
PAIRS = all_pairs(INT_BITS)


def test_builtin_targets_are_registered():
    assert set(ALL) == {"onnxruntime", "openvino", "tvm", "tensorrt", "jetson", "integer", "hls4ml"}
    assert targets.aliases()["fpga"] == "integer"
    assert "x86" in targets.aliases()


@pytest.mark.parametrize("name", ALL)
def test_round_trips_through_dict(name):
    t = targets.get(name)
    assert Target.from_dict(t.to_dict()) == t
    assert t.name == name and t.runtime and t.engine_modules


def test_each_engine_names_the_distribution_bundles_record():
    dists = {n: targets.get(n).distribution for n in ALL}
    assert dists["tvm"] == "apache-tvm" and dists["integer"] == "bpnas" and dists["openvino"] == "openvino"


@pytest.mark.parametrize("name", ALL)
def test_deployed_pair_never_narrower_and_native_is_identity(name):
    t = targets.get(name)
    for w, a in PAIRS:
        dw, da = t.deployed_pair(w, a)
        assert dw >= w and da >= a
        assert (dw, da) in t.native_pairs or (dw, da) == (FLOAT_BITS, FLOAT_BITS)
        if t.is_native(w, a):
            assert (dw, da) == (w, a)
    if t.float_layers:
        assert t.deployed_pair(32, 4) == (FLOAT_BITS, FLOAT_BITS)
        assert t.deployed_pair(4, 32) == (FLOAT_BITS, FLOAT_BITS)
        assert t.unsupported({"a": (32, 8), "b": (3, 3)}) == []
    else:
        with pytest.raises(ValueError, match="integer layers only"):
            t.deployed_pair(32, 4)
        assert t.unsupported({"a": (32, 8), "b": (3, 3)}) == ["a"]


@pytest.mark.parametrize("name", ["onnxruntime", "openvino", "tvm", "tensorrt", "jetson"])
def test_x86_and_gpu_engines_use_int8_containers(name):
    t = targets.get(name)
    assert t.native_pairs == ((8, 8),)
    assert {t.deployed_pair(w, a) for w, a in PAIRS} == {(8, 8)}


def test_integer_target_runs_every_pair_natively():
    t = targets.get("fpga")
    assert t.name == "integer" and not t.float_layers
    assert all(t.deployed_pair(w, a) == (w, a) for w, a in PAIRS)


def test_lowering_is_a_pass_list_per_target():
    assert "int8_activations" in targets.get("tensorrt").lowering
    assert targets.get("jetson").lowering == targets.get("tensorrt").lowering  # one shared artifact
    assert targets.get("jetson").runtime == targets.get("tensorrt").runtime == "tensorrt"  # one adapter
    ort = targets.get("onnxruntime").lowering
    assert "uint8_activations" in ort and "int8_activations" not in ort  # ORT fuses only same-type QDQ groups
    from targets.integer import POW2

    pow2 = targets.get("integer").replace(lowering=POW2)
    assert "power_of_two_check" in pow2.lowering and pow2.name == "integer"


@pytest.mark.parametrize("name", ALL)
def test_every_lowering_follows_the_pass_rules(name):
    assert check_lowering(targets.get(name).lowering) == targets.get(name).lowering


def test_deployed_report_prices_at_deployed_precision():
    rep = BopsReport((LayerCost("a", 100, 10, 3, 4), LayerCost("b", 50, 5, 8, 32)))
    ort = targets.get("onnxruntime").deployed_report(rep)
    assert [(r.w_bits, r.a_bits) for r in ort.layers] == [(8, 8), (32, 32)]
    assert ort.bops == 100 * 64 + 50 * 1024
    assert targets.get("integer").deployed_report(BopsReport(rep.layers[:1])).layers[0].bops == 100 * 12


def test_available_matches_engines_installed_here():
    avail = targets.available()
    assert set(avail) <= set(ALL)
    assert "onnxruntime" in avail  # a core dependency
    for name in ALL:
        t = targets.get(name)
        engines = all(importlib.util.find_spec(m) is not None for m in t.engine_modules)
        if not engines:
            assert name not in avail
            assert f"pip install 'bpnas[{t.extra}]'" in targets.unavailable()[name]
    for name in ("openvino", "tvm", "integer"):  # installed with bpnas[all]
        if all(importlib.util.find_spec(m) for m in targets.get(name).engine_modules):
            assert name in avail


def test_missing_engine_names_the_pip_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "openvino" else real(n, *a))
    assert "openvino" not in targets.available()
    with pytest.raises(TargetUnavailable, match=r"pip install 'bpnas\[openvino\]'"):
        targets.get("openvino").require()


def test_tensorrt_needs_a_cuda_gpu(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: object() if n == "tensorrt" else real(n, *a)
    )
    monkeypatch.setitem(CHECKS, "cuda", (lambda: False, "needs an NVIDIA GPU"))
    reason = targets.get("tensorrt").unavailable_reason()
    assert reason is not None and "NVIDIA GPU" in reason
    monkeypatch.setitem(CHECKS, "cuda", (lambda: True, "needs an NVIDIA GPU"))
    assert targets.get("tensorrt").available()


def test_jetson_needs_aarch64(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: object() if n == "tensorrt" else real(n, *a)
    )
    monkeypatch.setitem(CHECKS, "cuda", (lambda: True, "gpu"))
    monkeypatch.setitem(CHECKS, "aarch64", (lambda: False, "runs on aarch64 (Jetson) only"))
    assert "aarch64" in (targets.get("jetson").unavailable_reason() or "")


def test_unknown_target_suggests_close_matches():
    with pytest.raises(TargetUnavailable, match=r"Did you mean 'openvino'"):
        targets.get("openvno")


def test_x86_alias_picks_best_installed_cpu_engine(monkeypatch):
    best = targets.resolve("x86")
    assert best.device == "cpu" and best.available()
    assert best.name == next(n for n in targets.X86_PREFERENCE if targets.get(n).available())
    assert targets.resolve("x86", among=["onnxruntime", "integer"]).name == "onnxruntime"
    with pytest.raises(TargetUnavailable, match="x86"):
        targets.resolve("x86", among=["integer"])


def test_duplicate_registration_raises():
    with pytest.raises(ValueError, match="already registered"):
        targets.register_target(targets.get("onnxruntime"))


@pytest.mark.parametrize(
    "changes",
    [
        {"device": "tpu"},
        {"arches": ()},
        {"arches": ("riscv",)},
        {"native_pairs": ()},
        {"native_pairs": ((9, 8),)},
        {"native_pairs": ((8, 8), (8, 8))},
        {"containers": (8, 4)},
        {"requires": ("quantum",)},
        {"engine_modules": ()},
        {"name": ""},
        {"lowering": {"opset": 17}},
        {"lowering": "merge_clips"},
        {"lowering": ("merge_clips", "merge_clips")},
        {"lowering": ("merge clips",)},
        {"aliases": ("x-86",)},
        {"engine_dist": ""},
    ],
)
def test_invalid_targets_are_refused(changes):
    with pytest.raises(ValueError):
        targets.get("onnxruntime").replace(**changes)


def test_listing_targets_imports_no_engine():
    code = (
        "import sys, targets; targets.names(); targets.available(); "
        "engines = ('torch', 'onnx', 'export', 'onnxruntime', 'openvino', 'tvm', 'tensorrt', 'qonnx'); "
        "bad = [m for m in engines if m in sys.modules]; "
        "assert not bad, bad"
    )
    import subprocess

    subprocess.run([sys.executable, "-c", code], check=True)


# -- cost model ----------------------------------------------------------------------------------------------
def test_bops_only_cost_model_has_no_cycles():
    rep = BopsReport((LayerCost("a", 1000, 10, 8, 8),))
    assert targets.get("openvino").cost.cycles(rep) is None
    assert targets.get("openvino").cost.latency_ms(rep) is None


def test_bit_serial_cycles_are_proportional_to_bops():
    cm = CostModel(mac_rows=4, mac_cols=8, clock_mhz=100.0)  # 1-bit units
    rep = BopsReport((LayerCost("a", 3200, 1, 8, 8), LayerCost("b", 1281, 1, 4, 3)))
    assert cm.cycles(rep) == 3200 * 64 // 32 + -(-1281 * 12 // 32)
    assert cm.latency_ms(rep) == pytest.approx(cm.cycles(rep) / 100e3)
    report = cm.cycles_report(rep)
    assert [layer.name for layer in report.layers] == ["a", "b"]


def test_int8_units_cost_one_cycle_per_mac():
    cm = CostModel(mac_rows=4, mac_cols=8, clock_mhz=100.0, w_unit=8, a_unit=8)
    rep = BopsReport((LayerCost("a", 3200, 1, 8, 8), LayerCost("b", 1281, 1, 2, 3)))
    assert cm.cycles(rep) == 100 + 41  # ceil(1281 / 32)


def test_float_layers_have_no_cycles():
    cm = targets.get("integer").cost
    assert cm.cycles(BopsReport((LayerCost("a", 10, 1, 32, 8),))) is None


def test_integer_cost_model_is_configurable():
    t = targets.get("integer").replace(
        cost=CostModel(mac_rows=64, mac_cols=64, clock_mhz=300.0, w_unit=8, a_unit=8)
    )
    rep = BopsReport((LayerCost("a", 64 * 64 * 10, 1, 8, 8),))
    assert t.cost.cycles(rep) == 10
    assert Target.from_dict(t.to_dict()).cost == t.cost


@pytest.mark.parametrize(
    "kwargs",
    [
        {"mac_rows": 4},
        {"mac_rows": 0, "mac_cols": 4, "clock_mhz": 1.0},
        {"mac_rows": 4, "mac_cols": 4, "clock_mhz": -1.0},
        {"w_unit": 16},
        {"a_unit": 0},
    ],
)
def test_bad_cost_models_are_refused(kwargs):
    with pytest.raises(ValueError):
        CostModel(**kwargs)


def test_artifact_keys_follow_the_pass_lists():
    keys = {n: LoweringOptions(targets.get(n).lowering).key() for n in ALL}
    assert keys["jetson"] == keys["tensorrt"]  # same list, one artifact file
    assert len(set(keys.values())) == len({targets.get(n).lowering for n in ALL})
    assert keys["integer"] != LoweringOptions().key()  # its weights are packed (pack_weights), no other's are


def test_available_any_scales_drops_only_power_of_two_targets():
    every, any_scales = targets.available(), targets.available(any_scales=True)
    assert set(any_scales) <= set(every)
    assert {n for n in every if targets.get(n).power_of_two_scales} == set(every) - set(any_scales)
    assert all(not targets.get(n).power_of_two_scales for n in any_scales)
