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
