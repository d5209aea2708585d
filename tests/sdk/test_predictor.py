"""sdk.load, Predictor, sdk.profile on tiny QDQ bundles: inputs, errors, threads, the torch-free path."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

import sdk
import targets
from runtimes.base import LayerPrecision
from sdk.errors import BundleError, InputError, TargetUnavailable
from sdk.predictor import LatencyReport, Predictor
from sdk.preprocess import Preprocess
from tests._threads import run_in_threads
from tests.runtimes._bundles import LAYERS, PREPROCESS, make_bundle, random_input, reference
from tests.runtimes._params import target_params

STEP = 6.0 / 127  # one step of the quantized logits
MIXED = {"conv1": (4, 8), "conv2": (3, 4), "conv3": (2, 6), "fc": (8, 8)}  # every target runs these
FLOATY = {"conv1": (4, 8), "conv2": (3, 4), "conv3": (32, 8), "fc": (8, 8)}  # conv3 stays float
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return make_bundle(tmp_path_factory.mktemp("pred"), targets=targets.names())


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    return make_bundle(tmp_path_factory.mktemp("pred_mixed"), pairs=MIXED, targets=targets.names())


@pytest.fixture(scope="module")
def ort(bundle):
    p = sdk.load(bundle, target="onnxruntime", threads=1)
    yield p
    p.close()


def _copy(bundle: Path, dest: Path) -> Path:
    import shutil

    return Path(shutil.copytree(bundle, dest / bundle.name))


def _edit_manifest(bundle: Path, edit) -> None:
    path = bundle / "manifest.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


# -- every available target, same round trip ---------------------------------------------------------------
@pytest.mark.parametrize("name", target_params())
def test_round_trip_on_every_available_target(mixed, name):
    with sdk.load(mixed, target=name, threads=1) as p:
        assert isinstance(p, Predictor) and p.target.name == name
        assert p.input_spec.shape == (None, 3, 8, 8) and p.input_spec.name == "input"
        assert p.labels is not None and len(p.labels) == 10
        assert dict(p.config) == MIXED
        assert p.bops.bops == sum(layer.macs * layer.w_bits * layer.a_bits for layer in p.bops.layers)
        for n in (1, 3, 7):  # dynamic batch
            x = random_input(n, seed=n)
            np.testing.assert_allclose(p.predict(x), reference(mixed, x), atol=STEP * 1.01, rtol=0)
        rep = p.profile(runs=5, warmup=1, layer_runs=2)
    assert isinstance(rep, LatencyReport) and rep.target == name
    assert 0 < rep.p50_ms <= rep.p90_ms <= rep.p99_ms and rep.fps > 0
    assert [pr.layer for pr in rep.precision] == list(LAYERS)
    assert rep.searched_pairs == MIXED
    assert rep.deployed_pairs == {k: targets.get(name).deployed_pair(*v) for k, v in MIXED.items()}
    assert rep.deployed_bops >= rep.bops
    json.dumps(rep.to_dict())  # serializable for the CLI and benchmarks
    assert "conv2" in rep.table()


# -- input kinds -------------------------------------------------------------------------------------------
def test_float_sample_without_batch_axis(ort, bundle):
    x = random_input(1)
    np.testing.assert_array_equal(ort.predict(x[0]), ort.predict(x))


def test_torch_like_tensors_are_duck_typed(ort):
    x = random_input(2)

    class FakeTensor:
        def detach(self):
            return self

        def cpu(self):
            return self

        def numpy(self):
            return x

    np.testing.assert_array_equal(ort.predict(FakeTensor()), ort.predict(x))


def test_real_torch_tensor(ort):
    torch = pytest.importorskip("torch")
    x = random_input(2)
    np.testing.assert_array_equal(ort.predict(torch.from_numpy(x)), ort.predict(x))


def test_frames_lists_and_paths_agree(ort, tmp_path):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (24, 20, 3), dtype=np.uint8) for _ in range(3)]
    pre = Preprocess.from_dict({**PREPROCESS, "size": [8, 8]})
    want = ort.predict(pre(frames))
    np.testing.assert_allclose(ort.predict(frames), want, rtol=0, atol=0)
    np.testing.assert_allclose(ort.predict(frames[0]), want[:1], rtol=0, atol=0)
    paths = []
    for i, f in enumerate(frames):
        paths.append(tmp_path / f"img{i}.png")
        assert cv2.imwrite(str(paths[-1]), f)
    np.testing.assert_allclose(ort.predict(paths), want, rtol=0, atol=0)
    np.testing.assert_allclose(ort.predict(str(paths[1])), want[1:2], rtol=0, atol=0)
    same = [np.resize(f, (24, 20, 3)) for f in frames]
    assert ort.predict(np.stack(same)).shape == (3, 10)  # uint8 (N, H, W, 3)


def test_frames_need_recorded_preprocessing(tmp_path):
    b = make_bundle(tmp_path, preprocess=None, labels=None)
    with sdk.load(b) as p:
        assert p.preprocess is None and p.labels is None
        with pytest.raises(InputError, match=r"no preprocessing recorded.*preprocess=sdk.Preprocess"):
            p.predict(np.zeros((8, 8, 3), np.uint8))


def test_static_batch_artifact_runs_any_batch(tmp_path):
    b = make_bundle(tmp_path, static_batch=2)
    with sdk.load(b) as p:
        assert p.input_spec.shape[0] == 2
        for n in (1, 2, 5):
            x = random_input(n, seed=n)
            np.testing.assert_allclose(
                p.predict(x), reference(b, x) if n == 2 else _ref_static(b, x), atol=1e-6
            )


def _ref_static(bundle, x):
    out = []
    for i in range(0, len(x), 2):
        chunk = x[i : i + 2]
        pad = np.concatenate([chunk, np.zeros((2 - len(chunk), *chunk.shape[1:]), np.float32)])
        out.append(reference(bundle, pad)[: len(chunk)])
    return np.concatenate(out)


# -- input errors ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "x, match",
    [
        (np.zeros((1, 3, 9, 8), np.float32), r"expected input shaped float32 \(N, 3, 8, 8\) NCHW"),
        (np.zeros((1, 8, 8, 3), np.float32), r"\(N, 3, 8, 8\)"),
        (np.zeros((3, 8), np.float32), r"\(N, 3, 8, 8\)"),
        (np.zeros((0, 3, 8, 8), np.float32), "empty batch"),
        (np.zeros((1, 3, 8, 8), np.float64), r"dtype float64.*astype\(np.float32\)"),
        (np.zeros((1, 3, 8, 8), np.int32), "dtype int32"),
        (np.full((1, 3, 8, 8), np.nan, np.float32), "NaN/inf"),
        (np.full((1, 3, 8, 8), np.inf, np.float32), "NaN/inf"),
        ([], "empty list"),
        ([np.zeros((3, 8, 8), np.float32), np.zeros((3, 4, 4), np.float32)], "different shapes"),
        ({"x": 1}, "got dict"),
        (np.zeros((2, 2, 2, 2, 2), np.uint8), r"\(H, W, 3\) or \(N, H, W, 3\)"),
    ],
)
def test_bad_inputs_raise_input_error(ort, x, match):
    with pytest.raises(InputError, match=match):
        ort.predict(x)


def test_finite_check_across_batch_sizes(ort):
    """The check reuses a mask per thread; a new batch size must still be checked whole."""
    ort.predict(random_input(1))
    bad = random_input(3)
    bad[2, 1, 4, 4] = np.nan
    with pytest.raises(InputError, match="has 1 NaN/inf value"):
        ort.predict(bad)
    bad[2, 1, 4, 4] = 0.0
    assert ort.predict(bad).shape[0] == 3


def test_frames_skip_the_finite_scan_only_when_provably_finite(bundle, tmp_path, monkeypatch):
    scanned = []
    real = Predictor._all_finite
    monkeypatch.setattr(Predictor, "_all_finite", lambda self, x: scanned.append(x.shape) or real(self, x))
    frame = np.full((12, 10, 3), 255, np.uint8)
    with sdk.load(bundle) as p:
        p.predict(frame)
        p.predict([frame, frame])
        assert scanned == []  # uint8 pixels through this preprocessing cannot become NaN/inf
        p.predict(random_input(2))
        assert scanned == [(2, 3, 8, 8)]
    tiny = _copy(bundle, tmp_path)
    _edit_manifest(tiny, lambda m: m["preprocess"].update(std=[1e-39] * 3))  # overflows float32
    with sdk.load(tiny) as p, pytest.raises(InputError, match="NaN/inf"):
        p.predict(frame)


def test_unreadable_image_paths(ort, tmp_path):
    with pytest.raises(InputError, match="no such file"):
        ort.predict(tmp_path / "missing.jpg")
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"definitely not a jpeg")
    with pytest.raises(InputError, match="cannot decode"):
        ort.predict(str(junk))


# -- target errors -----------------------------------------------------------------------------------------
def test_unknown_target_names_close_matches(bundle):
    with pytest.raises(TargetUnavailable, match=r"Did you mean 'openvino'"):
        sdk.load(bundle, target="openvinno")


def test_missing_engine_names_the_pip_extra(bundle, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "openvino" else real(n, *a))
    with pytest.raises(TargetUnavailable, match=r"pip install 'bpnas\[openvino\]'"):
        sdk.load(bundle, target="openvino")


def test_target_not_in_bundle_names_sdk_export(tmp_path):
    b = make_bundle(tmp_path, targets=("onnxruntime",))
    with pytest.raises(
        BundleError,
        match=r"no artifact for target 'integer'.*sdk.export\(.*targets=\['onnxruntime', 'integer'\]",
    ):
        sdk.load(b, target="fpga")


def test_x86_alias_picks_an_installed_engine_the_bundle_carries(tmp_path):
    b = make_bundle(tmp_path, targets=("onnxruntime", "integer"))
    with sdk.load(b, target="x86") as p:
        assert p.target.name == "onnxruntime"


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"threads": 0}, InputError, "threads"),
        ({"threads": True}, InputError, "threads"),
        ({"performance_hint": "fast"}, InputError, "performance_hint"),
        ({"target": 3}, TargetUnavailable, "target must be a name"),
        ({"options": {"graph_optimisation": "all"}}, InputError, "Did you mean 'graph_optimization'"),
    ],
)
def test_bad_load_arguments(bundle, kwargs, error, match):
    with pytest.raises(error, match=match):
        sdk.load(bundle, **kwargs)


# -- bundle errors -----------------------------------------------------------------------------------------
def test_tampered_artifact_is_refused(bundle, tmp_path):
    b = _copy(bundle, tmp_path)
    data = bytearray((b / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (b / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="does not match its checksum"):
        sdk.load(b)


def test_truncated_artifact_is_refused(bundle, tmp_path):
    b = _copy(bundle, tmp_path)
    (b / "model.onnx").write_bytes((b / "model.onnx").read_bytes()[:-10])
    with pytest.raises(BundleError, match=r"does not match its checksum \(\d+ bytes, manifest says \d+\)"):
        sdk.load(b)


def test_missing_artifact_is_refused(bundle, tmp_path):
    b = _copy(bundle, tmp_path)
    (b / "model.onnx").unlink()
    with pytest.raises(BundleError, match="missing its artifact"):
        sdk.load(b)


@pytest.mark.parametrize(
    "name", ["../model.onnx", "/etc/passwd", "sub/model.onnx", "..", "", "manifest.json"]
)
def test_unsafe_artifact_names_are_refused(bundle, tmp_path, name):
    b = _copy(bundle, tmp_path)

    def edit(m):
        m["artifacts"][name] = m["artifacts"].pop("model.onnx")
        for t in m["targets"].values():
            t["artifact"] = name

    _edit_manifest(b, edit)
    with pytest.raises(BundleError, match="unsafe artifact"):
        sdk.load(b)


def test_symlinked_artifact_is_refused(bundle, tmp_path):
    b = _copy(bundle, tmp_path)
    real = tmp_path / "elsewhere.onnx"
    (b / "model.onnx").rename(real)
    (b / "model.onnx").symlink_to(real)
    with pytest.raises(BundleError, match="symlink"):
        sdk.load(b)


@pytest.mark.parametrize(
    "setup, match",
    [
        (lambda b: None, "no bundle at"),
        (lambda b: b.mkdir(), "is not a bpnas bundle"),
        (lambda b: (b.mkdir(), (b / "manifest.json").write_text("{not json")), "corrupt"),
        (
            lambda b: (b.mkdir(), (b / "manifest.json").write_text('{"format": "other"}')),
            "not a bpnas bundle",
        ),
    ],
)
def test_not_a_bundle(tmp_path, setup, match):
    b = tmp_path / "x.bpnas"
    setup(b)
    with pytest.raises(BundleError, match=match):
        sdk.load(b)


def test_newer_format_version_asks_for_an_upgrade(bundle, tmp_path):
    b = _copy(bundle, tmp_path)
    _edit_manifest(b, lambda m: m.update(format_version=99))
    with pytest.raises(BundleError, match="(?i)upgrade bpnas"):
        sdk.load(b)


def test_label_count_must_match_outputs(bundle, tmp_path):
    b = _copy(bundle, tmp_path)
    _edit_manifest(b, lambda m: m.update(labels=["a", "b"]))
    with pytest.raises(BundleError, match="2 labels for 10 outputs"):
        sdk.load(b)


# -- profile -----------------------------------------------------------------------------------------------
def test_integer_only_target_refuses_float_layers(tmp_path):
    b = make_bundle(tmp_path, pairs=FLOATY)
    with pytest.raises(BundleError, match=r"integer layers only.*\['conv3'\].*target='integer'"):
        sdk.load(b, target="integer")


def test_profile_reports_deployed_bits_and_upcasts(tmp_path):
    b = make_bundle(tmp_path, pairs=FLOATY)
    with sdk.load(b, target="onnxruntime") as p:
        rep = p.profile(runs=10, warmup=2, batch=2, layer_runs=3)
    assert rep.batch == 2 and rep.runs == 10
    assert rep.avg_bits < rep.deployed_bits  # 3- and 4-bit layers run in int8 containers
    assert rep.deployed_pairs["conv2"] == (8, 8) and rep.deployed_pairs["conv3"] == (32, 32)
    prec = {pr.layer: pr for pr in rep.precision}
    assert prec["conv2"].kernel == "QLinearConv" and not prec["conv2"].upcast
    assert prec["conv3"].precision == "f32" and not prec["conv3"].upcast  # float by configuration
    assert rep.per_layer and {"conv2"} <= {t.name for t in rep.per_layer}
    assert rep.estimated_cycles is None


def test_profile_on_integer_target_estimates_cycles(bundle):
    if "integer" not in targets.available():
        pytest.skip(targets.unavailable()["integer"])
    rep = sdk.profile(bundle, "fpga", runs=3, warmup=1, per_layer=False)
    assert rep.target == "integer" and rep.per_layer is None
    assert rep.deployed_bops == rep.bops  # every pair native
    assert rep.estimated_cycles == targets.get("integer").cost.cycles(targets.get("integer").deployed_report(
        sdk.load(bundle, "integer").bops))  # fmt: skip
    assert rep.estimated_ms and rep.estimated_ms > 0


def test_upcast_is_judged_against_the_target(ort):
    class Session:
        def effective_precision(self):
            return [
                LayerPrecision("conv1", "Conv", "f32", upcast=False),
                LayerPrecision("x", "Conv", "f32", False),
            ]

    p = Predictor.__new__(Predictor)
    p.__dict__.update(ort.__dict__)
    p._session = Session()
    out = {pr.layer: pr for pr in p.effective_precision()}
    assert out["conv1"].upcast and not out["x"].upcast


@pytest.mark.parametrize("kwargs", [{"runs": 0}, {"warmup": -1}, {"batch": 0}, {"runs": 2.5}])
def test_profile_arguments_are_checked(ort, kwargs):
    with pytest.raises(InputError):
        ort.profile(**kwargs)


def test_profile_with_given_input(ort):
    rep = ort.profile(runs=3, warmup=0, input=random_input(4), per_layer=False)
    assert rep.batch == 4 and rep.per_layer is None


@pytest.mark.parametrize("name", target_params(["tvm"]))
def test_profile_repeats_the_untuned_warning_once(bundle, name, tmp_path):
    """TVM without tuning records: profile() warns itself (even without per-layer times) and notes it in the
    report; the per-layer profiling session's load does not warn a second time."""
    from runtimes.tvm import TvmUntunedWarning

    with pytest.warns(TvmUntunedWarning):
        p = sdk.load(bundle, target=name, threads=1, cache_dir=tmp_path)
    with p:
        for per_layer in (False, True):
            with pytest.warns(TvmUntunedWarning) as caught:
                rep = p.profile(runs=2, warmup=0, per_layer=per_layer)
            assert len([w for w in caught if w.category is TvmUntunedWarning]) == 1
            assert len(rep.notes) == 1 and "untuned" in rep.notes[0]
            assert "note: TVM runs" in rep.table()


def test_profile_has_no_notes_on_a_session_without_speed_warnings(ort):
    rep = ort.profile(runs=2, warmup=0, per_layer=False)
    assert rep.notes == () and "note:" not in rep.table()


# -- lifetime and threads ----------------------------------------------------------------------------------
def test_closed_predictor_refuses(bundle):
    p = sdk.load(bundle)
    p.close()
    p.close()  # idempotent
    with pytest.raises(InputError, match="closed"):
        p.predict(random_input(1))


def test_concurrent_predicts_agree(ort):
    x = random_input(3)
    want = ort.predict(x)
    results = run_in_threads(lambda: ort.predict(x), calls=25)
    assert len(results) == 100 and all(np.array_equal(r, want) for r in results)


def test_sessions_without_thread_safety_are_serialized(bundle, monkeypatch):
    import runtimes.onnxruntime as ort_adapter

    monkeypatch.setattr(ort_adapter.OrtSession, "thread_safe", False)
    inside = threading.Semaphore(1)
    original = ort_adapter.OrtSession.run

    def guarded(self, x):
        assert inside.acquire(blocking=False), "two threads inside the engine at once"
        try:
            return original(self, x)
        finally:
            inside.release()

    monkeypatch.setattr(ort_adapter.OrtSession, "run", guarded)
    with sdk.load(bundle) as p:
        assert p._lock is not None
        threads = [
            threading.Thread(target=lambda: [p.predict(random_input(2)) for _ in range(20)]) for _ in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


# -- the deploy path never imports torch -------------------------------------------------------------------
@pytest.mark.parametrize("name", target_params(["onnxruntime", "openvino", "integer"]))
def test_deploy_path_is_torch_free(bundle, name):
    code = textwrap.dedent(
        f"""
        import sys
        import numpy as np
        import sdk
        p = sdk.load({str(bundle)!r}, target={name!r})
        y = p.predict(np.zeros((2, 3, 8, 8), np.float32))
        y = p.predict(np.zeros((16, 16, 3), np.uint8))
        assert y.shape == (1, 10)
        banned = ("torch", "sdk.nas", "sdk.train", "sdk.quant", "sdk.models", "calibration")
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in banned or m.startswith(banned))
        assert not loaded, loaded
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


# -- end to end with the real exporter ------------------------------------------------------------------
@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """ResNet-20, mixed 2-8 bit, PTQ-calibrated, exported with sdk.export for every available x86 target."""
    torch = pytest.importorskip("torch")
    import calibration

    torch.manual_seed(0)
    model = sdk.models.resnet20(num_classes=10).eval()
    cfg = sdk.MixedPrecisionConfig.uniform(model, 8, 8)
    for i, layer in enumerate(list(cfg)[1:-1]):
        cfg[layer] = [(4, 4), (3, 4), (2, 4), (8, 8), (4, 6)][i % 5]
    g = torch.Generator().manual_seed(1)
    batches = [torch.randn(8, 3, 32, 32, generator=g) for _ in range(2)]
    qmodel = calibration.ptq(model, cfg, batches).eval()
    wanted = [t for t in ("onnxruntime", "openvino", "integer", "tvm") if t in targets.available()]
    bundle = sdk.export(
        qmodel,
        tmp_path_factory.mktemp("e2e") / "r20.bpnas",
        example_input=batches[0][:1],
        targets=wanted,
        preprocess=sdk.Preprocess(size=(32, 32), mean=(0.49, 0.48, 0.45), std=(0.25, 0.24, 0.26)),
        labels=[f"c{i}" for i in range(10)],
    )
    x = torch.randn(6, 3, 32, 32, generator=g)
    with torch.no_grad():
        want = qmodel(x).numpy()
    step = float(qmodel.fc.out_quant.scale())  # one step of the quantized logits
    return Path(bundle), cfg, x.numpy(), want, step


@pytest.mark.slow
@pytest.mark.parametrize("name", target_params(["onnxruntime", "openvino", "integer", "tvm"]))
def test_exported_bundle_matches_the_fake_quant_model(exported, name):
    bundle, cfg, x, want, step = exported
    with sdk.load(bundle, target=name, threads=1) as p:
        assert dict(p.config) == dict(cfg) and p.labels == tuple(f"c{i}" for i in range(10))
        got = p.predict(x)
        frame = np.zeros((40, 30, 3), np.uint8)
        assert p.predict(frame).shape == (1, 10)
        precision = p.effective_precision()
    assert [q.layer for q in precision] == list(cfg)
    # ORT, the integer engine and TVM reproduce the fake-quant logits exactly; OpenVINO's requantization
    # may round a logit to the neighbouring code
    np.testing.assert_allclose(got, want, atol=step * 1.01, rtol=0)
    assert (got.argmax(1) == want.argmax(1)).all()


# -- tasks: the postprocessing step the manifest's task names ------------------------------------------------
def test_an_unknown_task_is_refused_at_load(bundle, tmp_path):
    b = _copy(bundle, tmp_path)
    _edit_manifest(b, lambda m: m.update(task="clasify"))
    with pytest.raises(BundleError, match=r"unknown task 'clasify'.*Did you mean 'classify'.*Upgrade bpnas"):
        sdk.load(b)


def test_a_task_step_gets_every_named_output_and_the_adapter_the_target(bundle, tmp_path, monkeypatch):
    import sdk.postprocess as post
    import sdk.predictor as pred
    from sdk._registry import Registry

    registry = Registry("task", BundleError)
    registry.register("classify", post.classify)
    registry.register("echo", lambda outputs, manifest: (dict(outputs), manifest.task))
    monkeypatch.setattr(post, "_registry", registry)
    seen = []
    real = pred.get_runtime

    def spy(name):
        loader = real(name)
        return lambda artifact, manifest, options: (
            seen.append(options.target) or loader(artifact, manifest, options)
        )

    monkeypatch.setattr(pred, "get_runtime", spy)
    b = _copy(bundle, tmp_path)
    _edit_manifest(b, lambda m: m.update(task="echo"))
    x = random_input(3)
    with sdk.load(b, target="onnxruntime", threads=1) as p:
        outputs, task = p.predict(x)
    assert task == "echo" and list(outputs) == ["logits"] and outputs["logits"].shape == (3, 10)
    assert seen == ["onnxruntime"]  # RuntimeOptions.target: the target being loaded
