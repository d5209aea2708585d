"""TensorRT adapter. The pure logic (options, version policy, cache keys, profile shapes, inspector JSON) and
the build/cache/run wiring against the CPU stand-in (tests/runtimes/_fake_tensorrt.py) run everywhere; the
engine tests need an NVIDIA GPU with TensorRT and skip elsewhere. Both build from a real bpnas export."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from runtimes import tensorrt as trt_adapter
from runtimes.base import RuntimeOptions
from runtimes.tensorrt import (
    TensorRTError,
    TensorRTOptions,
    bundle_facts,
    check_version,
    dla_supported,
    engine_cache_key,
    profile_shapes,
)
from sdk.errors import BundleError, InputError, TargetUnavailable
from tests.runtimes._fake_tensorrt import installed

ROOT = Path(__file__).resolve().parents[2]
GPU_REASON = "TensorRT/CUDA not available: needs an NVIDIA GPU with TensorRT 10.0-11.4"
needs_gpu = pytest.mark.skipif(not trt_adapter.available(), reason=GPU_REASON)


# -- a real bpnas export for target tensorrt (digits_cnn at (4, 4): exports with today's lowering) ----------
@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> tuple[Path, Any, np.ndarray, np.ndarray]:
    """(artifact, typed manifest, input batch, onnxruntime's outputs of the artifact for it)."""
    import onnxruntime as ort
    import torch

    import sdk
    from runtimes.bundle import read_manifest

    torch.manual_seed(0)
    model = sdk.models.create("digits_cnn", num_classes=10)
    qmodel = sdk.quantize(model, sdk.MixedPrecisionConfig.uniform(model, 4, 4)).eval()
    x = torch.randn(7, 1, 8, 8)
    with torch.no_grad():
        qmodel(x)
    path = tmp_path_factory.mktemp("trt") / "digits.bpnas"
    sdk.export(qmodel, path, example_input=x[:1], targets=["tensorrt"], inspect=False)
    manifest = read_manifest(path)
    artifact = manifest.artifact_path("tensorrt")
    xs = x.numpy()
    sess = ort.InferenceSession(str(artifact), providers=["CPUExecutionProvider"])
    return artifact, manifest, xs, sess.run(None, {sess.get_inputs()[0].name: xs})[0]


# -- import and availability ---------------------------------------------------------------------------------
def test_import_costs_nothing():
    code = "import sys, runtimes.tensorrt; print(sorted({'tensorrt', 'cuda', 'torch'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _has_tensorrt() -> bool:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(_has_tensorrt(), reason="tensorrt is installed here")
def test_missing_tensorrt_names_the_extra(tmp_path):
    assert trt_adapter.available() is False
    with pytest.raises(TargetUnavailable, match=r"pip install 'bpnas\[tensorrt\]'.*NVIDIA GPU"):
        trt_adapter.load(tmp_path / "model.onnx", {}, RuntimeOptions())


def test_no_cuda_device_is_target_unavailable(tmp_path):
    with installed() as (_, cudart):
        cudart.cudaGetDeviceCount = lambda: (0, 0)  # cudaSuccess, zero devices
        assert trt_adapter.available() is False
        with pytest.raises(TargetUnavailable, match=r"no CUDA device.*pip install 'bpnas\[tensorrt\]'"):
            trt_adapter.load(tmp_path / "model.onnx", None, RuntimeOptions(target="jetson"))  # type: ignore[arg-type]


# -- options and version policy ------------------------------------------------------------------------------
def test_options_defaults():
    opts = TensorRTOptions.from_extra({}, target="tensorrt")
    assert (opts.typing, opts.max_batch, opts.workspace_mb, opts.dla_core, opts.gpu_fallback) == (
        "strong", 32, None, None, False,
    )  # fmt: skip


def test_options_unknown_key_suggests():
    with pytest.raises(InputError, match="Did you mean 'max_batch'"):
        TensorRTOptions.from_extra({"max_bacth": 8}, target="tensorrt")


BAD_EXTRAS = [{"max_batch": 0}, {"max_batch": True}, {"max_batch": 8.0}, {"dla_core": -1}, {"dla_core": "0"},
              {"workspace_mb": 0}, {"typing": "mixed"}, {"gpu_fallback": "yes", "dla_core": 0},
              {"gpu_fallback": True}]  # fmt: skip


@pytest.mark.parametrize("extra", BAD_EXTRAS)
def test_options_bad_values(extra):
    with pytest.raises(InputError):
        TensorRTOptions.from_extra(extra, target="jetson")


def test_dla_core_only_on_jetson():
    assert TensorRTOptions.from_extra({"dla_core": 1}, target="jetson").dla_core == 1
    with pytest.raises(InputError, match="only valid for target 'jetson'"):
        TensorRTOptions.from_extra({"dla_core": 0}, target="tensorrt")


@pytest.mark.parametrize("version", ["8.6.1", "8.6.2.3", "9.3.0"])
def test_tensorrt_before_10_is_refused_with_the_upgrade(version):
    with pytest.raises(TargetUnavailable, match=r"too old.*JetPack 6 \(TensorRT 10.3\)"):
        check_version(version)


def test_supported_versions_pass_and_newer_warns():
    for version in ("10.0.1", "10.3.0.30", "10.16.1.11", "11.0.0.114", "11.4.0.106"):
        check_version(version)
    with pytest.warns(UserWarning, match="newer than the newest"):
        check_version("11.5.0")


@pytest.mark.parametrize(
    ("version", "dla"),
    [("10.0.1", True), ("10.3.0.30", True), ("10.7.0", True), ("10.8.0.43", False), ("10.16.1", False),
     ("11.0.0", False), ("11.3.0.99", False), ("11.4.0.106", False), ("11.4.1", True), ("11.5.0", False)],
)  # fmt: skip
def test_dla_supported(version, dla):
    assert dla_supported(version) is dla


# -- profile, cache key, manifest ----------------------------------------------------------------------------
def test_profile_shapes():
    assert profile_shapes((-1, 3, 32, 32), max_batch=16, performance_hint="latency") == (
        (1, 3, 32, 32), (1, 3, 32, 32), (16, 3, 32, 32),
    )  # fmt: skip
    assert profile_shapes([-1, 1, 8, 8], max_batch=4, performance_hint="throughput")[1] == (4, 1, 8, 8)
    static = profile_shapes((-1, 1, 8, 8), max_batch=4, performance_hint="latency", static=True)
    assert static == ((4, 1, 8, 8),) * 3  # DLA: min = opt = max
    with pytest.raises(InputError, match="performance_hint"):
        profile_shapes((-1, 3, 8, 8), max_batch=4, performance_hint="fast")


@pytest.mark.parametrize("shape", [(1, 3, 32, 32), (-1, 3, -1, 32), (-1, 32, 32)])
def test_profile_shapes_need_dynamic_batch_only(shape):
    with pytest.raises(BundleError):
        profile_shapes(shape, max_batch=8, performance_hint="latency")


def _key(**change):
    args = {
        "artifact_sha256": "ab" * 32,
        "gpu_name": "NVIDIA GeForce RTX 3080",
        "cc": (8, 6),
        "trt_version": "10.3.0",
        "build": {"typing": "strong", "max_batch": 32},
    }
    return engine_cache_key(**{**args, **change})


def test_cache_key_names_gpu_and_versions():
    assert _key() == _key()
    assert _key().startswith("nvidia-geforce-rtx-3080-sm86-trt10.3.0-")
    assert _key(gpu_name="Orin (nvgpu)").startswith("orin-nvgpu-sm86-")


@pytest.mark.parametrize(
    "change",
    [{"artifact_sha256": "cd" * 32}, {"gpu_name": "NVIDIA A100"}, {"cc": (8, 7)}, {"trt_version": "10.3.1"},
     {"build": {"typing": "weak", "max_batch": 32}}, {"build": {"typing": "strong", "max_batch": 8}}],
)  # fmt: skip
def test_cache_key_changes_with_every_input(change):
    assert _key(**change) != _key()


def test_bundle_facts(bundle):
    _, manifest, _, _ = bundle
    name, layers, floats = bundle_facts(manifest)
    assert name == manifest.input.name and layers == [n for n, _ in manifest.config.items()] and not floats


# -- the wiring against the CPU stand-in, on the real export -------------------------------------------------
def _load(bundle, tmp_path, target="tensorrt", **extra):
    artifact, manifest, _, _ = bundle
    return trt_adapter.load(
        artifact, manifest, RuntimeOptions(target=target, cache_dir=tmp_path, extra=extra)
    )


LAYOUTS = [
    ("10.0.1", "combined"),
    ("10.16.1.11", "combined"),
    ("11.0.0.114", "split"),
    ("11.4.0.106", "split"),
]


@pytest.mark.parametrize(("version", "layout"), LAYOUTS)
def test_strongly_typed_build_runs_and_reads_the_inspector(bundle, tmp_path, version, layout):
    _, manifest, x, ref = bundle
    with installed(version) as (fake, _):
        session = _load(bundle, tmp_path)
        got = session.run(x)
        assert list(got) == list(session.output_names) == [manifest.output.name]
        np.testing.assert_allclose(got[manifest.output.name], ref, rtol=1e-6)
        network_flags, config = fake.builds[0]
        assert network_flags == 1 << 1 and config.flags == []  # STRONGLY_TYPED, no precision flag
        assert config.profiling_verbosity == "DETAILED" and not config.pools
        assert session.inspector_layout == layout
        precisions = session.effective_precision()  # read with the context set: no "N/A" types
        assert precisions and all(p.precision == "i8" and not p.upcast for p in precisions)
        assert {p.layer for p in precisions} == set(bundle_facts(manifest)[1])
        session.close()


def test_weak_typing_on_10x_and_refused_on_11(bundle, tmp_path):
    with installed("10.3.0") as (fake, _):
        _load(bundle, tmp_path, typing="weak", workspace_mb=64).close()
        network_flags, config = fake.builds[0]
        assert (
            network_flags == 0
            and config.flags == ["INT8", "FP16"]
            and config.pools == {"WORKSPACE": 64 << 20}
        )
    with installed("11.1.0") as _, pytest.raises(InputError, match="typing='weak' needs TensorRT 10.x"):
        _load(bundle, tmp_path, typing="weak")


def test_tensorrt_86_is_refused(bundle, tmp_path):
    with installed("8.6.1") as (fake, _), pytest.raises(TargetUnavailable, match="JetPack 6"):
        _load(bundle, tmp_path)
    assert not fake.builds  # never reached create_network


def test_engine_cache_is_reused_and_rebuilt_when_unreadable(bundle, tmp_path):
    with installed() as (fake, _):
        _load(bundle, tmp_path).close()
        (engine,) = tmp_path.glob("fake-gpu-sm86-trt10.16.1-*.engine")
        assert list(tmp_path.glob("timing-fake-gpu-sm86-trt10.16.1.cache"))
        _load(bundle, tmp_path).close()  # second load: deserialized, not rebuilt
        assert len(fake.builds) == 1
        _load(bundle, tmp_path, max_batch=4).close()  # another build option: another engine
        assert len(fake.builds) == 2 and len(list(tmp_path.glob("*.engine"))) == 2
        engine.write_bytes(b"written by another TensorRT")  # deserialize returns None: rebuilt
        _load(bundle, tmp_path).close()
        assert len(fake.builds) == 3


def test_foreign_timing_cache_is_dropped_with_a_warning(bundle, tmp_path):
    with installed() as (fake, _):
        (tmp_path / "timing-fake-gpu-sm86-trt10.16.1.cache").write_bytes(b"another device")
        with pytest.warns(UserWarning, match="refused timing cache"):
            _load(bundle, tmp_path).close()
        assert fake.builds[0][1].timing_data == [b"another device", b""]


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [("parse", BundleError, "parser refused.*only activation types"),
     ("profile", BundleError, "refused the optimization profile"),
     ("set_timing_cache", TargetUnavailable, "refused an empty timing cache"),
     ("build", BundleError, "could not build an engine"),
     ("deserialize", TensorRTError, "could not deserialize"),
     ("set_input_shape", InputError, "refused input shape"),
     ("set_tensor_address", TensorRTError, "refused the device address"),
     ("execute_async_v3", TensorRTError, "execute_async_v3 failed")],
)  # fmt: skip
def test_every_failure_return_value_is_a_bpnas_error(bundle, tmp_path, call, error, message):
    with installed() as (fake, cudart):
        fake.fail.add(call)
        with pytest.raises(error, match=message):
            _load(bundle, tmp_path).run(bundle[2])
        if call == "set_tensor_address":  # a session that fails to open frees what it allocated
            assert not cudart.memory and not cudart.pinned


def test_pinned_buffers_and_one_sync_per_batch(bundle, tmp_path):
    _, manifest, x, ref = bundle
    with installed() as (_, cudart):
        session = _load(bundle, tmp_path, max_batch=2)  # the stand-in refuses pageable host copies
        before = cudart.syncs
        out = session.run(x)[manifest.output.name]  # 7 images: 4 chunks of 2, the last padded
        assert cudart.syncs == before + 1 and session._context.runs == 4
        np.testing.assert_allclose(out, ref, rtol=1e-6)
        session.run(x[:1])  # a smaller batch changes the input shape; still one synchronize
        assert cudart.syncs == before + 2 and cudart.pinned
        session.close()


def test_close_is_idempotent_and_frees_everything_once(bundle, tmp_path):
    with installed() as (_, cudart):
        session = _load(bundle, tmp_path)
        session.close()
        session.close()  # a second free would be a CUDA error (the stand-in reports double frees)
        assert not cudart.pinned and len(cudart.freed) == len(set(cudart.freed))
        with pytest.raises(InputError, match="closed"):
            session.run(bundle[2])


def test_profiling_reports_per_layer_times(bundle, tmp_path):
    artifact, manifest, x, _ = bundle
    with installed():
        session = trt_adapter.load(artifact, manifest, RuntimeOptions(cache_dir=tmp_path, profiling=True))
        assert session.layer_times() == []
        session.run(x)
        times = session.layer_times() or []
        assert times and {t.op_type for t in times} <= {"CaskConvolution", "CaskGemm"}
        session.close()
        assert trt_adapter.load(artifact, manifest, RuntimeOptions(cache_dir=tmp_path)).layer_times() is None


# -- DLA ----------------------------------------------------------------------------------------------------
def test_dla_builds_a_static_profile_and_pads(bundle, tmp_path):
    _, manifest, x, ref = bundle
    with installed("10.3.0", dla_cores=2) as (fake, _):
        session = _load(bundle, tmp_path, "jetson", dla_core=1, max_batch=4)
        config = fake.builds[0][1]
        assert (config.default_device_type, config.DLA_core, config.flags) == ("DLA", 1, [])
        assert config.profiles[0].shapes == ((4, 1, 8, 8),) * 3  # min = opt = max
        np.testing.assert_allclose(
            session.run(x[:3])[manifest.output.name], ref[:3], rtol=1e-6
        )  # padded to 4
        assert session._context.shape == (4, 1, 8, 8)
        session.close()


@pytest.mark.parametrize("version", ["10.8.0.43", "10.16.1", "11.0.0", "11.3.0.99", "11.4.0.106"])
def test_dla_refused_where_tensorrt_has_none(bundle, tmp_path, version):
    with installed(version, dla_cores=2), pytest.raises(TargetUnavailable, match="has no DLA support"):
        _load(bundle, tmp_path, "jetson", dla_core=0)


def test_dla_refused_on_a_device_without_dla(bundle, tmp_path):
    with installed("10.3.0", dla_cores=0), pytest.raises(TargetUnavailable, match="has no DLA core"):
        _load(bundle, tmp_path, "jetson", dla_core=0)
    with installed("10.3.0", dla_cores=2), pytest.raises(TargetUnavailable, match="2 DLA cores"):
        _load(bundle, tmp_path, "jetson", dla_core=2)
    with installed("10.3.0", dla_cores=2), pytest.raises(TargetUnavailable, match=r"batch limit \(16\)"):
        _load(bundle, tmp_path, "jetson", dla_core=0)  # the default max_batch, 32


def test_dla_refuses_silent_gpu_fallback(bundle, tmp_path):
    with installed("11.4.1", dla_cores=1, dla_refuses=("Gemm",)) as (fake, _):
        with pytest.raises(TargetUnavailable, match=r"cannot run on DLA core 0 \(.*\).*gpu_fallback"):
            _load(bundle, tmp_path, "jetson", dla_core=0, max_batch=8)
        assert not fake.builds
        with pytest.warns(UserWarning, match="run on the GPU, not DLA"):
            _load(bundle, tmp_path, "jetson", dla_core=0, max_batch=8, gpu_fallback=True).close()
        assert fake.builds[0][1].flags == ["GPU_FALLBACK"]


# -- engine tests (NVIDIA GPU with TensorRT; skipped elsewhere) ----------------------------------------------
@pytest.mark.tensorrt
@needs_gpu
@pytest.mark.parametrize("hint", ["latency", "throughput"])
def test_engine_agrees_with_onnxruntime_on_a_real_export(bundle, tmp_path, hint):
    artifact, manifest, x, ref = bundle
    opts = RuntimeOptions(cache_dir=tmp_path, performance_hint=hint, extra={"max_batch": 4})
    session = trt_adapter.load(artifact, manifest, opts)
    try:
        got = session.run(x)[manifest.output.name]  # 7 images through a max_batch=4 profile
        assert got.shape == ref.shape and got.dtype == np.float32
        assert (got.argmax(1) == ref.argmax(1)).mean() >= 6 / 7  # int8 rounding order may differ
        precisions = session.effective_precision()
        assert precisions and all(p.precision == "i8" for p in precisions if p.precision != "unknown")
        assert not [p for p in precisions if p.upcast]
    finally:
        session.close()
        session.close()


@pytest.mark.tensorrt
@needs_gpu
def test_engine_is_cached_and_reused_on_the_gpu(bundle, tmp_path):
    artifact, manifest, x, _ = bundle
    opts = RuntimeOptions(cache_dir=tmp_path, profiling=True, extra={"max_batch": 8})
    trt_adapter.load(artifact, manifest, opts).close()
    (engine,) = tmp_path.glob("*.engine")
    stamp = engine.stat().st_mtime_ns
    session = trt_adapter.load(artifact, manifest, opts)
    try:
        assert engine.stat().st_mtime_ns == stamp  # deserialized, not rebuilt
        session.run(x)
        assert all(t.ms >= 0 for t in session.layer_times() or [])
    finally:
        session.close()
