"""One test per finding of issue 15 (the CLI as a new user meets it); each failed before the fix."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sdk.cli import main
from tests.sdk._project import make_project


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return make_project(tmp_path_factory.mktemp("user"), train=4, val=2)


def _ptq(project, out, *extra):
    argv = ["quantize", "--model", str(project["spec"]), "--weights", str(project["weights"])]
    argv += ["--data", str(project["data"]), "--bits", "8,8", "--out", str(out), "-q", *extra]
    return main(argv)


# 1. export records the preprocessing, so predict classifies an image file -----------------------------------
def test_1_cli_pipeline_classifies_an_image(project, tmp_path, capsys):
    assert _ptq(project, tmp_path / "m.pt") == 0
    assert main(["export", str(tmp_path / "m.pt"), "--out", str(tmp_path / "m.bpnas"), "-q"]) == 0
    pre = json.loads((tmp_path / "m.bpnas" / "manifest.json").read_text())["preprocess"]
    assert pre is not None and pre["size"] == [16, 16]
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "m.bpnas"), str(project["photos"] / "val" / "red" / "0.png")]) == 0
    assert capsys.readouterr().out.split("\t")[1].split()[0] in ("red", "green", "blue")


# 2. own model class + weights; clear errors for mismatched weights, pickled models, state_dicts to export
def test_2_own_model_and_weights_with_clear_errors(project, tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    torch.save({"stem.0.weight": torch.zeros(1, 1, 1, 1)}, bad)
    argv = [
        "quantize",
        "--model",
        str(project["spec"]),
        "--weights",
        str(bad),
        "--data",
        str(project["data"]),
    ]
    assert main([*argv, "--bits", "8,8", "--out", str(tmp_path / "x.pt")]) == 2
    err = capsys.readouterr().err
    assert "shape mismatch" in err and "missing" in err and err.count("\n") == 1
    pickled = tmp_path / "pickled.pt"
    torch.save(torch.nn.Linear(2, 2), pickled)
    argv[4] = str(pickled)
    assert main([*argv, "--bits", "8,8", "--out", str(tmp_path / "x.pt")]) == 2
    err = capsys.readouterr().err
    assert "state_dict()" in err and "weights_only" not in err
    assert main(["export", str(project["weights"]), "--out", str(tmp_path / "w.bpnas")]) == 2
    assert "not a bpnas checkpoint" in capsys.readouterr().err
    assert main([*argv[:2], f"{project['model']}:PatchNot", *argv[3:], "--bits", "8,8"]) == 2
    assert "Did you mean PatchNet" in capsys.readouterr().err


# 3. retrain --out DIR, no stray temp file; --config checked before training; result.json accepted -----------
def test_3_retrain_out_dir_and_config_checked_first(project, tmp_path, capsys, monkeypatch):
    import sdk.cli.train as verbs

    def no_training(*a, **k):
        raise AssertionError("trained before checking --config")

    monkeypatch.setattr(verbs, "_retrain", no_training)
    base = ["retrain", "--model", str(project["spec"]), "--weights", str(project["weights"])]
    base += ["--data", str(project["data"]), "--out", str(tmp_path), "-q"]
    (tmp_path / "wrong.json").write_text(json.dumps({"layers": {"nope": [4, 4]}}))
    assert main([*base, "--config", str(tmp_path / "wrong.json")]) == 2
    assert "nope" in capsys.readouterr().err
    monkeypatch.undo()
    import sdk
    from sdk.modelspec import ModelSpec, build_model

    model = build_model(ModelSpec.parse(str(project["spec"])))
    cfg = {"b_max": 4.0, "config": sdk.MixedPrecisionConfig.uniform(model, 4, 4).to_dict()}
    (tmp_path / "result.json").write_text(json.dumps(cfg))  # a search's result.json holds the config
    assert main([*base, "--config", str(tmp_path / "result.json"), "--epochs", "1"]) == 0
    assert (tmp_path / "model.pt").is_file()
    assert [p.name for p in tmp_path.iterdir() if "tmp" in p.name] == []


# 4. search saves its float model; retrain --from RUN starts from those weights, without float training ------
def test_4_search_saves_float_weights_that_retrain_reuses(project, tmp_path, monkeypatch):
    import sdk.cli.train as verbs
    from sdk.checkpoint import load_checkpoint

    run = tmp_path / "run"
    argv = ["search", "--model", str(project["spec"]), "--weights", str(project["weights"]), "-q"]
    argv += ["--data", str(project["data"]), "--float-epochs", "0", "--epochs", "1", "--steps-per-epoch", "1"]
    assert main([*argv, "--batch-size", "8", "--out", str(run)]) == 0
    floats, meta = load_checkpoint(run / "float.pt")
    assert meta["kind"] == "float" and meta["data"] == str(project["data"])
    seen = []
    real = verbs._retrain
    monkeypatch.setattr(
        verbs, "_retrain", lambda a, model, *r: seen.append(model.state_dict()) or real(a, model, *r)
    )
    assert main(["retrain", "--from", str(run), "--epochs", "1", "--out", str(run), "-q"]) == 0
    for k, v in floats.state_dict().items():
        torch.testing.assert_close(seen[0][k], v)


# 5. defaults in --help; no silent defaults for model/data/size; the checkpoint remembers its data -----------
def test_5_help_defaults_and_no_silent_defaults(project, tmp_path, capsys):
    for verb in ("search", "retrain", "quantize", "export", "predict", "bench", "report", "profile"):
        with pytest.raises(SystemExit):
            main([verb, "--help"])
        assert "(default:" in capsys.readouterr().out, verb
    assert main(["quantize", "--model", str(project["spec"]), "--weights", str(project["weights"])]) == 2
    assert "--data" in capsys.readouterr().err
    data = f"folder:{project['photos']}"
    assert main(["quantize", "--model", str(project["spec"]), "--data", data, "--bits", "8,8"]) == 2
    assert "folder:ROOT:SIZE" in capsys.readouterr().err
    assert _ptq(project, tmp_path / "m.pt") == 0
    from sdk.checkpoint import read_meta

    meta = read_meta(tmp_path / "m.pt")
    assert meta["data"] == str(project["data"]) and meta["input_shape"] == [1, 3, 16, 16]


# 6. functional residual adds are quantized like Add; an untraceable model warns with the fix ----------------
def test_6_functional_adds_are_quantized_or_warned(project):
    import sdk
    from sdk.modelspec import ModelSpec, build_model
    from sdk.quant.functional_adds import FunctionalAddWarning, modularize_adds
    from sdk.quant.modules import QuantAdd

    model = build_model(ModelSpec.parse(str(project["spec"])))
    qmodel = sdk.quantize(model, sdk.MixedPrecisionConfig.uniform(model, 8, 8))
    assert sum(isinstance(m, QuantAdd) for m in qmodel.modules()) == 1
    x = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(modularize_adds(model.eval())(x), model(x))

    class Branchy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 3, 1)

        def forward(self, x):
            if x.sum() > 0:  # data-dependent control flow: fx cannot trace it
                return x + self.conv(x)
            return x

    with pytest.warns(FunctionalAddWarning, match="sdk.models.layers.Add"):
        sdk.quantize(Branchy(), {"conv": (8, 8)})


# 7. bench: status/size/accuracy/searched vs deployed bits; predict shows probabilities; --version -----------
def test_7_bench_columns_predict_probabilities_version(project, tmp_path, capsys):
    assert _ptq(project, tmp_path / "m.pt") == 0
    bundle = tmp_path / "m.bpnas"
    assert main(["export", str(tmp_path / "m.pt"), "--out", str(bundle), "-q"]) == 0
    capsys.readouterr()
    assert main(["bench", str(bundle), "--data", str(project["data"]), "--runs", "2", "--warmup", "1"]) == 0
    head = capsys.readouterr().out.splitlines()[0]
    for col in (
        "status",
        "size KB",
        "searched bits",
        "deployed bits",
        "upcast",
        "accuracy %",
        "p99 ms",
        "FPS",
    ):
        assert col in head
    assert (
        main(["predict", str(bundle), str(project["photos"] / "val" / "red"), "--top-k", "3", "--json"]) == 0
    )
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 2 and all(abs(sum(t["prob"] for t in r["top"]) - 1) < 1e-4 for r in rows)
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.startswith("bpnas ")


# 8. image folders: train/val layout, explicit mean/std recorded; cuda without CUDA; target names any case
def test_8_folder_layout_mean_std_cuda_and_target_case(project):
    import sdk
    import targets

    data = sdk.data.image_folder(project["photos"], 16, mean=(0.5,), std=(0.25,))
    assert sum(len(y) for _, y in data.val) == 6 and sum(len(y) for _, y in data.train) == 12
    assert data.preprocess.mean == (0.5, 0.5, 0.5) and data.preprocess.std == (0.25, 0.25, 0.25)
    x, _ = next(iter(data.val))
    assert float(x.min()) >= (0 - 0.5) / 0.25 - 1e-5
    if not torch.cuda.is_available():
        from sdk.device import check_device

        with pytest.raises(sdk.InputError, match="CUDA"):
            check_device("cuda")
    assert targets.get("OpenVINO").name == "openvino"
    assert targets.resolve("X86").name == targets.resolve("x86").name
    with pytest.raises(sdk.TargetUnavailable, match="openvino"):
        targets.get("opnvino")


# 9. the deploy path imports no training or export-building code (cold start, issue 15 item 9) ---------------
def test_9_classify_helper_is_deploy_side(project, tmp_path):
    import subprocess
    import sys

    code = "import sys, sdk, sdk.classify, sdk.bench; "
    code += "print([m for m in ('torch', 'export.bundle') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    from sdk.classify import top_k

    (c,) = top_k(np.array([[0.0, 2.0, 1.0]]), ["a", "b", "c"], 2, ["x"])
    assert c.labels == ("b", "c") and c.probs[0] > c.probs[1] > 0


def test_3_search_refuses_bad_budget_and_target_before_training(project, tmp_path, capsys, monkeypatch):
    import sdk.cli.train as verbs

    monkeypatch.setattr(verbs, "_float_train", lambda *a: (_ for _ in ()).throw(AssertionError("trained")))
    argv = ["search", "--model", str(project["spec"]), "--data", str(project["data"]), "--out", str(tmp_path)]
    assert main([*argv, "--b-max", "1.5"]) == 2
    assert "cheapest" in capsys.readouterr().err
    assert main([*argv, "--target", "OpenVIN0"]) == 2
    assert "openvino" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only message")
def test_8_python_api_cuda_without_cuda_is_an_input_error():
    import calibration
    import sdk

    model = sdk.models.create("digits_cnn", num_classes=10, in_channels=1)
    loader = [(torch.zeros(4, 1, 8, 8), torch.zeros(4, dtype=torch.long))]
    cfg = sdk.MixedPrecisionConfig.uniform(model, 8, 8)
    for call in (
        lambda: sdk.train(model, loader, epochs=1, device="cuda"),
        lambda: sdk.retrain(model, cfg, loader, epochs=1, device="cuda"),
        lambda: calibration.ptq(model, cfg, loader, device="cuda"),
    ):
        with pytest.raises(sdk.InputError, match="needs CUDA"):
            call()


def test_8_a_uint16_frame_gets_advice_that_works():
    import tempfile
    from pathlib import Path

    import sdk
    from tests.runtimes._bundles import make_bundle

    with tempfile.TemporaryDirectory() as tmp:
        p = sdk.load(make_bundle(Path(tmp), targets=("onnxruntime",)), target="onnxruntime")
        frame = np.full((20, 30, 3), 40000, np.uint16)
        with pytest.raises(sdk.InputError, match=r"\(frame >> 8\).astype\(np.uint8\)") as e:
            p.predict(frame)
        fixed = eval(str(e.value).split("e.g. ")[1].split(" (or")[0], {"np": np, "frame": frame})
        assert p.predict(fixed).shape == (1, 10)  # the advice works: no second error
