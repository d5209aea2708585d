"""`bpnas search --weight-kb --cycles --target` (and the torchrun entry) reach sdk.search's budget."""

from __future__ import annotations

import json

import pytest

from sdk.cli import build_parser, main
from sdk.cli._common import search_keywords
from sdk.nas.command import build_parser as torchrun_parser
from tests.sdk._project import make_project


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return make_project(tmp_path_factory.mktemp("user"), train=4, val=2)


def test_both_entry_points_build_the_same_budget_keywords():
    flags = ["--b-max", "4", "--target", "integer", "--weight-kb", "0.5", "--cycles", "5e4"]
    cli = search_keywords(build_parser().parse_args(["search", *flags]), progress=False)
    tr = search_keywords(torchrun_parser().parse_args([*flags, "--checkpoint-dir", "ck"]), progress=False)
    for kw in (cli, tr):
        assert kw["budget"] == {"weight_kb": 0.5, "cycles": 5e4} and kw["target"] == "integer"
        assert kw["b_max"] == 4.0
    assert cli["device"] == "cpu" and tr["checkpoint_dir"] == "ck" and tr["mode"] == "full"
    plain = search_keywords(build_parser().parse_args(["search"]), progress=False)
    assert plain["budget"] is None and plain["target"] is None and "start" not in plain


def test_start_flag_reaches_both_entry_points_and_bad_values_are_refused(capsys):
    cli = search_keywords(build_parser().parse_args(["search", "--start", "hinge"]), progress=False)
    tr = search_keywords(torchrun_parser().parse_args(["--start", "hinge"]), progress=False)
    assert cli["start"] == tr["start"] == "hinge"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["search", "--start", "random"])
    assert "sensitivity" in capsys.readouterr().err


def _argv(project, out):
    argv = ["search", "--model", str(project["spec"]), "--weights", str(project["weights"]), "-q"]
    argv += ["--data", str(project["data"]), "--float-epochs", "0", "--epochs", "1", "--steps-per-epoch", "1"]
    return [*argv, "--batch-size", "8", "--out", str(out), "--b-max", "6"]


def test_search_flags_reach_the_search_and_its_certificate(project, tmp_path):
    run = tmp_path / "run"
    assert main([*_argv(project, run), "--target", "integer", "--weight-kb", "0.6", "--cycles", "3e5"]) == 0
    result = json.loads((run / "result.json").read_text())
    checks = {c["name"]: c for c in result["certificate"]["constraints"]}
    assert set(checks) == {"avg_bits", "weight_kb", "cycles"} and all(c["inside"] for c in checks.values())
    assert checks["weight_kb"]["limit"] == 0.6 and checks["weight_kb"]["value"] <= 0.6
    assert result["budget"] == {"weight_kb": 0.6, "cycles": 3e5} and result["target"] == "integer"


def test_infeasible_or_unpriced_budget_is_refused_before_training(project, tmp_path, capsys, monkeypatch):
    import sdk.cli.train as verbs

    monkeypatch.setattr(verbs, "_float_train", lambda *a: (_ for _ in ()).throw(AssertionError("trained")))
    argv = _argv(project, tmp_path)
    assert main([*argv, "--target", "integer", "--weight-kb", "0.1"]) == 2
    assert "weight_kb=0.1" in capsys.readouterr().err
    assert main([*argv, "--cycles", "1e6"]) == 2
    assert "'integer'" in capsys.readouterr().err
    assert main([*argv, "--weight-kb", "-1"]) == 2
    assert "positive" in capsys.readouterr().err
