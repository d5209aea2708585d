"""TVM adapter: QDQ parity with the ONNX reference, compiled-library cache, tuning records, warnings."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

from runtimes import RuntimeOptions
from sdk.errors import InputError, TargetUnavailable
from tests.runtimes._bundles import make_bundle, manifest_of, random_input, reference

pytestmark = [pytest.mark.tvm, pytest.mark.xdist_group("tvm")]  # one worker imports TVM, not both
STEP = 6.0 / 127  # one code of the tiny bundle's signed 8-bit output quantizer


def test_module_imports_without_importing_tvm():
    code = "import sys, runtimes.tvm; assert 'tvm' not in sys.modules, 'runtimes.tvm imported tvm'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_tvm_names_the_extra(monkeypatch):
    from runtimes import _tvm_build

    monkeypatch.setitem(sys.modules, "tvm", None)
    with pytest.raises(TargetUnavailable, match=r"bpnas\[tvm\]"):
        _tvm_build.import_tvm()


def test_broken_ffi_pairing_is_refused(monkeypatch):
    pytest.importorskip("tvm", reason="needs the tvm extra: pip install 'bpnas[tvm]'")
    import tvm
    import tvm_ffi

    from runtimes import _tvm_build

    monkeypatch.setattr(tvm, "__version__", "0.27.0.post1")
    monkeypatch.setattr(tvm_ffi, "__version__", "0.1.15.post2")
    with pytest.raises(TargetUnavailable, match="apache-tvm-ffi<0.1.15"):
        _tvm_build.check_serialization()
    monkeypatch.setattr(tvm_ffi, "__version__", "0.1.14.post1")
    _tvm_build.check_serialization()


def test_unknown_option_suggests_the_close_key():
    from runtimes.tvm import TvmOptions

    with pytest.raises(InputError, match="Did you mean 'tvm_trials'"):
        TvmOptions.from_extra({"tvm_trails": 3})
    with pytest.raises(InputError, match="tvm_batch"):
        TvmOptions.from_extra({"tvm_batch": 0})


# -- with TVM ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def rt():
    pytest.importorskip("tvm", reason="needs the tvm extra: pip install 'bpnas[tvm]'")
    from runtimes import tvm as rt

    return rt


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return make_bundle(tmp_path_factory.mktemp("tvm"))


@pytest.fixture(scope="module")
def first(rt, bundle, tmp_path_factory):
    """The first, compiling load of the tiny bundle, with its warnings."""
    cache = tmp_path_factory.mktemp("tvm_cache")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        session = rt.load(bundle / "model.onnx", manifest_of(bundle), RuntimeOptions(cache_dir=cache))
    return session, caught, cache


def test_matches_the_onnx_reference(first, bundle):
    session, _, _ = first
    for n in (1, 3):  # 3 runs the batch-1 library three times
        x = random_input(n, seed=n)
        y = session.run(x)["logits"]
        assert y.shape == (n, 10) and y.dtype == np.float32
        np.testing.assert_allclose(y, reference(bundle, x), atol=STEP * 1.01, rtol=0)


def test_matches_onnxruntime_without_graph_rewrites(first, bundle):
    """ORT with optimizations off runs the same float QDQ simulation: identical codes, hence tiny diffs."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    ref = ort.InferenceSession(str(bundle / "model.onnx"), so, providers=["CPUExecutionProvider"])
    x = random_input(4, seed=7)
    y, r = first[0].run(x)["logits"], ref.run(None, {"input": x})[0]
    assert np.abs(y - r).max() < 1e-4 and (y.argmax(1) == r.argmax(1)).all()


def test_untuned_load_warns(rt, first):
    session, caught, _ = first
    assert any(issubclass(w.category, rt.TvmUntunedWarning) for w in caught)
    assert not session.tuned and not session.from_cache


def test_second_load_reuses_the_cached_library(rt, first, bundle):
    session, _, cache = first
    assert session.library_path is not None and session.library_path.parent == cache
    with pytest.warns(rt.TvmUntunedWarning):
        again = rt.load(bundle / "model.onnx", manifest_of(bundle), RuntimeOptions(cache_dir=cache))
    assert again.from_cache
    x = random_input(2, seed=3)
    np.testing.assert_array_equal(again.run(x)["logits"], session.run(x)["logits"])
    assert len(list(cache.glob("*.so"))) == 1


def test_effective_precision_reports_the_float_upcast(first):
    prec = first[0].effective_precision()
    assert [p.layer for p in prec] == ["conv1", "conv2", "conv3", "fc"]
    assert [p.kernel for p in prec] == ["conv2d", "conv2d", "conv2d", "matmul"]
    assert all(p.precision == "f32" and p.upcast for p in prec), prec


def test_wrong_input_is_refused(first):
    with pytest.raises(InputError, match="compiled shape"):
        first[0].run(random_input(1, size=9))
    with pytest.raises(InputError, match="float32"):
        first[0].run(random_input(1).astype(np.float64))


def test_layer_times_only_when_profiling(rt, first, bundle):
    assert first[0].layer_times() is None
    cache = first[2]
    with pytest.warns(rt.TvmUntunedWarning):
        s = rt.load(
            bundle / "model.onnx", manifest_of(bundle), RuntimeOptions(cache_dir=cache, profiling=True)
        )
    s.run(random_input(2))
    times = s.layer_times()
    assert times and all(t.ms >= 0 for t in times)
    assert any(t.op_type == "conv2d" for t in times), times


def _records_or_skip():
    """Skip where this TVM/tvm-ffi pairing segfaults on writing records (the adapter refuses it instead)."""
    from runtimes import _tvm_build

    try:
        _tvm_build.check_serialization()
    except TargetUnavailable as e:
        pytest.skip(str(e))


def _identity_records(records, model_path):
    """A MetaSchedule database holding one no-op schedule per task: the record format `tune` writes,
    made without a search (MetaSchedule's first TuneContext costs ~25 s of CPU to import its intrinsics)."""
    import onnx
    import tvm
    from tvm.s_tir import meta_schedule as ms

    from runtimes import _tvm_build as tb
    from runtimes._tvm_tune import open_database

    model = onnx.load(str(model_path))
    target = tb.make_target(None, None)
    fused = tb.fused_module(tb.relax_module(model, "input", (1, 3, 8, 8)), target)
    db = open_database(records)
    for task in ms.relax_integration.extract_tasks(fused, target):
        mod = task.dispatched[0]
        sch = tvm.s_tir.Schedule(mod)
        sch.get_sblock("root", func_name="main")  # a trace with no instruction is not a record
        args = ms.arg_info.ArgInfo.from_prim_func(mod["main"])
        db.commit_tuning_record(
            ms.database.TuningRecord(sch.trace, db.commit_workload(mod), [1e-3], target, args)
        )
    return len(db)


def test_tuning_records_in_the_bundle_are_found_and_used(rt, tmp_path):
    _records_or_skip()
    bundle = make_bundle(tmp_path)  # its own bundle: the records would make the shared one tuned
    records = bundle / rt.DEFAULT_TUNING_DIR  # found without any option: bpnas keeps them in the bundle
    assert _identity_records(records, bundle / "model.onnx") >= 4
    with warnings.catch_warnings():
        warnings.simplefilter("error", rt.TvmUntunedWarning)  # records found: no untuned warning
        s = rt.load(bundle / "model.onnx", manifest_of(bundle), RuntimeOptions(cache_dir=tmp_path / "cache"))
    assert s.tuned and not s.from_cache
    tuned, kernels = map(int, s.tuned_kernels.split("/"))
    assert tuned == kernels >= 4
    x = random_input(2, seed=5)
    np.testing.assert_allclose(s.run(x)["logits"], reference(bundle, x), atol=STEP * 1.01, rtol=0)

    other = make_bundle(tmp_path / "other", size=10)  # other conv shapes; fc and the logits are alike
    opts = RuntimeOptions(cache_dir=tmp_path / "cache", extra={"tvm_tuning_dir": str(records)})
    with pytest.warns(rt.TvmUntunedWarning, match="kernels untuned"):
        s = rt.load(other / "model.onnx", manifest_of(other), opts)
    tuned, kernels = map(int, s.tuned_kernels.split("/"))
    assert 0 < tuned < kernels  # only the kernels with records count as tuned


def _tir_calls(mod):
    """(kernel name, argument shapes) of each call_tir in ``main``."""
    import tvm
    from tvm import relax

    calls = []

    def visit(e):
        if isinstance(e, relax.Call) and isinstance(e.op, tvm.ir.Op) and e.op.name == "relax.call_tir":
            calls.append((e.args[0].name_hint, [tuple(int(d) for d in a.ty.shape) for a in e.args[1].fields]))

    relax.analysis.post_order_visit(mod["main"].body, visit)
    return calls


def _fused_tiny(bundle):
    import onnx

    from runtimes import _tvm_build as tb

    target = tb.make_target(None, None)
    model = onnx.load(str(bundle / "model.onnx"))
    return tb.fused_module(tb.relax_module(model, "input", (1, 3, 8, 8)), target), target


def test_convolutions_run_channels_last(rt, bundle):
    """NHWC data, OHWI weights: MetaSchedule vectorizes over channels (ResNet-18: 2x faster than NCHW)."""
    fused, _ = _fused_tiny(bundle)
    convs = [args for name, args in _tir_calls(fused) if "conv2d" in name]
    assert len(convs) == 3
    assert convs[0][:2] == [(1, 8, 8, 3), (8, 3, 3, 3)]  # conv1: 3 -> 8 channels, 3x3, on 8x8


def test_weights_a_record_repacks_are_packed_at_compile_time(rt, tmp_path):
    """A record that reads conv weights in a blocked layout (MetaSchedule's RewriteLayout) gets them
    packed once by FoldConstant, not by a kernel on every call; the output stays exact."""
    _records_or_skip()
    import tvm
    from tvm.s_tir import meta_schedule as ms

    from runtimes import _tvm_build as tb
    from runtimes._tvm_tune import open_database

    bundle = make_bundle(tmp_path)
    fused, target = _fused_tiny(bundle)
    task = next(t for t in ms.relax_integration.extract_tasks(fused, target) if "conv2d" in t.task_name)
    mod = task.dispatched[0]
    assert 1 in mod["main"].attrs["layout_free_buffers"]  # the weight
    sch = tvm.s_tir.Schedule(mod)
    conv = next(b for b in sch.get_child_blocks(sch.get_sblock("root")) if "conv2d" in sch.get(b).name_hint)
    n, h, w, co, *_ = sch.get_loops(conv)
    sch.split(co, [None, 4])  # output channels in blocks of 4: the weights become (O/4, 4, H, W, I)
    space = ms.space_generator.PostOrderApply(sch_rules=[], postprocs=[], mutator_probs={})
    rewrite = ms.postproc.RewriteLayout()
    rewrite._initialize_with_tune_context(ms.TuneContext(mod=mod, target=target, space_generator=space))
    assert rewrite.apply(sch)
    db = open_database(bundle / rt.DEFAULT_TUNING_DIR)
    args = ms.arg_info.ArgInfo.from_prim_func(mod["main"])
    record = ms.database.TuningRecord(sch.trace, db.commit_workload(mod), [1e-3], target, args)
    db.commit_tuning_record(record)

    applied, tuned, _ = tb.apply_records(fused, target, db)
    assert tuned == 1
    with target:
        split = tvm.relax.transform.SplitLayoutRewritePreproc()(applied)
    assert any(k.endswith("_weight_prepack") for k, _ in _tir_calls(split))  # a repack kernel per call...
    packed = _tir_calls(tb.prepack_weights(applied, target))
    assert not any(k.endswith("_weight_prepack") for k, _ in packed)
    with pytest.warns(rt.TvmUntunedWarning, match="kernels untuned"):  # ...until folded at compile time
        s = rt.load(bundle / "model.onnx", manifest_of(bundle), RuntimeOptions(cache_dir=tmp_path / "cache"))
    x = random_input(2, seed=5)
    np.testing.assert_allclose(s.run(x)["logits"], reference(bundle, x), atol=STEP * 1.01, rtol=0)


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("BPNAS_TVM_TUNE_TEST"),
    reason="a real MetaSchedule search takes 1-4 min on 2 cores; set BPNAS_TVM_TUNE_TEST=1 to run it",
)
def test_tune_writes_records_that_load_reuses(rt, tmp_path):
    _records_or_skip()
    bundle = make_bundle(tmp_path)
    records = tmp_path / "records"
    # one trial for each task (the tiny model has 7): a partly tuned library would warn below
    rep = rt.tune(bundle / "model.onnx", records, trials=16, trials_per_task=1, latency_runs=1)
    assert rep.tasks >= 1 and rep.records_added >= 1 and rep.wall_s > 0
    assert (records / "tvm_tuning.json").is_file()
    extra = {"tvm_tuning_dir": str(records)}
    with warnings.catch_warnings():
        warnings.simplefilter("error", rt.TvmUntunedWarning)
        s = rt.load(
            bundle / "model.onnx", manifest_of(bundle), RuntimeOptions(cache_dir=tmp_path / "c", extra=extra)
        )
    assert s.tuned
    x = random_input(2, seed=5)
    np.testing.assert_allclose(s.run(x)["logits"], reference(bundle, x), atol=STEP * 1.01, rtol=0)
