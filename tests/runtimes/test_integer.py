"""The integer runtime: accumulator bounds and exact GEMM (hypothesis), the graph compiler, the Session
protocol, the package's one-way imports, and code-by-code parity over the model zoo with
both the exact semantics of the QDQ graph and the PyTorch fake-quant model. Issue #5's figures (every zoo
model x 3 configs, 1,000 inputs, against the fake-quant model in float64) are in tests/export/test_parity.py,
which shares that costly reference with ONNX Runtime's figures. Requantization arithmetic is tested in
test_integer_dyadic.py, the cycle model in test_integer_cost.py."""

from __future__ import annotations

import ast
import functools
import math
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import sdk
from runtimes import Session, get_runtime
from runtimes.base import RuntimeOptions
from runtimes.integer import IntegerSession, compile_model, load_model
from runtimes.integer.kernels import IntWeights, accumulator_bound, conv2d, depthwise_conv2d
from runtimes.integer.lower import code_table
from runtimes.integer.values import Codes, Deq
from sdk.errors import BundleError, InputError
from tests.runtimes._bundles import make_bundle, make_model, manifest_of, random_input
from tests.runtimes._integer_reference import (
    build_quantized,
    export_qdq,
    float64_codes,
    torch_codes,
    torch_quantizer_for,
    zoo_input_shape,
)

ROOT = Path(__file__).resolve().parents[2]
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- accumulator bound and exact GEMM ----------------------------------------------------------------------
@FAST
@given(
    w_bits=st.integers(2, 8),
    a_bits=st.integers(2, 8),
    signed=st.booleans(),
    k=st.integers(1, 3000),
    cout=st.integers(1, 5),
    extreme=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_gemm_is_exact_within_the_proven_bound(w_bits, a_bits, signed, k, cout, extreme, seed):
    rng = np.random.default_rng(seed)
    n = 2 ** (w_bits - 1) - 1
    lo, hi = (-(2 ** (a_bits - 1) - 1), 2 ** (a_bits - 1) - 1) if signed else (0, 2**a_bits - 1)
    w = rng.integers(-n, n + 1, size=(k, cout))
    a = rng.integers(lo, hi + 1, size=(7, k))
    if extreme:  # the worst case the bound is tight for
        w[:] = n
        a[:] = hi
    a_max = max(-lo, hi)
    bound = int(np.abs(w).sum(axis=0).max()) * a_max
    assert bound <= accumulator_bound(k, n, a_max)
    weights = IntWeights.prepare(w[None], a_max, bound)
    got = weights.matmul(a.astype(np.float32))
    want = a.astype(np.int64) @ w.astype(np.int64)
    assert np.array_equal(got.astype(np.int64), want)
    assert np.abs(want).max() <= bound
    if bound >= 2**24:
        assert len(weights.splits) > 2 or weights.acc_dtype is np.float64


def test_worst_case_accumulator_above_float32_range_stays_exact():
    k = 4608  # ResNet-18 layer4 3x3x512 at (8, 8): 4608 * 127 * 255 > 2^27
    w = np.full((1, k, 2), 127)
    a = np.full((1, k), 255, dtype=np.float32)
    weights = IntWeights.prepare(w, 255, accumulator_bound(k, 127, 255))
    assert len(weights.splits) > 2 and weights.acc_dtype is np.float64
    assert weights.matmul(a).tolist() == [[k * 127 * 255] * 2]


@FAST
@given(
    n=st.integers(1, 2),
    c=st.sampled_from([1, 3, 4, 8]),
    hw=st.integers(3, 9),
    k=st.sampled_from([1, 2, 3]),
    stride=st.integers(1, 2),
    pad=st.integers(0, 1),
    dil=st.integers(1, 2),
    grouping=st.sampled_from(["dense", "grouped", "depthwise"]),
    seed=st.integers(0, 2**16),
)
def test_conv_kernels_are_exact(n, c, hw, k, stride, pad, dil, grouping, seed):
    assume(hw + 2 * pad >= dil * (k - 1) + 1)
    rng = np.random.default_rng(seed)
    groups = {"dense": 1, "grouped": math.gcd(c, 2), "depthwise": c}[grouping]
    cout = c if grouping == "depthwise" else 2 * groups
    w = rng.integers(-127, 128, size=(cout, c // groups, k, k))
    x = rng.integers(0, 256, size=(n, hw, hw, c)).astype(np.uint8)
    geometry = {"kernel": (k, k), "strides": (stride, stride), "pads": (pad,) * 4, "dilations": (dil, dil)}
    bound = accumulator_bound(k * k * c // groups, 127, 255)
    if grouping == "depthwise":
        got = depthwise_conv2d(x, w.reshape(c, k * k).T.astype(np.float64), **geometry)
    else:
        og = cout // groups
        wg = np.stack([w[g * og : (g + 1) * og].transpose(2, 3, 1, 0).reshape(-1, og) for g in range(groups)])
        got = conv2d(x, IntWeights.prepare(wg, 255, bound), **geometry)
    want = torch.nn.functional.conv2d(
        torch.from_numpy(x.transpose(0, 3, 1, 2).astype(np.float64)), torch.from_numpy(w.astype(np.float64)),
        stride=stride, padding=pad, dilation=dil, groups=groups,
    ).numpy().transpose(0, 2, 3, 1)  # fmt: skip
    assert np.array_equal(got, want)


def _deq(scale: float, lo: int, hi: int) -> Deq:
    s = Fraction(float(np.float32(scale)))
    return Deq(Codes(0, s, lo, hi, (1,)), s, (1,))


def test_code_tables_are_the_exact_rounding():
    """Every entry is round_half_even(qa * sa / s + qb * sb / s) in rationals, clamped, where float32 is not:
    sa = 0.5 + 2^-24 puts every odd qa 2^-24 * qa above a tie, below float32's resolution."""
    rng = np.random.default_rng(0)
    cases = [(0.5 + 2**-24, 0.25, 1.0, -127, 127), (0.5, 0.25, 1.0, -20, 20)]  # near-ties, then exact ties
    cases.append((*rng.uniform(0.01, 0.1, 3), 0, 15))
    float32_differs = False
    for sa, sb, s, lo, hi in cases:
        a, b, out = _deq(sa, -127, 127), _deq(sb, 0, 255), Fraction(float(np.float32(s)))
        table = code_table([a, b], out, lo, hi).reshape(255, 256)
        qa, qb = np.meshgrid(np.arange(-127, 128), np.arange(0, 256), indexing="ij")
        want = [
            max(lo, min(hi, round((int(x) * a.scale + int(y) * b.scale) / out)))
            for x, y in zip(qa.flat, qb.flat)
        ]
        assert table.reshape(-1).tolist() == want
        f32 = np.clip(
            np.rint((qa * np.float32(sa) + qb * np.float32(sb)).astype(np.float32) / np.float32(s)), lo, hi
        )
        float32_differs |= not np.array_equal(f32, table)
    assert float32_differs  # the cases reach what float32 cannot resolve


# -- graphs -------------------------------------------------------------------------------------------------
def _qdq(nodes, inits, x, name, scale, lo, hi, signed):
    dt = np.int8 if signed else np.uint8
    inits += [numpy_helper.from_array(np.array(scale, np.float32), f"{name}.s"),
              numpy_helper.from_array(np.array(0, dt), f"{name}.z"),
              numpy_helper.from_array(np.array(lo, dt), f"{name}.lo"),
              numpy_helper.from_array(np.array(hi, dt), f"{name}.hi")]  # fmt: skip
    q, c = f"{name}.q", f"{name}.c"
    nodes += [helper.make_node("QuantizeLinear", [x, f"{name}.s", f"{name}.z"], [q], name=q),
              helper.make_node("Clip", [q, f"{name}.lo", f"{name}.hi"], [c], name=c),
              helper.make_node("DequantizeLinear", [f"{name}.c", f"{name}.s", f"{name}.z"], [f"{name}.dq"],
                               name=f"{name}.dq")]  # fmt: skip
    return f"{name}.dq"


def _weights(nodes, inits, name, w_codes, s_w, s_in, bias):
    s_b = (np.float32(s_in) * s_w).astype(np.float32)
    inits += [numpy_helper.from_array(w_codes.astype(np.int8), f"{name}.w"),
              numpy_helper.from_array(s_w, f"{name}.ws"),
              numpy_helper.from_array(np.zeros_like(s_w, np.int8), f"{name}.wz"),
              numpy_helper.from_array(np.round(bias / s_b).astype(np.int32), f"{name}.b"),
              numpy_helper.from_array(s_b, f"{name}.bs"),
              numpy_helper.from_array(np.zeros_like(s_b, np.int32), f"{name}.bz")]  # fmt: skip
    axis = 0 if w_codes.ndim == 4 else 1
    nodes += [helper.make_node("DequantizeLinear", [f"{name}.w", f"{name}.ws", f"{name}.wz"], [f"{name}.wdq"],
                               axis=axis),
              helper.make_node("DequantizeLinear", [f"{name}.b", f"{name}.bs", f"{name}.bz"], [f"{name}.bdq"],
                               axis=0)]  # fmt: skip
    return f"{name}.wdq", f"{name}.bdq"


def _odd_graph(mid_op: str = "Clip") -> onnx.ModelProto:
    """conv -> ReLU6 -> AveragePool 2x2 -> Q -> conv -> ReduceMean -> Reshape -> Q -> MatMul + Add -> Q."""
    rng = np.random.default_rng(3)
    nodes: list = []
    inits: list = []
    x = _qdq(nodes, inits, "input", "in", 0.02, -127, 127, True)
    w, b = _weights(
        nodes,
        inits,
        "c1",
        rng.integers(-7, 8, (6, 3, 3, 3)),
        rng.uniform(0.01, 0.05, 6).astype(np.float32),
        0.02,
        rng.normal(0, 0.1, 6),
    )
    nodes.append(
        helper.make_node("Conv", [x, w, b], ["c1.o"], name="c1", kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    )
    inits += [
        numpy_helper.from_array(np.array(0, np.float32), "zero"),
        numpy_helper.from_array(np.array(6, np.float32), "six"),
    ]
    if mid_op == "Clip":
        nodes.append(helper.make_node("Clip", ["c1.o", "zero", "six"], ["c1.r"], name="relu6"))
    else:
        nodes.append(helper.make_node(mid_op, ["c1.o"], ["c1.r"], name="odd"))
    nodes.append(
        helper.make_node("AveragePool", ["c1.r"], ["p1"], name="avg", kernel_shape=[2, 2], strides=[2, 2])
    )
    x = _qdq(nodes, inits, "p1", "a2", 0.05, 0, 15, False)
    w, b = _weights(
        nodes,
        inits,
        "c2",
        rng.integers(-3, 4, (5, 6, 1, 1)),
        rng.uniform(0.01, 0.05, 5).astype(np.float32),
        0.05,
        rng.normal(0, 0.1, 5),
    )
    nodes.append(helper.make_node("Conv", [x, w, b], ["c2.o"], name="c2", kernel_shape=[1, 1]))
    nodes.append(helper.make_node("ReduceMean", ["c2.o"], ["m"], name="mean", axes=[2, 3], keepdims=1))
    inits.append(numpy_helper.from_array(np.array([0, -1], np.int64), "shape"))
    nodes.append(helper.make_node("Reshape", ["m", "shape"], ["flat"], name="reshape"))
    x = _qdq(nodes, inits, "flat", "a3", 0.01, -7, 7, True)
    w, b = _weights(
        nodes,
        inits,
        "fc",
        rng.integers(-31, 32, (5, 4)),
        rng.uniform(0.01, 0.05, 4).astype(np.float32),
        0.01,
        rng.normal(0, 0.1, 4),
    )
    nodes.append(helper.make_node("MatMul", [x, w], ["fc.mm"], name="fc"))
    nodes.append(helper.make_node("Add", ["fc.mm", b], ["fc.o"], name="fc.bias"))
    x = _qdq(nodes, inits, "fc.o", "out", 0.05, -127, 127, True)
    nodes.append(helper.make_node("Identity", [x], ["logits"], name="logits"))
    graph = helper.make_graph(
        nodes,
        "odd",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 4])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_lowers_relu6_average_pool_reduce_mean_reshape_and_matmul_exactly():
    model = _odd_graph()
    s = load_model(model)
    x = np.random.default_rng(0).normal(0, 1, (64, 3, 8, 8)).astype(np.float32)
    got, want = s.run_codes(x), float64_codes(model, x)
    assert set(got) == set(want)
    for k in want:
        assert np.array_equal(got[k], want[k]), k
    assert [layer.name for layer in s.layers()] == ["c1", "c2", "fc"]


def test_folds_a_float_clip_of_the_input_into_the_input_codes():
    model = make_model({layer: (8, 8) for layer in ("conv1", "conv2", "conv3", "fc")})
    q = next(n for n in model.graph.node if n.op_type == "QuantizeLinear")
    model.graph.initializer.extend([numpy_helper.from_array(np.array(v, np.float32), n)
                                    for n, v in (("in.min", -0.7), ("in.max", 1.1))])  # fmt: skip
    clip = helper.make_node("Clip", ["input", "in.min", "in.max"], ["input.clipped"], name="input.clip")
    q.input[0] = "input.clipped"
    model.graph.node.insert(0, clip)
    x = random_input(16, seed=2) * 3
    got, want = load_model(model).run_codes(x), float64_codes(model, x)
    assert all(np.array_equal(got[k], v) for k, v in want.items())
    assert got[q.output[0]].max() < 127 and got[q.output[0]].min() > -127  # the clip bit


def test_refuses_float_between_quantizers_naming_the_op():
    with pytest.raises(BundleError, match=r"Sigmoid.*'odd'"):
        load_model(_odd_graph("Sigmoid"))


def test_refuses_float_layers_naming_them():
    model = make_model({"conv1": (8, 8), "conv2": (32, 8), "conv3": (8, 8), "fc": (8, 8)})
    with pytest.raises(BundleError, match="conv2"):
        load_model(model)


def test_refuses_nonzero_zero_points():
    model = make_model({layer: (8, 8) for layer in ("conv1", "conv2", "conv3", "fc")})
    for init in model.graph.initializer:
        if init.name == "conv2.act.zp":
            init.CopyFrom(numpy_helper.from_array(np.array(3, np.uint8), init.name))
    with pytest.raises(BundleError, match="zero point"):
        load_model(model)


# -- the Session protocol -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    pairs = {"conv1": (8, 8), "conv2": (4, 4), "conv3": (3, 5), "fc": (6, 4)}
    return make_bundle(tmp_path_factory.mktemp("integer"), pairs=pairs, targets=("integer",))


def test_loads_through_the_registry_and_follows_the_protocol(bundle):
    s = get_runtime("integer")(bundle / "model.onnx", manifest_of(bundle), RuntimeOptions(profiling=True))
    assert isinstance(s, Session)
    x = random_input(3)
    y = s.run(x)["logits"]
    assert y.dtype == np.float32 and y.shape == (3, 10)
    precisions = s.effective_precision()
    assert [(p.layer, p.kernel, p.precision, p.upcast) for p in precisions] == [
        ("conv1", "int-gemm", "w8a8", False), ("conv2", "int-gemm", "w4a4", False),
        ("conv3", "int-gemm", "w3a5", False), ("fc", "int-gemm", "w6a4", False),
    ]  # fmt: skip
    times = s.layer_times()
    assert times is not None and {"conv1", "conv2", "conv3", "fc"} <= {t.name for t in times}
    assert all(t.ms >= 0 for t in times)
    s.close()
    with pytest.raises(InputError, match="closed"):
        s.run(x)


def test_matches_onnxruntime_on_the_tiny_bundle(bundle):
    ort = pytest.importorskip("onnxruntime")
    x = random_input(16, seed=4)
    ref = ort.InferenceSession(str(bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    got = load_model(bundle / "model.onnx", options=RuntimeOptions(threads=1)).run(x)["logits"]
    np.testing.assert_array_equal(got, ref.run(None, {"input": x})[0])


def test_rejects_bad_inputs_and_options(bundle):
    s = load_model(bundle / "model.onnx")
    with pytest.raises(InputError, match="expected input"):
        s.run(np.zeros((1, 3, 9, 9), np.float32))
    with pytest.raises(InputError, match="NaN"):
        s.run(np.full((1, 3, 8, 8), np.nan, np.float32))
    with pytest.raises(InputError, match="no extra options; got 'spec_tables'"):
        load_model(bundle / "model.onnx", options=RuntimeOptions(extra={"spec_tables": False}))
    assert s.layer_times() is None


def test_deploy_path_is_torch_free():
    code = "import sys, runtimes.integer; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- the package -------------------------------------------------------------------------------------------
def test_the_integer_package_imports_without_a_cycle():
    """The modules of runtimes/integer import each other one way (an ast walk, no execution)."""
    pkg = ROOT / "runtimes" / "integer"
    deps: dict[str, set[str]] = {}
    for path in pkg.glob("*.py"):
        tree = ast.parse(path.read_text())
        names = set()
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom) or not (node.module or "").startswith("runtimes.integer"):
                continue
            if node.module == "runtimes.integer":  # from runtimes.integer import kernels
                names.update(a.name for a in node.names)
            else:
                names.add(str(node.module).removeprefix("runtimes.integer."))
        deps[path.stem] = {n for n in names if (pkg / f"{n}.py").exists()}
    done: set[str] = set()
    while len(done) < len(deps):
        ready = {m for m, d in deps.items() if m not in done and d <= done}
        assert ready, f"import cycle among {sorted(set(deps) - done)}"
        done |= ready


# -- the zoo ------------------------------------------------------------------------------------------------
ZOO = [pytest.param(name, seed, id=f"{name}-cfg{seed}") for name in sdk.models.names() for seed in (0, 1)]
ZOO_GROUP = pytest.mark.xdist_group(
    "integer_zoo"
)  # one worker builds each zoo model once (`--dist loadgroup`)


@functools.cache
def _zoo(name: str, seed: int) -> tuple[torch.nn.Module, onnx.ModelProto]:
    """The zoo model with random BN statistics and a random mixed config (seeded), folded and exported."""
    qmodel, _ = build_quantized(name, seed=seed, calib=8)
    return qmodel, export_qdq(qmodel, zoo_input_shape(name))


def _inputs(name: str, n: int) -> np.ndarray:
    return np.random.default_rng(7).normal(size=(n, *zoo_input_shape(name))).astype(np.float32)


@ZOO_GROUP
@pytest.mark.parametrize(("name", "seed"), ZOO)
def test_zoo_codes_equal_the_exact_semantics(name, seed):
    """With dyadic arithmetic throughout, every code equals a float64 evaluation of the graph, end to end."""
    _, model = _zoo(name, seed)
    x = _inputs(name, 4)
    s = IntegerSession(compile_model(model))
    got, want = s.run_codes(x), float64_codes(model, x)
    total = sum(v.size for v in want.values())
    same = sum(int((got[k] == v).sum()) for k, v in want.items())
    assert same / total >= 0.999999, f"{total - same} of {total} codes differ"


@ZOO_GROUP
@pytest.mark.parametrize(("name", "seed"), ZOO)
def test_zoo_codes_match_the_fake_quant_model(name, seed):
    """Each quantizer, fed the PyTorch codes of its inputs, gives the PyTorch codes on >= 99.99% of elements.

    Feeding isolates each quantizer: end to end, a float32 rounding difference of the reference on a near-tie
    (~1e-6 of elements) propagates and spreads through low-bit layers (examples/bench_integer.py --parity
    measures both on 1000 inputs)."""
    qmodel, model = _zoo(name, seed)
    x = _inputs(name, 8)
    s = load_model(model)
    ref, _ = torch_codes(qmodel, torch.from_numpy(x))
    last = s.layers()[-1].name
    want = {q.name: ref[torch_quantizer_for(q, last)[0]] for q in s.quantizers()}
    assert len(want) == sum(isinstance(m, sdk.quant.ActQuantizer) for m in qmodel.modules())
    fed = s.run_codes(x, feed=want)
    total = sum(v.size for v in want.values())
    same = sum(int((fed[k] == v).sum()) for k, v in want.items())
    assert same / total >= 0.9999, f"{total - same} of {total} codes differ"


@ZOO_GROUP
@pytest.mark.parametrize("seed", [0, 1])
def test_top1_and_codes_match_end_to_end_on_1000_inputs(seed):
    qmodel, model = _zoo("digits_cnn", seed)
    x = _inputs("digits_cnn", 1000)
    s = load_model(model)
    ref, logits = torch_codes(qmodel, torch.from_numpy(x))
    last = s.layers()[-1].name
    got = s.run_codes(x)
    want = {q.name: ref[torch_quantizer_for(q, last)[0]] for q in s.quantizers()}
    total = sum(v.size for v in want.values())
    same = sum(int((got[k] == v).sum()) for k, v in want.items())
    assert same / total >= 0.9999, f"{total - same} of {total} codes differ"
    assert np.array_equal(s.run(x)["logits"].argmax(1), logits.argmax(1))
