"""The `bpnas` CLI: help, report, and one clear line (exit 2) for user errors."""

import pytest

from sdk.cli import main


def test_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for cmd in ["demo", "search", "retrain", "export", "predict", "bench", "profile", "report", "targets"]:
        assert cmd in text


def test_report_prints_table1_row(capsys):
    assert main(["report", "--model", "resnet20", "--w-bits", "3", "--a-bits", "3"]) == 0
    assert "B-Comp 113.78x" in capsys.readouterr().out


def test_user_error_exits_2_with_one_line(capsys):
    assert main(["report", "--model", "resnet21"]) == 2
    err = capsys.readouterr().err
    assert "resnet20" in err and err.startswith("bpnas: error:")


def test_targets_lists_every_target_with_its_state(capsys):
    import targets

    assert main(["targets"]) == 0
    out = capsys.readouterr().out
    for name in targets.names():
        assert name in out
    assert "bpnas[None]" not in out
    for name in targets.available():
        assert any(line.startswith(name) and line.endswith("available") for line in out.splitlines())


def test_retrain_then_export_deploys_the_retrained_model(tmp_path, capsys):
    import numpy as np
    import torch

    import sdk
    from sdk.checkpoint import load_checkpoint

    config, ckpt, bundle = tmp_path / "cfg.json", tmp_path / "m.pt", tmp_path / "m.bpnas"
    sdk.MixedPrecisionConfig.uniform(sdk.models.digits_cnn(), 3, 3).to_json(config)
    argv = ["retrain", "--model", "digits_cnn", "--data", "digits", "--config", str(config)]
    argv += ["--float-epochs", "1", "--epochs", "1", "--out", str(ckpt)]
    assert main(argv) == 0
    assert main(["export", str(ckpt), "--out", str(bundle)]) == 0
    qmodel, meta = load_checkpoint(ckpt)
    assert meta["bn_fold"] == "qat"
    x = torch.cat([x for x, _ in sdk.data.digits().test])
    with torch.no_grad():
        trained = qmodel(x).argmax(1).numpy()
    deployed = np.asarray(sdk.load(bundle, target="onnxruntime").predict(x.numpy())).argmax(1)
    np.testing.assert_array_equal(deployed, trained)
    capsys.readouterr()
    assert main(["report", "--bundle", str(bundle)]) == 0
    out = capsys.readouterr().out
    assert "avg bits" in out and "effective precision recorded at export" in out
    assert "QLinearConv/u8" in out  # the ONNX Runtime column: what the engine ran per layer
    assert "onnx-qdq" in out and "bytes" in out  # each artifact's size on disk
    plain = tmp_path / "plain.bpnas"
    assert main(["export", str(ckpt), "--out", str(plain), "--no-inspect"]) == 0
    from runtimes.bundle import read_manifest

    assert read_manifest(plain).effective_precision == {}


def test_bench_runs_the_installed_targets_the_bundle_carries(tmp_path, capsys):
    from tests.runtimes._bundles import make_bundle

    bundle = make_bundle(tmp_path, targets=("onnxruntime", "tensorrt"))  # tensorrt is never installed here
    assert main(["bench", str(bundle), "--runs", "2", "--warmup", "1"]) == 0
    rows = [line.split("|")[1:3] for line in capsys.readouterr().out.splitlines()[2:]]
    assert [(t.strip(), s.split(":")[0].strip()) for t, s in rows] == [
        ("onnxruntime", "ok"),
        ("tensorrt", "skipped"),
    ]
    assert main(["bench", str(tmp_path / "none.bpnas")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("bpnas: error: no bundle")


def test_debug_shows_the_traceback_and_quiet_silences_status(tmp_path, capsys):
    assert main(["predict", str(tmp_path / "none.bpnas"), "x.png"]) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert main(["--debug", "predict", str(tmp_path / "none.bpnas"), "x.png"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.rstrip().splitlines()[-1].startswith("bpnas: error:")
    assert main(["report", "--model", "resnet20", "-q"]) == 0  # results still print under --quiet
    assert "B-Comp" in capsys.readouterr().out
