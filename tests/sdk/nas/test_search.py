"""End to end on tiny models: result, history, block groups, sampled paths, DNAS baseline, retrain, plots."""

import json

import pytest
import torch

import sdk
from sdk.nas import PAPER_CANDIDATES, MuSchedule, dnas_search, lambda_sweep, uniform_qat
from sdk.quant import ActQuantizer


def test_search_result_history_and_certificate(tiny, loaders, capsys):
    res = sdk.search(tiny, *loaders, b_max=3.0, epochs=3, progress=False, theta_lr=0.05)
    assert capsys.readouterr().err == ""  # progress=False is silent
    assert res.certificate.within(3.0) and res.avg_bits <= 3.0
    assert res.certificate.table().count("\n") >= 3
    assert list(res.config) == ["conv1", "conv2", "fc"]
    h = res.history
    assert [r.epoch for r in h] == [0, 1, 2, 3]
    for name in ("train_ce", "val_ce", "barrier", "prob1", "expected_bits", "sampled_bits"):
        assert all(v == v for v in h.column(name)[1:]), name  # no NaN after epoch 0
    assert all(e < 3.0 for e in h.column("expected_bits"))
    assert set(h[-1].probs) == {"conv1", "conv2", "fc"}
    assert all(abs(sum(p) - 1) < 1e-5 and len(p) == 8 for p in h[-1].probs.values())
    assert h.final_max_prob() > 0.0
    d = res.to_dict()
    assert d["within"] and d["config"]["layers"]["conv1"] == list(res.config["conv1"])
    assert json.dumps(sdk.nas.SearchHistory.from_dict(h.to_dict()).to_dict()) == json.dumps(h.to_dict())
    assert tiny.conv1.__class__ is torch.nn.Conv2d  # the user's model is untouched


def test_progress_bar_reports_loss_and_bits(tiny, loaders, capsys):
    sdk.search(tiny, *loaders, b_max=3.0, epochs=1, steps_per_epoch=2, progress=True)
    err = capsys.readouterr().err
    assert "search 1/1" in err and "E=" in err and "bits=" in err


@pytest.mark.parametrize("mode", ["full", "sampled"])
def test_block_groups_share_one_choice(tiny_res, loaders, mode):
    res = sdk.search(tiny_res, *loaders, b_max=3.5, epochs=2, groups="block", mode=mode, progress=False)
    assert res.config["block.conv1"] == res.config["block.conv2"]
    assert set(res.groups) == {"stem", "block", "fc"} and res.certificate.within(3.5)


def test_constant_mu_and_warmup(tiny, loaders):
    res = sdk.search(tiny, *loaders, b_max=3.0, epochs=2, warmup_epochs=1, mu=0.05, progress=False)
    assert res.history[1].val_ce != res.history[1].val_ce  # warmup epoch: no theta steps (NaN)
    assert res.history[2].mu == pytest.approx(0.05) and res.history[1].probs == res.history[0].probs
    assert isinstance(MuSchedule.constant(0.05), MuSchedule)


def test_dnas_baseline_and_lambda_sweep(tiny, loaders):
    def run(lam: float):
        return dnas_search(tiny, *loaders, lam, b_max=3.0, epochs=1, theta_lr=0.5, steps_per_epoch=3)

    sweep = lambda_sweep(run, 3.0, start=0.01, factor=100.0, max_runs=4)
    assert 1 <= len(sweep.runs) <= 4 and sweep.results[0].method == "dnas"
    assert sweep.results[0].repaired is False
    if sweep.needed is not None:
        assert sweep.runs[sweep.needed - 1][2]


def test_retrain_and_uniform_baseline(tiny, loaders):
    train, val = loaders
    cfg = sdk.MixedPrecisionConfig({"conv1": (8, 4), "conv2": (2, 3), "fc": (4, 4)})
    q = sdk.retrain(tiny, cfg, train, val, epochs=2, progress=False)
    assert sdk.quant.config_of(q) == cfg and not q.training
    hist = q.retrain_history
    assert len(hist.val_acc) == 2 and 0.0 <= hist.final_val_acc <= 1.0
    u = uniform_qat(tiny, 3, train, val, epochs=1, progress=False)
    assert set(sdk.quant.config_of(u).values()) == {(3, 3)}


def test_plots_write_the_papers_figures(tiny, loaders, tmp_path):
    pytest.importorskip("matplotlib")
    res = sdk.search(tiny, *loaders, b_max=3.0, epochs=2, progress=False)
    flat = sdk.search(tiny, *loaders, b_max=3.0, epochs=2, progress=False, prob1_weight=0.0)
    paths = res.plot(tmp_path, results=[res, flat], accuracies=[0.9, 0.8], without_prob1=flat)
    assert sorted(p.name for p in paths) == [
        "fig2_barrier.png",
        "fig3_accuracy_vs_bits.png",
        "fig4_importance.png",
    ]
    assert all(p.stat().st_size > 5000 for p in paths)


def test_input_errors(tiny, loaders):
    with pytest.raises(sdk.InputError, match="b_max"):
        sdk.search(tiny, *loaders, b_max=-1.0, progress=False)
    with pytest.raises(sdk.InputError, match="epochs"):
        sdk.search(tiny, *loaders, epochs=0, progress=False)
    with pytest.raises(sdk.InputError, match="float model"):
        sdk.search(sdk.quantize(tiny, sdk.MixedPrecisionConfig.uniform(tiny, 4, 4)), *loaders, progress=False)
    with pytest.raises(sdk.InputError, match="mode"):
        sdk.search(tiny, *loaders, mode="gumbel", progress=False)  # type: ignore[arg-type]
    x, _ = next(iter(loaders[0]))
    bad = [(x, torch.full((len(x),), 99, dtype=torch.long))]
    with pytest.raises(sdk.InputError, match="num_classes=100"):
        sdk.search(tiny, bad, loaders[1], epochs=1, progress=False)
    assert PAPER_CANDIDATES[0] == (2, 3)


def test_result_json_round_trip(tiny, loaders, tmp_path):
    res = sdk.search(tiny, *loaders, b_max=3.0, epochs=1, steps_per_epoch=2, progress=False)
    res.to_json(tmp_path / "r.json")
    back = sdk.nas.SearchResult.from_json(tmp_path / "r.json")
    assert back.config == res.config and back.certificate == res.certificate
    assert json.dumps(back.to_dict()) == json.dumps(res.to_dict())  # NaN-safe comparison of everything


@pytest.mark.parametrize("paths", ["uniform", "mixture", "sampled"])
def test_weight_paths_keep_the_guarantee(tiny, loaders, paths):
    res = sdk.search(tiny, *loaders, b_max=3.0, epochs=2, weight_paths=paths, progress=False, theta_lr=0.05)
    assert res.certificate.within(3.0) and all(e < 3.0 for e in res.history.column("expected_bits"))
    assert res.history[2].probs != res.history[1].probs  # theta moved after warm-up
    with pytest.raises(sdk.InputError, match="weight_paths"):
        sdk.search(tiny, *loaders, weight_paths="ensemble", progress=False)


def test_a_search_for_tensorrt_trains_under_its_7_bit_unsigned_codes(tiny, loaders, monkeypatch):
    import sdk.nas.api as api

    capped: list[int] = []
    real = api.set_unsigned_act_bits
    monkeypatch.setattr(api, "set_unsigned_act_bits", lambda m, bits: (capped.append(bits), real(m, bits)))
    res = sdk.search(
        tiny,
        *loaders,
        b_max=8.0,
        candidates=[(8, 8)],
        epochs=1,
        steps_per_epoch=2,
        target="tensorrt",
        progress=False,
    )
    assert capped == [7] and set(res.config.values()) == {(8, 8)}
    q = sdk.retrain(tiny, res.config, *loaders, epochs=1, target="tensorrt", progress=False)
    ranges = {m.range for m in q.modules() if isinstance(m, ActQuantizer) and not m.signed}
    assert ranges == {(0, 127)}
